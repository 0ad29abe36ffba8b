"""RedisCircuitBreaker against a real redis-server: the rules of test_breaker.py, shared state, failing closed.

Time cannot be faked on the server (the scripts read its clock), so timeouts are short (0.05-0.6 s)
and tests wait for a state with a bounded poll, never a long fixed sleep.
"""

from __future__ import annotations

import inspect
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
    StateStoreError,
)
from circuit_breakers.redis import RedisCircuitBreaker, RedisStore

from .conftest import Boom
from .redis_server import RedisServer

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


class APIError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _raise(exc: BaseException) -> None:
    raise exc


# --- tripping ---------------------------------------------------------------------------------


def test_new_breaker_is_closed(make: Make) -> None:
    breaker = make()
    assert breaker.state is CLOSED
    assert breaker.is_closed
    assert not breaker.is_open
    assert not breaker.is_half_open


def test_stays_closed_below_failure_threshold(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state is CLOSED


def test_trips_on_failure_threshold_failures(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=3)
    fail(breaker, 3)
    assert breaker.is_open


def test_successes_in_between_do_not_forgive_failures(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=3, minimum_calls=1000)
    fail(breaker, 2)
    succeed(breaker, 5)
    fail(breaker)
    assert breaker.state is OPEN


def test_failures_older_than_window_no_longer_count(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=3, failure_window_seconds=0.6)
    fail(breaker, 2)
    assert breaker.get_status()["failures_in_window"] == 2
    wait_for(lambda: breaker.get_status()["failures_in_window"] == 0)
    fail(breaker)
    assert breaker.state is CLOSED
    assert breaker.get_status()["failures_in_window"] == 1


def test_trips_on_failure_rate_once_minimum_calls_seen(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    for _ in range(5):
        succeed(breaker)
        fail(breaker)
    assert breaker.state is OPEN


def test_failure_rate_below_threshold_does_not_trip(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    succeed(breaker, 6)
    fail(breaker, 4)
    assert breaker.state is CLOSED


def test_failure_rate_ignored_before_minimum_calls(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    succeed(breaker, 4)
    fail(breaker, 5)  # 9 calls, 55 % failures, fewer than minimum_calls
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.state is OPEN


def test_window_memory_is_bounded(make: Make, succeed: Drive, redis_client: redis.Redis) -> None:
    breaker = make(failure_window_seconds=0.06)  # 1 ms buckets: the calls below span many windows
    deadline = time.monotonic() + 0.15
    while time.monotonic() < deadline:
        succeed(breaker)
    assert redis_client.hlen("ns:cb:test:window") <= 3 * 60 + 1
    assert redis_client.hlen("ns:cb:test") <= 11


# --- rejections while open --------------------------------------------------------------------


def test_open_breaker_rejects_without_calling_and_says_why(make: Make, fail: Drive) -> None:
    breaker = make("broker_api", CircuitType.CONNECTION_FAILURE, failure_threshold=1)
    fail(breaker)
    exc = rejection(breaker)
    assert (exc.name, exc.circuit_type, exc.state) == ("broker_api", CircuitType.CONNECTION_FAILURE, OPEN)
    assert exc.retry_after is not None
    assert 0 < exc.retry_after <= OPEN_SECONDS
    assert "broker_api" in str(exc)


def test_rejections_are_counted(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1)
    fail(breaker)
    for _ in range(3):
        rejection(breaker)
    assert breaker.metrics.rejected_requests == 3
    assert breaker.allow() is False
    assert breaker.metrics.rejected_requests == 4


# --- half-open --------------------------------------------------------------------------------


def test_open_becomes_half_open_after_open_timeout(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1)
    fail(breaker)
    started = time.monotonic()
    assert breaker.state is OPEN
    wait_half_open(breaker)  # observed lazily, no call needed
    assert time.monotonic() - started >= OPEN_SECONDS - 0.05


def test_half_open_rejects_second_trial_with_retry_after_zero(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1)
    fail(breaker)
    wait_half_open(breaker)
    with breaker:  # the one trial, in flight
        exc = rejection(breaker)
    assert (exc.state, exc.retry_after) == (HALF_OPEN, 0.0)


@pytest.mark.parametrize("limit", [1, 3])
def test_half_open_admits_exactly_half_open_max_calls_under_16_threads(make: Make, limit: int) -> None:
    threads = 16
    breaker = make(failure_threshold=1, half_open_max_calls=limit, success_threshold=limit)
    breaker.record_failure("trip")
    wait_half_open(breaker)
    lock = threading.Lock()
    counts = {"admitted": 0, "rejected": 0}
    decided = threading.Event()
    retry_afters: List[Optional[float]] = []
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)

    def note(kind: str) -> None:
        with lock:
            counts[kind] += 1
            if counts["admitted"] + counts["rejected"] == threads:
                decided.set()

    def trial() -> str:
        note("admitted")
        assert decided.wait(timeout=JOIN_TIMEOUT), "other threads were never decided"
        return "ok"

    def work(index: int) -> None:
        start.wait()
        try:
            breaker.call(trial)
        except CircuitOpenException as exc:
            retry_afters.append(exc.retry_after)
            note("rejected")

    assert run_threads(threads, work) == []
    assert counts == {"admitted": limit, "rejected": threads - limit}
    assert retry_afters == [0.0] * (threads - limit)
    assert breaker.state is CLOSED


def test_finished_trial_frees_its_permit(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1, success_threshold=3)
    fail(breaker)
    wait_half_open(breaker)
    succeed(breaker, 2)  # the second is admitted because the first gave its permit back
    assert breaker.state is HALF_OPEN


def test_success_threshold_successes_close(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=1, success_threshold=3)
    fail(breaker)
    wait_half_open(breaker)
    succeed(breaker, 2)
    assert breaker.state is HALF_OPEN
    succeed(breaker)
    assert breaker.state is CLOSED


def test_recovered_breaker_starts_with_empty_window(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=2, success_threshold=1)
    fail(breaker, 2)
    wait_half_open(breaker)
    succeed(breaker)
    assert breaker.get_status()["failures_in_window"] == 0
    fail(breaker)
    assert breaker.state is CLOSED


def test_failure_in_half_open_reopens_with_backoff(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=5, success_threshold=3, backoff_multiplier=2.0)
    fail(breaker, 5)
    wait_half_open(breaker)
    succeed(breaker, 2)
    fail(breaker)  # one failure re-opens, whatever failure_threshold says
    assert breaker.state is OPEN
    status = breaker.get_status()
    assert status["consecutive_trips"] == 2
    assert status["current_open_timeout"] == pytest.approx(2 * OPEN_SECONDS)
    assert breaker.current_backoff == pytest.approx(2 * OPEN_SECONDS)
    assert OPEN_SECONDS < status["seconds_until_retry"] <= 2 * OPEN_SECONDS


def test_consecutive_trips_back_off_up_to_the_maximum(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, open_timeout_seconds=0.1, backoff_multiplier=2.0, max_backoff_seconds=0.3)
    fail(breaker)
    for k, seconds in enumerate([0.1, 0.2, 0.3, 0.3], start=1):
        if k > 1:
            wait_half_open(breaker)
            fail(breaker)
        retry_after = rejection(breaker).retry_after
        assert retry_after is not None
        assert seconds - 0.1 < retry_after <= seconds, f"trip {k}"
        assert breaker.get_status()["consecutive_trips"] == k


def test_fixed_backoff_when_exponential_disabled(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, open_timeout_seconds=0.1, exponential_backoff=False)
    fail(breaker)
    wait_half_open(breaker)
    fail(breaker)
    assert breaker.current_backoff == pytest.approx(0.1)
    retry_after = rejection(breaker).retry_after
    assert retry_after is not None
    assert 0.05 < retry_after <= 0.1


def test_recovery_resets_backoff(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=1, success_threshold=1, open_timeout_seconds=0.05)
    fail(breaker)
    wait_half_open(breaker)
    fail(breaker)
    assert breaker.current_backoff == pytest.approx(0.1)
    wait_half_open(breaker)
    succeed(breaker)
    assert breaker.state is CLOSED
    assert breaker.current_backoff == pytest.approx(0.05)
    assert breaker.get_status()["consecutive_trips"] == 0


def test_undecided_trial_reopens_after_half_open_timeout(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, success_threshold=1, half_open_timeout_seconds=0.1)
    fail(breaker)
    wait_half_open(breaker)
    with breaker:  # a trial that hangs; its late success must not close the breaker
        wait_for(lambda: breaker.state is OPEN)
    assert breaker.state is OPEN
    assert breaker.get_status()["consecutive_trips"] == 2


def test_half_open_without_trial_does_not_time_out(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, half_open_timeout_seconds=0.05)
    fail(breaker)
    wait_half_open(breaker)
    time.sleep(0.15)
    assert breaker.state is HALF_OPEN
    assert breaker.allow()


# --- which exceptions count -------------------------------------------------------------------


def test_excluded_exception_passes_through_and_counts_as_neither(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, excluded_exceptions=(KeyError,))
    fail(breaker, 3, KeyError)
    assert breaker.state is CLOSED
    metrics = breaker.metrics
    assert (metrics.ignored_requests, metrics.failed_requests, metrics.successful_requests) == (3, 0, 0)
    assert breaker.get_status()["calls_in_window"] == 0


def test_excluded_wins_over_failure_exceptions(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, failure_exceptions=(LookupError,), excluded_exceptions=(KeyError,))
    fail(breaker, 1, KeyError)
    assert breaker.state is CLOSED
    fail(breaker, 1, IndexError)
    assert breaker.state is OPEN


@pytest.mark.parametrize("exc_type", [KeyError, KeyboardInterrupt])
def test_uncounted_exception_gives_back_half_open_permit(make: Make, fail: Drive, exc_type: type) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1, excluded_exceptions=(KeyError,))
    fail(breaker)
    wait_half_open(breaker)
    fail(breaker, 1, exc_type)
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_never_count_as_failures(make: Make, fail: Drive, exc_type: type) -> None:
    breaker = make(failure_threshold=1, failure_exceptions=(BaseException,))
    fail(breaker, 2, exc_type)
    assert breaker.state is CLOSED
    assert (breaker.metrics.failed_requests, breaker.metrics.ignored_requests) == (0, 2)


@pytest.mark.parametrize(("status", "state"), [(503, OPEN), (404, CLOSED)])
def test_predicate_tells_failures_apart(make: Make, status: int, state: CircuitState) -> None:
    def is_server_error(exc: BaseException) -> bool:
        return isinstance(exc, APIError) and exc.status >= 500

    breaker = make(failure_threshold=1, failure_exceptions=(is_server_error,))
    with pytest.raises(APIError):
        breaker.call(_raise, APIError(status))
    assert breaker.state is state


# --- manual control ---------------------------------------------------------------------------


def test_force_open_rejects_and_never_drifts_to_half_open(make: Make) -> None:
    breaker = make(open_timeout_seconds=0.05)
    breaker.force_open()
    time.sleep(0.1)
    assert breaker.state is OPEN
    assert rejection(breaker).retry_after is None
    status = breaker.get_status()
    assert (status["forced_open"], status["seconds_until_retry"]) == (True, None)
    assert not breaker.allow()


def test_force_close_ends_forced_open_and_restarts_backoff(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=1, open_timeout_seconds=0.05)
    fail(breaker)
    wait_half_open(breaker)
    fail(breaker)
    breaker.force_open()
    breaker.force_close()
    assert breaker.state is CLOSED
    assert breaker.current_backoff == pytest.approx(0.05)
    succeed(breaker)


def test_reset_returns_to_initial_state(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make(failure_threshold=2, success_threshold=1, excluded_exceptions=(KeyError,))
    succeed(breaker)
    fail(breaker, 1, KeyError)
    fail(breaker, 2)
    rejection(breaker)
    breaker.force_open()
    breaker.reset()
    assert breaker.state is CLOSED
    metrics = breaker.metrics
    assert (metrics.total_requests, metrics.circuit_trips, metrics.last_failure_time) == (0, 0, None)
    status = breaker.get_status()
    assert (status["calls_in_window"], status["consecutive_trips"], status["forced_open"]) == (0, 0, False)
    assert (status["last_failure_message"], status["opened_at"]) == (None, None)
    fail(breaker)
    assert breaker.state is CLOSED  # the window was emptied


# --- allow / record ---------------------------------------------------------------------------


def test_allow_in_half_open_takes_the_permit(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1)
    fail(breaker)
    wait_half_open(breaker)
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_record_success_gives_back_half_open_permit(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1, success_threshold=2)
    fail(breaker)
    wait_half_open(breaker)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED


def test_record_failure_counts_in_any_state_and_describes_it(make: Make) -> None:
    breaker = make(failure_threshold=2, excluded_exceptions=(KeyError,))
    breaker.record_failure("order rejected")
    breaker.record_failure(KeyError("x"))  # the exception filters apply only to calls the breaker makes
    assert breaker.state is OPEN
    assert breaker.get_status()["last_failure_message"] == "KeyError: 'x'"
    wait_half_open(breaker)
    assert breaker.allow()
    breaker.record_failure(TimeoutError("slow"))
    assert breaker.state is OPEN


def test_late_record_success_cannot_raise_half_open_limit(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1, success_threshold=5)
    assert breaker.allow()  # a call admitted while CLOSED ...
    fail(breaker)  # ... the breaker trips meanwhile ...
    wait_half_open(breaker)
    breaker.record_success()  # ... and the late outcome arrives while HALF_OPEN
    assert breaker.allow() is True
    assert breaker.allow() is False, "a second concurrent trial was admitted"


# --- late outcomes ----------------------------------------------------------------------------


def test_late_success_leaves_breaker_open(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=2, success_threshold=1)
    with breaker:  # admitted while CLOSED, finishes after the trip
        fail(breaker, 2)
        retry_before = breaker.get_status()["seconds_until_retry"]
    status = breaker.get_status()
    assert (status["state"], status["calls_in_window"]) == ("open", 0)
    assert status["seconds_until_retry"] <= retry_before


def test_late_success_while_half_open_is_not_a_trial_success(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1, success_threshold=1, half_open_max_calls=1)
    with breaker:
        fail(breaker)
        wait_half_open(breaker)
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()


def test_late_failure_while_half_open_does_not_reopen(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1)

    def admitted_closed_failing_half_open() -> None:
        with breaker:
            fail(breaker)
            wait_half_open(breaker)
            raise Boom("late")

    with pytest.raises(Boom):
        admitted_closed_failing_half_open()
    assert breaker.state is HALF_OPEN


def test_late_failure_does_not_count_in_next_closed_period(make: Make) -> None:
    breaker = make(failure_threshold=1)

    def failing_after_force_cycle() -> None:
        with breaker:
            breaker.force_open()
            breaker.force_close()
            raise Boom("late")

    with pytest.raises(Boom):
        failing_after_force_cycle()
    assert breaker.state is CLOSED
    assert breaker.get_status()["failures_in_window"] == 0


def test_late_success_after_reset_does_not_count_in_window(make: Make) -> None:
    breaker = make()
    with breaker:
        breaker.reset()
    assert breaker.get_status()["calls_in_window"] == 0


# --- callbacks --------------------------------------------------------------------------------


def test_callbacks_fire_in_order_over_a_cycle(make: Make, fail: Drive, succeed: Drive) -> None:
    breaker = make("b", CircuitType.VOLATILITY, failure_threshold=1, success_threshold=1)
    events: List[object] = []
    breaker.register_trip_callback(lambda name, kind: events.append(("trip", name, kind)))
    breaker.register_recovery_callback(lambda name, kind: events.append(("recovery", name, kind)))
    breaker.register_state_change_callback(lambda name, old, new: events.append((name, old, new)))
    fail(breaker)
    wait_half_open(breaker)
    succeed(breaker)
    assert events == [
        ("trip", "b", CircuitType.VOLATILITY),
        ("b", CLOSED, OPEN),
        ("b", OPEN, HALF_OPEN),
        ("recovery", "b", CircuitType.VOLATILITY),
        ("b", HALF_OPEN, CLOSED),
    ]


def test_half_open_to_open_fires_trip_and_state_change(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1)
    fail(breaker)
    wait_half_open(breaker)
    trips: List[str] = []
    changes: List[object] = []
    breaker.register_trip_callback(lambda name, kind: trips.append(name))
    breaker.register_state_change_callback(lambda name, old, new: changes.append((old, new)))
    fail(breaker)
    assert (trips, changes) == (["test"], [(HALF_OPEN, OPEN)])


def test_callbacks_fire_only_in_the_object_that_caused_the_transition(make: Make, fail: Drive) -> None:
    first, second = make(failure_threshold=1), make(failure_threshold=1)
    trips: List[str] = []
    first.register_trip_callback(lambda name, kind: trips.append("first"))
    second.register_trip_callback(lambda name, kind: trips.append("second"))
    fail(first)
    assert second.is_open
    assert trips == ["first"]


def test_callback_can_call_back_into_the_breaker(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1)
    seen: List[str] = []
    breaker.register_trip_callback(lambda name, kind: seen.append(breaker.get_status()["state"]))
    breaker.register_trip_callback(lambda name, kind: breaker.reset())
    fail(breaker)
    assert seen == ["open"]
    assert breaker.state is CLOSED


def test_raising_callback_is_logged_and_isolated(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make(failure_threshold=1)
    later: List[str] = []
    breaker.register_trip_callback(lambda name, kind: 1 / 0)
    breaker.register_trip_callback(lambda name, kind: later.append(name))
    with caplog.at_level(logging.ERROR, logger="circuit_breakers"), pytest.raises(Boom):
        breaker.call(_raise, Boom("boom"))  # the caller sees its own error, not the callback's
    assert breaker.state is OPEN
    assert later == ["test"]
    assert len([r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ZeroDivisionError)]) == 1


@pytest.mark.parametrize(
    "register", ["register_trip_callback", "register_recovery_callback", "register_state_change_callback"]
)
def test_registering_non_callable_raises(make: Make, register: str) -> None:
    with pytest.raises(ConfigTypeError):
        getattr(make(), register)(42)


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


def test_decorator_keeps_signature_and_exposes_breaker(make: Make, fail: Drive) -> None:
    breaker = make(failure_threshold=1)

    @breaker
    def place_order(symbol: str, quantity: int = 1) -> str:
        """Send an order."""
        return f"{quantity} {symbol}"

    assert place_order("SPY", quantity=3) == "3 SPY"
    assert place_order.__name__ == "place_order"  # type: ignore[attr-defined]
    assert place_order.__doc__ == "Send an order."
    assert str(inspect.signature(place_order)) == "(symbol: 'str', quantity: 'int' = 1) -> 'str'"
    assert place_order.breaker is breaker
    fail(breaker)
    with pytest.raises(CircuitOpenException):
        place_order("SPY")


def test_decorated_method_binds_to_its_instance(make: Make) -> None:
    breaker = make()

    class Client:
        def __init__(self, venue: str) -> None:
            self.venue = venue

        @breaker
        def quote(self, symbol: str) -> str:
            return f"{self.venue}:{symbol}"

    assert Client("XNYS").quote("SPY") == "XNYS:SPY"
    assert Client.quote.breaker is breaker


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


def test_decorator_refuses_async_functions(make: Make) -> None:
    async def fetch() -> None:
        return None

    with pytest.raises(ConfigTypeError):
        make()(fetch)


def test_nested_with_blocks_track_each_entry(make: Make) -> None:
    breaker = make(failure_threshold=1)

    def outer_fails_inner_succeeds() -> None:
        with breaker:
            with breaker:
                pass
            raise Boom("outer")

    with pytest.raises(Boom):
        outer_fails_inner_succeeds()
    assert breaker.is_open
    assert breaker.metrics.successful_requests == 1


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
