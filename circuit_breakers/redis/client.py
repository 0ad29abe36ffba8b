"""What every Redis user in the library shares: the bounded-calls rule for clients, reply decoding,
and the Lua scripts (kept in ``scripts/*.lua``, each action prefixed with the namespace clock)."""

from __future__ import annotations

from functools import cache
from importlib import resources
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


def text(value: object) -> str:
    """A Redis reply item as str (bytes decoded as UTF-8); TypeError for anything else."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"expected bytes or str from redis, got {value!r}")


@cache
def script_source(*names: str) -> str:
    """The Lua source of ``scripts/<name>.lua`` for each name, joined in order."""
    folder = resources.files("circuit_breakers.redis") / "scripts"
    return "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in names)
