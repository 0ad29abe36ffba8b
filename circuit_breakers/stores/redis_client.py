"""The one rule every Redis client used by the library must follow: bounded calls."""

from __future__ import annotations

from typing import Any

import redis

from circuit_breakers.errors import ConfigError, ConfigTypeError


def check_client(client: object) -> Any:
    """Return ``client`` if it is a ``redis.Redis`` built with both socket timeouts.

    Raises ConfigTypeError for anything else, ConfigError when a timeout is missing or zero.
    """
    if not isinstance(client, redis.Redis):
        raise ConfigTypeError(f"client must be a redis.Redis, got {client!r}")
    options = client.connection_pool.connection_kwargs
    if not options.get("socket_timeout") or not options.get("socket_connect_timeout"):
        raise ConfigError(
            "the redis client needs socket_timeout and socket_connect_timeout so that no call blocks forever, "
            f"got socket_timeout={options.get('socket_timeout')!r}, "
            f"socket_connect_timeout={options.get('socket_connect_timeout')!r}"
        )
    return client
