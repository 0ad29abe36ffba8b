"""The Redis store: trading state shared by processes on any number of hosts.

Keys, all under ``{namespace}:``:

- ``latches``, ``values``, ``procs``: one hash per table of the store contract
  (:mod:`circuit_breakers.stores.base`); a field per record, its text as the value;
- ``events``: the pub/sub channel on which every change of a latch or a value is announced;
- ``clock``: the namespace clock (``offset`` and ``last``, microseconds; see :mod:`.clock`);
- ``rate:{name}``: one sorted set per shared rate limiter (it expires on its own);
- ``cb:{name}`` and ``cb:{name}:window``: one shared circuit breaker's state and failure window.

Records change only through a compare-and-set script that publishes in the same step, so every
process hears of every change; a listener thread per process turns the messages into re-reads, and
re-reads every ``resync_seconds`` anyway (a lost message, a hung server). Every call is bounded by
the client's socket timeouts (required). Redis errors and garbage answers are wrapped once, here,
as StateStoreError naming the store. Only this package imports redis-py.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, List, Optional, cast

import redis

from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError, CorruptStateError, StateStoreError
from circuit_breakers.redis.client import check_client, script_source, text
from circuit_breakers.redis.clock import NamespaceClock
from circuit_breakers.stores.base import TABLES, Tables, check_record

logger = logging.getLogger(__name__)

_ANNOUNCED = ("latches", "values")  # changes to heartbeats (procs) are not announced: every poll makes one


class _Listener:
    """The subscription thread: re-reads on every message and every ``resync`` seconds.

    It survives everything: an error (even a BaseException from the owner's callback) is logged and
    the loop goes on after a short backoff. It ends when closed, or when ``on_change`` returns
    False (its owner is gone).
    """

    def __init__(self, store: RedisStore, on_change: Callable[[], object]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, on_change), name=f"circuit_breakers-redis-{store.namespace}", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self, store: RedisStore, on_change: Callable[[], object]) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = store.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(store.channel)
                if on_change() is False:  # messages may have been missed while not connected
                    return
                backoff = 0.1
                quiet_since = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=min(0.2, store.resync_seconds))
                    if message is not None or time.monotonic() - quiet_since >= store.resync_seconds:
                        if on_change() is False:  # a change, or a periodic re-read that finds a hung server
                            return
                        quiet_since = time.monotonic()
            except BaseException as exc:
                if self._stop.is_set():
                    return
                logger.warning("%s: listener failed (%r); retry in %.1fs", store.describe(), exc, backoff)
                with contextlib.suppress(BaseException):
                    if on_change() is False:  # the owner finds out, through a failing read, that the store is gone
                        return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(BaseException):
                        pubsub.close()


class RedisStore:
    """The store contract in Redis: every process using the same ``namespace`` shares the state.

    ``client`` must be a ``redis.Redis`` built with ``socket_timeout`` and
    ``socket_connect_timeout`` (ConfigError otherwise); the store does not close it.
    ``resync_seconds``: a subscriber re-reads at least this often, so that a hung server is noticed
    within that plus the socket timeout. ``clock_tolerance_seconds``: how far the Redis server's
    clock may disagree with this process's monotonic clock before it is taken as stepped (see
    :mod:`circuit_breakers.redis.clock`). ``clock``: for tests and replays only, a
    :class:`~circuit_breakers.clock.Clock` (a ManualClock) that stands for both clocks: its ``now()``
    is taken as the Redis server's clock (instead of ``TIME``) and its ``monotonic()`` as this
    process's, so that the shared breakers and rate limits of this store move with it; every process
    sharing the namespace must then use the same clock. Thread-safe (redis-py pools connections).
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = "circuit_breakers",
        *,
        resync_seconds: float = 1.0,
        clock_tolerance_seconds: float = 1.0,
        clock: Optional[Clock] = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace.strip():
            raise ConfigError(f"namespace must be a non-empty str, got {namespace!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
        self.client = check_client(client)
        self.namespace = namespace
        self.resync_seconds = check_number("resync_seconds", resync_seconds, maximum=3600.0)
        self.process_clock: Clock = SYSTEM_CLOCK if clock is None else clock
        """This process's clock: the system's, or the one given."""
        if clock is None:
            self.clock = NamespaceClock(clock_tolerance_seconds)
        else:
            self.clock = NamespaceClock(
                clock_tolerance_seconds, server_time=lambda: clock.now().timestamp(), monotonic=clock.monotonic
            )
        self.channel = f"{namespace}:events"
        self.clock_key = f"{namespace}:clock"
        self._cas = cast(Callable[..., object], self.client.register_script(script_source("cas")))

    @property
    def kind(self) -> str:
        """``"redis"``."""
        return "redis"

    def key(self, suffix: str) -> str:
        """The full Redis key of ``suffix`` in this namespace."""
        return f"{self.namespace}:{suffix}"

    def describe(self) -> str:
        """``"redis <namespace>"``, for messages."""
        return f"redis {self.namespace}"

    def fail(self, doing: str, exc: BaseException) -> StateStoreError:
        """The StateStoreError for a failed ``doing``, naming the store and the cause."""
        return StateStoreError(f"{self.describe()}: cannot {doing}: {type(exc).__name__}: {exc}")

    def read(self) -> Tables:
        """Every record of the three tables, read in one transaction (one round trip).

        Raises CorruptStateError when a key of the namespace holds something that is not a hash of
        text, StateStoreError when Redis cannot be reached or answers an error. Blocks up to the
        client's socket timeout.
        """
        try:
            pipeline = self.client.pipeline(transaction=True)
            for table in TABLES:
                pipeline.hgetall(self.key(table))
            replies: List[Any] = pipeline.execute()
        except redis.ResponseError as exc:
            if "WRONGTYPE" in str(exc):  # a key of ours holds something that is not a hash
                raise CorruptStateError(f"{self.describe()}: a state key holds garbage: {exc}") from exc
            raise self.fail("read state", exc) from exc
        except (redis.RedisError, OSError) as exc:
            raise self.fail("read state", exc) from exc
        tables: Tables = {}
        for table, raw in zip(TABLES, replies):
            try:
                tables[table] = {text(field): text(value) for field, value in dict(raw).items()}
            except (ValueError, TypeError, AttributeError) as exc:  # UnicodeDecodeError is a ValueError
                raise CorruptStateError(
                    f"{self.describe()}: {self.key(table)} holds garbage: {type(exc).__name__}: {exc}"
                ) from exc
        return tables

    def compare_and_set(self, table: str, key: str, expected: Optional[str], new: Optional[str]) -> bool:
        """Set ``table[key]`` to ``new`` (None deletes) if it holds ``expected`` (None: absent); True if set.

        Atomic in one script, which also announces a change of a latch or a value on the namespace's
        channel. Raises ConfigError / ConfigTypeError for a bad table, key or value (before any
        call), StateStoreError when Redis fails. One round trip.
        """
        check_record(table, key, expected, new)
        channel = self.channel if table in _ANNOUNCED else ""
        args = [key, "0" if expected is None else "1", expected or "", "0" if new is None else "1", new or ""]
        try:
            reply = self._cas(keys=[self.key(table)], args=[*args, channel, f"{table} {key}"])
        except (redis.RedisError, OSError) as exc:
            raise self.fail(f"write {self.key(table)} {key}", exc) from exc
        if reply not in (0, 1):
            raise self.fail(f"write {self.key(table)} {key}", ValueError(f"unexpected answer {reply!r}"))
        return reply == 1

    def put(self, table: str, key: str, value: Optional[str]) -> None:
        """Set (None: delete) ``table[key]`` whatever it holds, and announce it. Raises as :meth:`compare_and_set`."""
        check_record(table, key, value)
        try:
            if value is None:
                self.client.hdel(self.key(table), key)
            else:
                self.client.hset(self.key(table), key, value)
            if table in _ANNOUNCED:
                self.client.publish(self.channel, f"{table} {key}")
        except (redis.RedisError, OSError) as exc:
            raise self.fail(f"write {self.key(table)} {key}", exc) from exc

    def version(self) -> object:
        return None  # no cheap token: the listener and periodic re-reads cover other processes' changes

    def subscribe(self, on_change: Callable[[], object]) -> _Listener:
        """Listen on the namespace's channel on a daemon thread; it reconnects with backoff and re-reads on connect."""
        return _Listener(self, on_change)

    def reset(self) -> None:
        """Delete the namespace's three tables and announce it: only after its state proved unreadable
        and a keyed reset chose to start afresh. Raises StateStoreError when Redis fails."""
        try:
            self.client.delete(*(self.key(table) for table in TABLES))
            self.client.publish(self.channel, "reset")
        except (redis.RedisError, OSError) as exc:
            raise self.fail("reset state", exc) from exc

    def close(self) -> None:
        """Nothing to release: the client is the caller's, listeners are closed by their owners."""

    def after_fork_in_child(self) -> None:
        """In a forked child: start the namespace clock's estimate afresh (the pool renews itself)."""
        self.clock.after_fork_in_child()  # redis-py replaces its connection pool in a child by itself

    def __repr__(self) -> str:
        return f"RedisStore(namespace={self.namespace!r})"
