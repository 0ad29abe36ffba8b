"""What every Redis user in the library shares: the bounded-calls rule for clients, reply decoding,
and the Lua scripts (kept in ``scripts/*.lua``, each action prefixed with the namespace clock)."""

from __future__ import annotations

import weakref
from functools import cache
from importlib import resources
from typing import Any

import redis

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.forks import on_fork_in_child

_FORK_SAFE: weakref.WeakSet[Any] = weakref.WeakSet()  # clients whose locks a forked child renews


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
    if client not in _FORK_SAFE:
        _FORK_SAFE.add(client)
        on_fork_in_child(client, renew_client_locks)
    return client


def renew_client_locks(client: Any) -> None:
    """In a forked child, before any thread runs there: free every lock of ``client``, its pool and
    their event dispatchers.

    redis-py replaces a pool's connections in a child by itself, but under the pool's lock, and
    releasing a connection dispatches an event under the dispatcher's lock; if one of the parent's
    threads (a listener, a monitor, a worker) held either at the fork, the child would wait for it
    forever. Every attribute of those objects that a child can renew (a lock, a condition) is
    renewed, so that a lock a later redis-py adds is covered too.
    """
    pool = getattr(client, "connection_pool", None)
    owners = (client, pool, getattr(pool, "_event_dispatcher", None), getattr(client, "_event_dispatcher", None))
    for owner in owners:
        for value in list(getattr(owner, "__dict__", {}).values()):
            reinit = getattr(value, "_at_fork_reinit", None)
            if callable(reinit):
                reinit()


def connect(url: str, *, timeout: float = 2.0) -> Any:
    """A ``redis.Redis`` for ``url`` with both socket timeouts set to ``timeout`` and one retry.

    Raises ConfigError for a URL redis-py cannot read (it does not connect yet).
    """
    from redis.backoff import NoBackoff  # noqa: PLC0415
    from redis.retry import Retry  # noqa: PLC0415

    try:
        return redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
        )
    except ValueError as exc:
        raise ConfigError(f"not a Redis URL: {url!r} ({exc})") from None


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
