"""What only the RedisCircuitBreaker does, against a real redis-server: one breaker shared by every
object (and process) naming it, its keys, its construction, and failing closed.

The rules every breaker follows run against it in the contract suite (tests/test_breaker_contract*.py,
``make_any``). These tests use the server's own clock, so timeouts are short (0.05-0.6 s) and
tests wait for a state with a bounded poll, never a long fixed sleep.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ConfigError,
    ConfigTypeError,
    ManualClock,
    StateStoreError,
)
from circuit_breakers.redis import RedisCircuitBreaker, RedisStore
from tests.conftest import Boom
from tests.redis_server import RedisServer

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
OPEN_SECONDS = 0.1
JOIN_TIMEOUT = 10

Make = Callable[..., RedisCircuitBreaker]
Drive = Callable[..., None]


@pytest.fixture
def make(redis_client: redis.Redis) -> Make:
    """Build a breaker on the shared server; keyword arguments are CircuitBreakerConfig fields."""

    def build(
        name: str = "test",
        circuit_type: CircuitType = CircuitType.GENERIC,
        *,
        namespace: str = "ns",
        client: Optional[redis.Redis] = None,
        timeout: float = 0.5,
        **fields: Any,
    ) -> RedisCircuitBreaker:
        fields.setdefault("open_timeout_seconds", OPEN_SECONDS)
        config = CircuitBreakerConfig(**fields)
        used = redis_client if client is None else client
        return RedisCircuitBreaker(name, circuit_type, config, store=RedisStore(used, namespace), timeout=timeout)

    return build


@pytest.fixture
def own_client(own_redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of a server the test may kill: one retry, no backoff, 1 s socket timeouts."""
    client = own_redis_server.client(retry=Retry(NoBackoff(), 1))
    yield client
    client.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def wait_half_open(breaker: RedisCircuitBreaker) -> None:
    wait_for(lambda: breaker.state is HALF_OPEN)


def rejection(breaker: RedisCircuitBreaker) -> CircuitOpenException:
    """Make a call that must be rejected without running; return the exception."""
    called: List[int] = []
    with pytest.raises(CircuitOpenException) as info:
        breaker.call(called.append, 1)
    assert called == []
    return info.value


def run_threads(count: int, target: Callable[[int], None]) -> List[BaseException]:
    errors: List[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "threads still running"
    return errors


def _raise(exc: BaseException) -> None:
    raise exc


# --- keys ------------------------------------------------------------------------------------------


def test_window_memory_is_bounded(make: Make, succeed: Drive, redis_client: redis.Redis) -> None:
    breaker = make(failure_window_seconds=0.06)  # 1 ms buckets: the calls below span many windows
    deadline = time.monotonic() + 0.15
    while time.monotonic() < deadline:
        succeed(breaker)
    assert redis_client.hlen("ns:cb:test:window") <= 3 * 60 + 1
    assert redis_client.hlen("ns:cb:test") <= 11


# --- threads: the half-open limit under 16 threads is in tests/test_breaker_threads.py, for both ----


# --- callbacks --------------------------------------------------------------------------------


def test_callbacks_fire_only_in_the_object_that_caused_the_transition(make: Make, fail: Drive) -> None:
    first, second = make(failure_threshold=1), make(failure_threshold=1)
    trips: List[str] = []
    first.register_trip_callback(lambda name, kind: trips.append("first"))
    second.register_trip_callback(lambda name, kind: trips.append("second"))
    fail(first)
    assert second.is_open
    assert trips == ["first"]


# --- status and metrics -----------------------------------------------------------------------


@pytest.mark.parametrize("setup", ["closed", "open", "half_open", "forced"])
def test_status_is_json_serialisable_with_in_process_keys(make: Make, fail: Drive, succeed: Drive, setup: str) -> None:
    breaker = make("json", CircuitType.DAILY_LOSS, failure_threshold=2)
    succeed(breaker)
    fail(breaker, 1 if setup == "closed" else 2)
    if setup == "half_open":
        wait_half_open(breaker)
    if setup == "forced":
        breaker.force_open()
    status = breaker.get_status()
    assert json.loads(json.dumps(status)) == status
    assert set(status) == set(CircuitBreaker("in_process").get_status()) | {"store", "store_error"}
    assert status["state"] == ("open" if setup == "forced" else setup)
    assert (status["store"], status["store_error"]) == ("redis ns", None)
    assert (status["name"], status["type"]) == ("json", "daily_loss")


def test_status_reports_window_counters_and_shared_times(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=10)
    succeed(breaker, 3)
    fail(breaker)
    status = breaker.get_status()
    assert (status["calls_in_window"], status["failures_in_window"]) == (4, 1)
    assert status["failure_rate"] == pytest.approx(0.25)
    assert status["last_failure_message"] == "Boom: boom"
    assert (status["total_requests"], status["successful_requests"], status["failed_requests"]) == (4, 3, 1)
    other = make(failure_threshold=10)
    breaker.force_open()
    assert other.get_status()["opened_at"] == breaker.get_status()["opened_at"] is not None


def test_metrics_count_shared_trips_and_recovery(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=1, success_threshold=1)
    observer = make(failure_threshold=1, success_threshold=1)
    fail(breaker)
    wait_half_open(breaker)
    succeed(breaker)
    assert breaker.metrics.circuit_trips == observer.metrics.circuit_trips == 1
    assert observer.metrics.last_recovery_time is not None
    assert observer.metrics.total_requests == 0  # counters are per process (per object)


def test_counters_and_window_are_exact_under_contention(make: Make) -> None:
    threads, calls = 8, 25
    breaker = make(failure_threshold=10**6, minimum_calls=10**6)
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)

    def work(index: int) -> None:
        start.wait()
        for i in range(calls):
            if i % 5 == 0:
                with pytest.raises(Boom):
                    breaker.call(_raise, Boom("x"))
            else:
                breaker.call(int)

    assert run_threads(threads, work) == []
    status = breaker.get_status()
    assert (status["calls_in_window"], status["failures_in_window"]) == (threads * calls, threads * 5)
    assert (status["successful_requests"], status["failed_requests"]) == (threads * 20, threads * 5)


# --- one breaker shared by every object with the same namespace and name ------------------------


def test_trip_in_one_object_opens_the_other(make: Make, fail: Drive) -> None:
    first, second = make(failure_threshold=2), make(failure_threshold=2)
    fail(first)
    fail(second)  # both count in one window
    assert first.is_open
    rejection(second)
    assert second.allow() is False


def test_half_open_permits_are_shared(make: Make, fail: Drive) -> None:
    first, second = make(failure_threshold=1), make(failure_threshold=1)
    fail(first)
    wait_half_open(second)
    assert first.allow() is True
    assert second.allow() is False


def test_other_namespace_or_name_is_another_breaker(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=1)
    fail(breaker)
    succeed(make(failure_threshold=1, namespace="elsewhere"))
    succeed(make("other", failure_threshold=1))


# --- call styles --------------------------------------------------------------------------------


def test_decode_responses_client_works(make: Make, redis_server: RedisServer, fail: Drive) -> None:
    client = redis_server.client(decode_responses=True)
    try:
        breaker = make(failure_threshold=1, client=client)
        assert breaker.call(int, "3") == 3
        fail(breaker)
        assert rejection(breaker).retry_after is not None
        assert breaker.get_status()["circuit_trips"] == 1
    finally:
        client.close()


# --- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"name": ""}, ConfigError),
        ({"name": "   "}, ConfigError),
        ({"circuit_type": "generic"}, ConfigTypeError),
        ({"config": {"failure_threshold": 3}}, ConfigTypeError),
        ({"namespace": ""}, ConfigError),
        ({"timeout": 0}, ConfigError),
        ({"timeout": "1"}, ConfigTypeError),
        ({"client": "redis://localhost"}, ConfigTypeError),
        ({"store": "ns"}, ConfigTypeError),
    ],
)
def test_bad_arguments_are_refused(redis_client: redis.Redis, arguments: Any, error: type) -> None:
    options: Any = {"name": "b", "client": redis_client, "namespace": "ns", **arguments}

    def build() -> None:
        store = RedisStore(options.pop("client"), options.pop("namespace"))
        RedisCircuitBreaker(**{"store": store, **options})

    with pytest.raises(error):
        build()


@pytest.mark.parametrize("clock", [object(), "now", 0.0])
def test_a_store_clock_must_be_a_clock(redis_client: redis.Redis, clock: object) -> None:
    with pytest.raises(ConfigTypeError, match="monotonic"):
        RedisStore(redis_client, "ns", clock=clock)  # type: ignore[arg-type]


def test_a_store_clock_times_the_shared_breaker(redis_client: redis.Redis) -> None:
    """For tests and replays: the given clock stands for the server's (namespace time) and this process's."""
    clock = ManualClock()
    config = CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=3600)
    breaker = RedisCircuitBreaker("b", config=config, store=RedisStore(redis_client, "ns", clock=clock))
    breaker.record_failure("down")
    status = breaker.get_status()
    assert (status["opened_at"], status["last_failure_time"]) == (clock.now().isoformat(), clock.now().isoformat())
    assert status["seconds_until_retry"] == 3600
    clock.advance(3600)
    assert breaker.state is HALF_OPEN  # an hour, at once
    assert int(redis_client.hget("ns:clock", "last") or 0) == round(clock.now().timestamp() * 1_000_000)


def test_client_without_socket_timeout_is_refused(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        with pytest.raises(ConfigError, match="socket_timeout"):
            RedisCircuitBreaker("b", store=RedisStore(client, "ns"))
    finally:
        client.close()


def test_defaults_and_repr(make: Make) -> None:
    breaker = make("orders")
    assert breaker.circuit_type is CircuitType.GENERIC
    assert "orders" in repr(breaker)
    assert "redis ns" in repr(breaker)


def test_package_does_not_import_redis() -> None:
    code = "import sys, circuit_breakers; sys.exit('redis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=30).returncode == 0


# --- failing closed -----------------------------------------------------------------------------


def test_dead_redis_rejects_quickly_then_recovers(
    own_redis_server: RedisServer, own_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = RedisCircuitBreaker("feed", store=RedisStore(own_client, "ns"), timeout=0.05)
    assert breaker.call(int, "1") == 1
    own_redis_server.kill()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="circuit_breakers"):
        exc = rejection(breaker)
        assert time.monotonic() - started < 2
        for _ in range(10):
            assert breaker.allow() is False
    assert (exc.state, exc.retry_after) == (OPEN, None)
    assert "redis ns" in str(exc)
    assert "ConnectionError" in str(exc)
    assert isinstance(exc.__cause__, StateStoreError)
    assert len([r for r in caplog.records if "failing closed" in r.getMessage()]) == 1  # not one per call
    assert breaker.state is OPEN
    status = breaker.get_status()
    assert status["state"] == "open"
    assert "ConnectionError" in status["store_error"]
    assert json.loads(json.dumps(status)) == status
    with pytest.raises(StateStoreError):
        breaker.force_open()
    own_redis_server.start()
    wait_for(breaker.allow, timeout=5)
    breaker.record_success()
    assert breaker.call(int, "2") == 2
    assert breaker.get_status()["store_error"] is None


def test_outcome_that_cannot_be_recorded_is_logged_and_dropped(
    own_redis_server: RedisServer, own_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = RedisCircuitBreaker("feed", store=RedisStore(own_client, "ns"))

    def outage() -> None:
        own_redis_server.kill()
        raise ConnectionResetError("broker went away")

    with caplog.at_level(logging.WARNING, logger="circuit_breakers"), pytest.raises(ConnectionResetError):
        breaker.call(outage)  # the caller sees its own error
    assert breaker.metrics.failed_requests == 1
    assert any("outcome dropped" in r.getMessage() for r in caplog.records)


def test_state_survives_a_redis_restart(own_redis_server: RedisServer, own_client: redis.Redis, fail: Drive) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=60)
    breaker = RedisCircuitBreaker("feed", config=config, store=RedisStore(own_client, "ns"), timeout=0.05)
    fail(breaker)
    own_redis_server.kill()
    own_redis_server.start()
    wait_for(lambda: breaker.get_status()["store_error"] is None, timeout=5)
    exc = rejection(breaker)
    assert exc.retry_after is not None  # still the same trip, not a store failure
    assert exc.retry_after > 50


def test_an_unknown_stored_state_is_open_for_a_whole_timeout(make: Make, redis_client: redis.Redis) -> None:
    breaker = make(timeout=0.3, open_timeout_seconds=30)
    redis_client.hset("ns:cb:test", "state", "banana")
    exc = rejection(breaker)
    assert exc.state is OPEN
    assert exc.retry_after is not None
    assert exc.retry_after > 29  # garbage reads as a trip from now, and is written back so
    assert redis_client.hget("ns:cb:test", "state") == b"open"


def test_a_key_of_the_wrong_type_fails_closed_until_repaired(
    make: Make, redis_client: redis.Redis, succeed: Drive
) -> None:
    breaker = make(timeout=0.3)
    redis_client.set("ns:cb:test", "not a hash")
    exc = rejection(breaker)
    assert (exc.state, exc.retry_after) == (OPEN, None)
    assert "redis ns" in str(exc)
    assert breaker.state is OPEN
    redis_client.delete("ns:cb:test")
    assert not breaker.allow()  # within `timeout` of the failure Redis is not asked again
    wait_for(breaker.allow)
    breaker.record_success()
    succeed(breaker)
