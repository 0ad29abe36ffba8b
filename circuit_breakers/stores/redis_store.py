"""Trading state shared through Redis (or Valkey): latches, values, order-rate windows, notifications.

Keys, all under ``{namespace}:``: ``latches`` and ``values`` (hashes), ``rate:{name}`` (one
sorted set per rate limiter holding all of its windows; it expires on its own), and the pub/sub
channel ``events``.

- Latches change only through Lua scripts that set-if-absent or delete and publish in the same
  step, so every process hears of every change; a process that missed messages (a dropped
  connection) re-reads everything when it reconnects.
- The order-rate script checks every window and records the permit only if all have room, in
  one round trip, timed by the server's clock (``TIME``), so hosts with skewed clocks agree.
- Every call is bounded by the client's socket timeouts (required). Redis errors and garbage
  answers are wrapped once, here, as StateStoreError naming the store.

Only this module imports redis-py (``pip install 'circuit_breakers[redis]'``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Tuple

import redis

from circuit_breakers.clock import Clock
from circuit_breakers.config import CircuitBreakerConfig, check_number
from circuit_breakers.errors import ConfigError, StateStoreError
from circuit_breakers.ratelimit import Limit, check_limits
from circuit_breakers.stores.redis_breaker import RedisCircuitBreaker
from circuit_breakers.stores.redis_client import check_client, text
from circuit_breakers.types import CircuitType

logger = logging.getLogger(__name__)

_PUT_LATCH = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[3], 'latch ' .. ARGV[1])
  return 1
end
return 0
"""

_DROP_LATCH = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], 'unlatch ' .. ARGV[1])
  return 1
end
return 0
"""

# KEYS[1]: one sorted set of permits (score: server time in microseconds), kept for the longest
# period. ARGV[1]: "1" to record a permit if every window has room, "0" to look only; ARGV[2]: the
# member to record; ARGV[3]: the longest period; then max_calls and period (microseconds) per limit.
# A permit at t counts in a window of length p while t > now - p. One trim and one ZADD per decision,
# however many limits. Returns {admitted, wait_us, count per limit...}; a refused permit returns {0}
# at once (the wait is worked out only when looking).
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key, record, longest = KEYS[1], ARGV[1] == '1', tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - longest))
local wait, counts = 0, {}
for i = 1, (#ARGV - 3) / 2 do
  local max_calls, period = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local since = string.format('(%d', now - period)
  local count
  if period == longest then count = redis.call('ZCARD', key) else count = redis.call('ZCOUNT', key, since, '+inf') end
  if count >= max_calls then
    if record then return {0} end
    -- free again when the permit that would be one too many expires
    local entry = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', count - max_calls, 1)
    wait = math.max(wait, tonumber(entry[2]) + period - now)
  end
  counts[i] = count
end
if wait > 0 or not record then
  return {0, wait, unpack(counts)}
end
redis.call('ZADD', key, now, ARGV[2])
redis.call('PEXPIRE', key, math.ceil(longest / 1000))
for i = 1, #counts do counts[i] = counts[i] + 1 end
return {1, 0, unpack(counts)}
"""


class RedisStore:
    """SharedState in Redis: every process using the same ``namespace`` shares halts and kill switch.

    ``client`` must be a ``redis.Redis`` built with ``socket_timeout`` and
    ``socket_connect_timeout`` (ConfigError otherwise). Thread-safe (redis-py pools connections).

    ``resync_seconds``: a subscriber re-reads the state at least this often even when no message
    comes, so that a server that hangs (a network partition that drops packets, a stopped process)
    is noticed, and trading blocked, within ``resync_seconds`` plus the socket timeout.
    """

    @property
    def shared(self) -> bool:
        return True

    def __init__(
        self, client: redis.Redis, namespace: str = "circuit_breakers", *, resync_seconds: float = 1.0
    ) -> None:
        if not isinstance(namespace, str) or not namespace.strip():
            raise ConfigError(f"namespace must be a non-empty str, got {namespace!r}")
        self.client = check_client(client)
        self.namespace = namespace
        self.resync_seconds = check_number("resync_seconds", resync_seconds)
        self._latches = f"{namespace}:latches"
        self._values = f"{namespace}:values"
        self._channel = f"{namespace}:events"
        self._put = self.client.register_script(_PUT_LATCH)
        self._drop = self.client.register_script(_DROP_LATCH)

    def describe(self) -> str:
        return f"redis {self.namespace}"

    def _fail(self, doing: str, exc: Exception) -> StateStoreError:
        return StateStoreError(f"{self.describe()}: cannot {doing}: {type(exc).__name__}: {exc}")

    def snapshot(self) -> Dict[str, Dict[str, Any]]:
        try:
            pipeline = self.client.pipeline(transaction=True)
            pipeline.hgetall(self._latches)
            pipeline.hgetall(self._values)
            raw_latches, raw_values = pipeline.execute()
        except redis.RedisError as exc:
            raise self._fail("read state", exc) from exc
        try:
            latches = {text(name): json.loads(text(record)) for name, record in raw_latches.items()}
            values = {text(key): text(value) for key, value in raw_values.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._fail("decode state (corrupt?)", exc) from exc
        if not all(isinstance(record, dict) for record in latches.values()):
            raise StateStoreError(f"{self.describe()}: corrupt latch record in {self._latches}")
        return {"latches": latches, "values": values}

    def put_latch(self, name: str, record: Mapping[str, Any]) -> bool:
        try:
            return bool(self._put(keys=[self._latches], args=[name, json.dumps(dict(record)), self._channel]))
        except redis.RedisError as exc:
            raise self._fail(f"set latch {name}", exc) from exc

    def drop_latch(self, name: str) -> bool:
        try:
            return bool(self._drop(keys=[self._latches], args=[name, self._channel]))
        except redis.RedisError as exc:
            raise self._fail(f"drop latch {name}", exc) from exc

    def update_value(self, key: str, update: Callable[[Optional[str]], Optional[str]]) -> Optional[str]:
        result: List[Optional[str]] = []

        def transaction(pipe: Any) -> None:
            raw = pipe.hget(self._values, key)
            old = None if raw is None else text(raw)
            new = update(old)
            result[:] = [new]
            if new == old:
                return
            pipe.multi()
            if new is None:
                pipe.hdel(self._values, key)
            else:
                pipe.hset(self._values, key, new)

        try:
            self.client.transaction(transaction, self._values)
        except redis.RedisError as exc:
            raise self._fail(f"update {key}", exc) from exc
        return result[0]

    def reset(self) -> None:
        try:
            self.client.delete(self._latches, self._values)
            self.client.publish(self._channel, "reset")
        except redis.RedisError as exc:
            raise self._fail("reset state", exc) from exc

    def subscribe(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Listen on the namespace's channel on a daemon thread; reconnect with backoff; resync on connect."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._listen, args=(on_change, stop), name=f"circuit_breakers-redis-{self.namespace}", daemon=True
        )
        thread.start()

        def unsubscribe() -> None:
            stop.set()
            thread.join(2.0)

        return unsubscribe

    def _listen(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                on_change()  # messages may have been missed while not connected
                backoff = 0.1
                quiet_since = time.monotonic()
                while not stop.is_set():
                    message = pubsub.get_message(timeout=min(0.2, self.resync_seconds))
                    if message is not None or time.monotonic() - quiet_since >= self.resync_seconds:
                        on_change()  # a change, or a periodic re-read that finds a hung server
                        quiet_since = time.monotonic()
            except (redis.RedisError, OSError) as exc:
                logger.warning("%s: listener lost its connection (%s); retry in %.1fs", self.describe(), exc, backoff)
                on_change()  # lets the owner find out, through a failing read, that the store is gone
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()

    def circuit_breaker(
        self,
        name: str,
        circuit_type: CircuitType = CircuitType.GENERIC,
        config: Optional[CircuitBreakerConfig] = None,
        *,
        timeout: float = 0.5,
    ) -> RedisCircuitBreaker:
        """A :class:`RedisCircuitBreaker` on this store's client and namespace, shared by every process using both.

        ``timeout``: seconds for which a failed Redis call makes the breaker reject without asking again.
        """
        return RedisCircuitBreaker(
            name, circuit_type, config, client=self.client, namespace=self.namespace, timeout=timeout
        )

    def rate_limiter(self, *limits: Limit, name: str, clock: Clock) -> RedisRateLimiter:
        """A rate limiter whose windows every process of the namespace shares.

        ``clock`` is part of the SharedState interface and unused here: the windows run on the Redis
        server's clock, so that every host agrees.
        """
        return RedisRateLimiter(self, *limits, name=name)

    def __repr__(self) -> str:
        return f"RedisStore(namespace={self.namespace!r})"


class RedisRateLimiter:
    """Exact sliding-window limits shared through Redis: one atomic script, one round trip per decision.

    Fails closed: when Redis cannot answer, :meth:`try_acquire` refuses (and logs why).
    """

    def __init__(self, store: RedisStore, *limits: Limit, name: str = "rate_limiter") -> None:
        check_limits(name, limits, "RedisRateLimiter")
        self.name = name
        self.store = store
        self._limits = limits
        self._keys = [f"{store.namespace}:rate:{name}"]
        self._script = store.client.register_script(_RATE)
        self._args: List[Any] = [max(round(limit.period_seconds * 1_000_000) for limit in limits)]
        for limit in limits:
            self._args += [limit.max_calls, round(limit.period_seconds * 1_000_000)]
        self._member_prefix = uuid.uuid4().hex
        self._counter = 0
        self._counter_lock = threading.Lock()  # guards _counter
        self.round_trips = 0  # script calls made; for benchmarks and tests

    @property
    def limits(self) -> Tuple[Limit, ...]:
        return self._limits

    def _run(self, record: bool) -> List[int]:
        with self._counter_lock:
            self._counter += 1
            member = f"{self._member_prefix}:{self._counter}"
            self.round_trips += 1
        try:
            reply = self._script(keys=self._keys, args=["1" if record else "0", member, *self._args])
            return [int(item) for item in reply]
        except (redis.RedisError, ValueError, TypeError) as exc:
            raise self.store._fail(f"check rate limit {self.name}", exc) from exc

    def _look(self) -> Tuple[float, List[int]]:
        reply = self._run(record=False)
        if len(reply) != 2 + len(self._limits):
            raise self.store._fail(f"check rate limit {self.name}", ValueError(f"unexpected answer {reply!r}"))
        return reply[1] / 1_000_000, reply[2:]

    def try_acquire(self) -> bool:
        """Take a permit if every window has room; False if not, or if Redis cannot answer. One round trip."""
        try:
            return self._run(record=True)[0] == 1
        except StateStoreError as exc:
            logger.warning("%s; order refused (fail closed)", exc)
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
            self.store.client.delete(*self._keys)
        except redis.RedisError as exc:
            raise self.store._fail(f"reset rate limit {self.name}", exc) from exc

    def __repr__(self) -> str:
        return f"RedisRateLimiter({', '.join(map(repr, self._limits))}, name={self.name!r}, store={self.store!r})"


__all__ = ["RedisRateLimiter", "RedisStore"]
