"""RedisRateLimiter: exact sliding-window limits shared by every process of a namespace.

One script checks every window and records the permit only if all have room: one round trip per
decision, timed by the namespace clock (the Redis server's clock, kept from stepping by each
client's monotonic clock: see :mod:`circuit_breakers.redis.clock`), so hosts with skewed clocks agree.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Callable, Dict, List, Tuple, cast

import redis

from circuit_breakers.errors import StateStoreError
from circuit_breakers.ratelimit import Limit, check_limits
from circuit_breakers.redis.client import script_source
from circuit_breakers.redis.store import RedisStore

logger = logging.getLogger(__name__)


class RedisRateLimiter:
    """At most ``max_calls`` permits in any ``period_seconds`` of each Limit, for all processes together.

    Fails closed: when Redis cannot answer, :meth:`try_acquire` refuses (and logs why). Thread-safe.
    """

    def __init__(self, store: RedisStore, *limits: Limit, name: str = "rate_limiter") -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore, got {store!r}")
        check_limits(name, limits, "RedisRateLimiter")
        self.name = name
        self.store = store
        self._limits = limits
        self._keys = [store.clock_key, store.key(f"rate:{name}")]
        self._script = cast(Callable[..., Any], store.client.register_script(script_source("clock", "rate")))
        self._args: List[Any] = [max(round(limit.period_seconds * 1_000_000) for limit in limits)]
        for limit in limits:
            self._args += [limit.max_calls, round(limit.period_seconds * 1_000_000)]
        self._member_prefix = uuid.uuid4().hex
        self._counter = 0
        self._counter_lock = threading.Lock()  # guards _counter and round_trips
        self.round_trips = 0  # script calls made; for benchmarks and tests

    @property
    def limits(self) -> Tuple[Limit, ...]:
        return self._limits

    def _run(self, record: bool) -> List[int]:
        with self._counter_lock:
            self._counter += 1
            member = f"{self._member_prefix}:{self._counter}"
            self.round_trips += 1
        clock, mono = self.store.clock.arguments()
        try:
            reply = self._script(keys=self._keys, args=[*clock, "1" if record else "0", member, *self._args])
            numbers = [int(item) for item in reply]
            self.store.clock.observe(numbers[0], numbers[1] == 1, mono)
            return numbers[2:]
        except (redis.RedisError, OSError, ValueError, TypeError, IndexError) as exc:
            raise self.store.fail(f"check rate limit {self.name}", exc) from exc

    def _look(self) -> Tuple[float, List[int]]:
        reply = self._run(record=False)
        if len(reply) != 2 + len(self._limits):
            raise self.store.fail(f"check rate limit {self.name}", ValueError(f"unexpected answer {reply!r}"))
        return reply[1] / 1_000_000, reply[2:]

    def try_acquire(self) -> bool:
        """Take a permit if every window has room; False if not, or if Redis cannot answer. One round trip."""
        try:
            return self._run(record=True)[0] == 1
        except StateStoreError as exc:
            logger.warning("%s; permit refused (fail closed)", exc)
            return False

    def retry_after(self) -> float:
        """Seconds until a permit could be admitted; the longest period while Redis cannot answer."""
        try:
            return self._look()[0]
        except StateStoreError:
            return max(limit.period_seconds for limit in self._limits)

    def status(self) -> Dict[str, Any]:
        """The same shape as RateLimiter.status(); raises StateStoreError when Redis cannot answer."""
        wait, counts = self._look()
        return {
            "name": self.name,
            "store": self.store.describe(),
            "seconds_until_permit": wait,
            "limits": [
                {
                    "max_calls": limit.max_calls,
                    "period_seconds": limit.period_seconds,
                    "calls_in_window": count,
                    "seconds_until_free": wait if count >= limit.max_calls else 0.0,
                }
                for limit, count in zip(self._limits, counts)
            ],
        }

    def reset(self) -> None:
        """Forget every permit in every window (for every process)."""
        try:
            self.store.client.delete(self._keys[1])
        except (redis.RedisError, OSError) as exc:
            raise self.store.fail(f"reset rate limit {self.name}", exc) from exc

    def __repr__(self) -> str:
        return f"RedisRateLimiter({', '.join(map(repr, self._limits))}, name={self.name!r}, store={self.store!r})"
