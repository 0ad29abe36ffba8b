"""Garbage in a shared breaker's hashes and in the namespace clock, as RedisCircuitBreaker and
RedisRateLimiter read them: status and admission never raise, and an open breaker stays shut.

Fail closed here means: ``get_status()``, ``state`` and ``allow()`` answer, ``call()`` raises only
CircuitOpenException, nothing is admitted. The scripts read garbage as the safe value and write it
back (an unknown state is OPEN from now; unreadable timing restarts the open timeout); a key of the
wrong type is refused (``store_error`` set) until it is removed.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

import pytest
import redis

from circuit_breakers import (
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    Limit,
    RedisCircuitBreaker,
    RedisRateLimiter,
    RedisStore,
)
from tests.redis.conftest import wait_until
from tests.redis.servers import Server, quick_client

NS = "junk"
HASH, WINDOW, CLOCK = f"{NS}:cb:broker", f"{NS}:cb:broker:window", f"{NS}:clock"


def make(store: RedisStore, threshold: int = 1) -> RedisCircuitBreaker:
    config = CircuitBreakerConfig(failure_threshold=threshold, open_timeout_seconds=30.0, exponential_backoff=False)
    return RedisCircuitBreaker("broker", config=config, store=store)


@pytest.fixture
def admin(volatile_server: Server) -> Iterator[redis.Redis]:
    with quick_client(volatile_server) as client:
        yield client


@pytest.fixture
def shared(volatile_server: Server) -> Tuple[RedisStore, RedisCircuitBreaker]:
    store = RedisStore(quick_client(volatile_server), NS)
    return store, make(store)


def assert_shut(breaker: RedisCircuitBreaker) -> Dict[str, Any]:
    """Nothing raises but the rejection, and nothing is admitted; the status."""
    status = breaker.get_status()
    assert status["state"] == "open"
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    with pytest.raises(CircuitOpenException):
        breaker.call(lambda: "order sent")
    return status


FIELDS = [
    pytest.param("state", "garbage", id="state-unknown"),
    pytest.param("in_flight", "-3", id="in-flight-negative"),
    pytest.param("opened_at", "nan", id="opened-at-nan"),
    pytest.param("trips", "-1", id="trips-negative"),
    pytest.param("generation", "abc", id="generation-not-a-number"),
    pytest.param("in_flight", "abc", id="in-flight-not-a-number"),
    pytest.param("consecutive_trips", "abc", id="trips-in-a-row-not-a-number"),
    pytest.param("open_for", "1e400", id="open-for-infinite"),
    pytest.param("opened_at", "abc", id="opened-at-not-a-number"),
    pytest.param("open_for", "abc", id="open-for-not-a-number"),
    pytest.param("open_for", "-1", id="open-for-negative"),
    pytest.param("opened_at", "1e400", id="opened-at-infinite"),
    pytest.param("opened_at", "1e300", id="opened-at-huge"),
    pytest.param("generation", "1e400", id="generation-infinite"),
    pytest.param("consecutive_trips", "1e400", id="trips-in-a-row-infinite"),
    pytest.param("trips", "1e400", id="trips-infinite"),
    pytest.param("recovered_at", "1e300", id="recovered-at-huge"),
]


@pytest.mark.parametrize(("field", "value"), FIELDS)
def test_garbage_field_of_an_open_breaker_keeps_it_shut_for_its_whole_timeout(
    shared: Tuple[RedisStore, RedisCircuitBreaker], admin: redis.Redis, field: str, value: str
) -> None:
    """The script reads garbage as the safe value and writes it back: an unknown state is OPEN from
    now, unreadable timing restarts the open timeout, an unreadable trial count takes every permit."""
    store, breaker = shared
    breaker.record_failure("broker down")
    admin.hset(HASH, field, value)
    for reader in (breaker, make(store)):  # this process, and a breaker object of another
        status = assert_shut(reader)
        assert status["store_error"] is None, status  # repaired, not refused
        assert status["seconds_until_retry"] > 25  # of a 30 s timeout: nothing cut it short


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("opened_at", "nan", id="opened-at-nan"),
        pytest.param("in_flight", "-3", id="in-flight-negative"),
        pytest.param("generation", "abc", id="generation-not-a-number"),
        pytest.param("state", "garbage", id="state-unknown"),
    ],
)
def test_reset_repairs_a_garbage_field(
    shared: Tuple[RedisStore, RedisCircuitBreaker], admin: redis.Redis, field: str, value: str
) -> None:
    _, breaker = shared
    breaker.record_failure("broker down")
    admin.hset(HASH, field, value)
    breaker.reset()  # rewrites every field
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: "order sent") == "order sent"


def test_breaker_key_of_the_wrong_type_rejects_until_removed(
    shared: Tuple[RedisStore, RedisCircuitBreaker], admin: redis.Redis
) -> None:
    _, breaker = shared
    admin.set(HASH, "not a hash")
    status = assert_shut(breaker)
    assert "WRONGTYPE" in status["store_error"]
    admin.delete(HASH)
    wait_until(lambda: breaker.state is CircuitState.CLOSED, seconds=3.0)  # after its 0.5 s without asking


def test_garbage_window_head_still_counts_failures(volatile_server: Server, admin: redis.Redis) -> None:
    breaker = make(RedisStore(quick_client(volatile_server), NS), threshold=3)
    breaker.record_success()
    admin.hset(WINDOW, "head", "1e300")
    for _ in range(5):
        breaker.record_failure("broker down")
    assert breaker.get_status()["state"] == "open"


def test_garbage_window_bucket_is_harmless(volatile_server: Server, admin: redis.Redis) -> None:
    breaker = make(RedisStore(quick_client(volatile_server), NS), threshold=3)
    breaker.record_success()
    admin.hset(WINDOW, "c0", "abc")
    admin.hset(WINDOW, "i0", "nan")
    for _ in range(3):
        breaker.record_failure("broker down")
    assert_shut(breaker)


# --- the namespace clock's hash ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("offset", "abc", id="offset-not-a-number"),
        pytest.param("offset", "1e400", id="offset-infinite"),
        pytest.param("last", "abc", id="last-not-a-number"),
        pytest.param("last", "nan", id="last-nan"),
        pytest.param("last", "1e400", id="last-infinite"),
    ],
)
def test_garbage_clock_field_leaves_an_open_breaker_shut(
    shared: Tuple[RedisStore, RedisCircuitBreaker], admin: redis.Redis, field: str, value: str
) -> None:
    _, breaker = shared
    breaker.record_failure("broker down")
    admin.hset(CLOCK, field, value)
    assert_shut(breaker)
    assert_shut(make(RedisStore(admin, NS)))  # a process that starts on it, with no estimate of its own
    assert breaker.get_status()["store_error"] is None


def test_clock_key_of_the_wrong_type_fails_closed(
    shared: Tuple[RedisStore, RedisCircuitBreaker], admin: redis.Redis
) -> None:
    store, breaker = shared
    limiter = RedisRateLimiter(store, Limit(10, 60), name="orders")
    admin.set(CLOCK, "not a hash")
    assert not limiter.try_acquire()
    assert "WRONGTYPE" in assert_shut(breaker)["store_error"]
    admin.delete(CLOCK)
    assert limiter.try_acquire()


def test_far_future_clock_last_neither_empties_windows_nor_ends_timeouts(
    shared: Tuple[RedisStore, RedisCircuitBreaker], admin: redis.Redis
) -> None:
    store, breaker = shared
    limiter = RedisRateLimiter(store, Limit(10, 60), name="orders")
    assert [limiter.try_acquire() for _ in range(10)] == [True] * 10
    breaker.record_failure("broker down")
    last = int(admin.hget(CLOCK, "last"))  # type: ignore[arg-type]
    admin.hset(CLOCK, "last", str(last + 3_600_000_000))
    assert not any(limiter.try_acquire() for _ in range(10))
    assert breaker.state is CircuitState.OPEN
