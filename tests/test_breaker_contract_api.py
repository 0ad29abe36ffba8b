"""The breaker contract, part 2: what a caller drives and reads (rows M, R, L; callbacks, status, metrics).

Every test runs against each implementation (``make_any``, see tests/breakers.py): a CircuitBreaker
and a RedisCircuitBreaker, both on the ManualClock of the ``clock`` fixture. Part 1 is
test_breaker_contract.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from typing import Callable, List

import pytest

from circuit_breakers import BreakerMetrics, CircuitState, CircuitType, ConfigTypeError, ManualClock

from .breakers import AnyBreaker, MakeAny, join_or_fail, rejection, trip_again_from_half_open
from .conftest import Boom

Drive = Callable[..., None]

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


# --- manual control (M1-M3) ---------------------------------------------------------------------


def test_force_open_rejects_with_retry_after_none(make_any: MakeAny) -> None:
    breaker = make_any()
    breaker.force_open()
    assert breaker.state is OPEN
    exc = rejection(breaker)
    assert exc.retry_after is None
    status = breaker.get_status()
    assert (status["forced_open"], status["seconds_until_retry"]) == (True, None)
    assert not breaker.allow()


def test_force_open_never_drifts_to_half_open(make_any: MakeAny, clock: ManualClock) -> None:
    breaker = make_any(open_timeout_seconds=1, max_backoff_seconds=1)
    breaker.force_open()
    clock.advance(10**9)
    assert breaker.state is OPEN
    assert not breaker.allow()


def test_force_open_on_tripped_breaker_makes_it_permanent(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    breaker.force_open()
    clock.advance(10_000)
    assert breaker.state is OPEN


def test_force_close_closes_and_admits(make_any: MakeAny, fail: Drive, succeed: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    breaker.force_close()
    assert breaker.state is CLOSED
    succeed(breaker)


def test_force_close_ends_forced_open(make_any: MakeAny) -> None:
    breaker = make_any()
    breaker.force_open()
    breaker.force_close()
    assert breaker.state is CLOSED
    assert breaker.allow()


def test_force_close_restarts_backoff(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    trip_again_from_half_open(breaker, clock, fail)
    breaker.force_close()
    assert breaker.current_backoff == 60


def test_reset_returns_to_initial_state(make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=2, success_threshold=1, excluded_exceptions=(KeyError,))
    succeed(breaker)
    fail(breaker, 1, KeyError)
    fail(breaker, 2)
    rejection(breaker)
    clock.advance(60)
    succeed(breaker)  # recovers: last_recovery_time set
    fail(breaker, 2)
    trip_again_from_half_open(breaker, clock, fail)
    breaker.force_open()
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.current_backoff == 60
    assert breaker.metrics == BreakerMetrics(0, 0, 0, 0, 0, 0, None, None)
    status = breaker.get_status()
    assert (status["failures_in_window"], status["calls_in_window"], status["consecutive_trips"]) == (0, 0, 0)
    assert status["forced_open"] is False
    assert status["last_failure_message"] is None
    assert status["opened_at"] is None
    fail(breaker)
    assert breaker.state is CLOSED  # the window was emptied


def test_reset_empties_failure_window(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=3)
    fail(breaker, 2)
    breaker.reset()
    fail(breaker, 2)
    assert breaker.state is CLOSED


def test_reset_ends_forced_open(make_any: MakeAny) -> None:
    breaker = make_any()
    breaker.force_open()
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.get_status()["forced_open"] is False


# --- allow / record (R1, R2) --------------------------------------------------------------------


def test_allow_is_true_while_closed(make_any: MakeAny) -> None:
    breaker = make_any()
    assert breaker.allow() is True
    assert breaker.metrics.rejected_requests == 0


def test_allow_is_false_while_open_and_counts_rejection(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    assert breaker.allow() is False
    assert breaker.metrics.rejected_requests == 1


def test_allow_in_half_open_takes_permit(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=1)
    fail(breaker)
    clock.advance(60)
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_record_success_gives_back_half_open_permit(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=1, success_threshold=2)
    fail(breaker)
    clock.advance(60)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED


def test_record_failure_in_half_open_reopens(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    clock.advance(60)
    assert breaker.allow()
    breaker.record_failure(TimeoutError("slow"))
    assert breaker.state is OPEN


def test_record_failure_counts_toward_threshold(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=2)
    assert breaker.allow()
    breaker.record_failure("timeout")
    assert breaker.allow()
    breaker.record_failure("timeout")
    assert breaker.state is OPEN


def test_record_failure_with_exception_describes_it(make_any: MakeAny) -> None:
    breaker = make_any()
    breaker.record_failure(ValueError("bad price"))
    assert breaker.get_status()["last_failure_message"] == "ValueError: bad price"


def test_record_failure_with_message(make_any: MakeAny) -> None:
    breaker = make_any()
    breaker.record_failure("order rejected")
    assert breaker.get_status()["last_failure_message"] == "order rejected"
    assert breaker.metrics.failed_requests == 1


def test_record_failure_ignores_exception_filters(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1, excluded_exceptions=(KeyError,))
    breaker.record_failure(KeyError("x"))
    assert breaker.state is OPEN


def test_record_success_counts(make_any: MakeAny) -> None:
    breaker = make_any()
    assert breaker.allow()
    breaker.record_success()
    assert breaker.metrics.successful_requests == 1
    assert breaker.get_status()["calls_in_window"] == 1


def test_late_record_success_cannot_raise_half_open_limit(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=1, success_threshold=5)
    assert breaker.allow()  # a call admitted while CLOSED ...
    fail(breaker)  # ... the breaker trips meanwhile ...
    clock.advance(60)
    assert breaker.state is HALF_OPEN
    breaker.record_success()  # ... and the late outcome arrives while HALF_OPEN
    assert breaker.allow() is True
    assert breaker.allow() is False, "a second concurrent trial was admitted"


# --- late outcomes (L1): a call admitted in one period finishing in another ---------------------


def test_late_success_from_thread_leaves_breaker_open(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=2)
    started, release = threading.Event(), threading.Event()
    results: List[object] = []

    def slow_call() -> str:
        started.set()
        assert release.wait(timeout=10)
        return "late"

    worker = threading.Thread(target=lambda: results.append(breaker.call(slow_call)))
    worker.start()
    assert started.wait(timeout=10)
    fail(breaker, 2)
    assert breaker.state is OPEN
    retry_before = breaker.get_status()["seconds_until_retry"]
    release.set()
    join_or_fail(worker)
    assert results == ["late"]
    status = breaker.get_status()
    assert status["state"] == "open"
    assert (status["calls_in_window"], status["failures_in_window"]) == (0, 0)
    assert status["seconds_until_retry"] == retry_before


def test_late_success_from_with_block_leaves_breaker_open(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=2, success_threshold=1)
    with breaker:  # admitted while CLOSED, finishes after the trip
        fail(breaker, 2)
        retry_before = breaker.get_status()["seconds_until_retry"]
    assert breaker.state is OPEN
    status = breaker.get_status()
    assert status["calls_in_window"] == 0
    assert status["seconds_until_retry"] == retry_before


def test_late_success_while_half_open_is_not_a_trial_success(
    make_any: MakeAny, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=1, half_open_max_calls=1)
    with breaker:  # admitted while CLOSED
        fail(breaker)
        clock.advance(60)
        assert breaker.state is HALF_OPEN
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()  # the trial permit is still free


def test_late_failure_while_half_open_does_not_reopen(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1)

    def admitted_closed_failing_half_open() -> None:
        with breaker:
            fail(breaker)
            clock.advance(60)
            raise Boom("late")

    with pytest.raises(Boom):
        admitted_closed_failing_half_open()
    assert breaker.state is HALF_OPEN


def test_late_failure_does_not_count_in_next_closed_period(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1)

    def failing_after_force_cycle() -> None:
        with breaker:
            breaker.force_open()
            breaker.force_close()
            raise Boom("late")

    with pytest.raises(Boom):
        failing_after_force_cycle()
    assert breaker.state is CLOSED
    assert breaker.get_status()["failures_in_window"] == 0


def test_late_success_after_reset_does_not_count_in_window(make_any: MakeAny) -> None:
    breaker = make_any()
    with breaker:
        breaker.reset()
    assert breaker.get_status()["calls_in_window"] == 0


# --- callbacks ----------------------------------------------------------------------------------


def test_trip_callback_gets_name_and_type(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any("feed", CircuitType.RATE_LIMIT, failure_threshold=1)
    calls = []
    breaker.register_trip_callback(lambda *args: calls.append(args))
    fail(breaker)
    assert calls == [("feed", CircuitType.RATE_LIMIT)]


def test_recovery_callback_gets_name_and_type(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_any("feed", CircuitType.VOLATILITY, failure_threshold=1, success_threshold=1)
    calls = []
    breaker.register_recovery_callback(lambda *args: calls.append(args))
    fail(breaker)
    assert calls == []
    clock.advance(60)
    succeed(breaker)
    assert calls == [("feed", CircuitType.VOLATILITY)]


def test_callbacks_fire_in_order_over_a_cycle(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_any("b", CircuitType.VOLATILITY, failure_threshold=1, success_threshold=1)
    events: List[object] = []
    breaker.register_trip_callback(lambda name, kind: events.append(("trip", name, kind)))
    breaker.register_recovery_callback(lambda name, kind: events.append(("recovery", name, kind)))
    breaker.register_state_change_callback(lambda name, old, new: events.append((name, old, new)))
    fail(breaker)
    clock.advance(60)
    succeed(breaker)
    assert events == [
        ("trip", "b", CircuitType.VOLATILITY),
        ("b", CLOSED, OPEN),
        ("b", OPEN, HALF_OPEN),
        ("recovery", "b", CircuitType.VOLATILITY),
        ("b", HALF_OPEN, CLOSED),
    ]


def test_callbacks_fire_in_registration_order(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    order = []
    for i in range(3):
        breaker.register_trip_callback(lambda name, kind, i=i: order.append(i))
    fail(breaker)
    assert order == [0, 1, 2]


def test_half_open_to_open_fires_trip_and_state_change(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    clock.advance(60)
    trips, changes = [], []
    breaker.register_trip_callback(lambda name, kind: trips.append(name))
    breaker.register_state_change_callback(lambda name, old, new: changes.append((old, new)))
    fail(breaker)
    assert trips == ["test"]
    assert changes == [(OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]


def test_callback_runs_after_lock_released_and_sees_new_state(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    seen = []

    def on_trip(name: str, kind: CircuitType) -> None:
        seen.append(breaker.get_status()["state"])  # would deadlock if the lock were held

    breaker.register_trip_callback(on_trip)
    worker = threading.Thread(target=_call_expecting_boom, args=(breaker,))
    worker.start()
    join_or_fail(worker)
    assert seen == ["open"]


def _raise_boom() -> None:
    raise Boom("boom")


def _call_expecting_boom(breaker: AnyBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise_boom)


def test_callback_can_reset_breaker_without_deadlock(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1)
    breaker.register_trip_callback(lambda name, kind: breaker.reset())
    worker = threading.Thread(target=_call_expecting_boom, args=(breaker,))
    worker.start()
    join_or_fail(worker)
    assert breaker.state is CLOSED
    assert breaker.metrics.failed_requests == 0


def test_raising_callback_is_logged_and_isolated(make_any: MakeAny, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make_any(failure_threshold=1)
    later = []

    def broken(name: str, kind: CircuitType) -> None:
        raise ZeroDivisionError("callback bug")

    breaker.register_trip_callback(broken)
    breaker.register_trip_callback(lambda name, kind: later.append(name))
    with caplog.at_level(logging.ERROR, logger="circuit_breakers"), pytest.raises(Boom):
        breaker.call(_raise_boom)  # the caller sees its own error, not the callback's
    assert breaker.state is OPEN
    assert later == ["test"]
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ZeroDivisionError)]
    assert len(logged) == 1


def test_raising_state_change_callback_does_not_stop_recovery(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=1)
    recoveries = []
    breaker.register_state_change_callback(lambda *args: 1 / 0)
    breaker.register_recovery_callback(lambda name, kind: recoveries.append(name))
    with caplog.at_level(logging.ERROR, logger="circuit_breakers"):
        fail(breaker)
        clock.advance(60)
        succeed(breaker)
    assert breaker.state is CLOSED
    assert recoveries == ["test"]
    assert len([r for r in caplog.records if r.exc_info]) == 3


@pytest.mark.parametrize(
    "register", ["register_trip_callback", "register_recovery_callback", "register_state_change_callback"]
)
@pytest.mark.parametrize("value", [None, "not callable", 42])
def test_registering_non_callable_raises(make_any: MakeAny, register: str, value: object) -> None:
    with pytest.raises(ConfigTypeError):
        getattr(make_any(), register)(value)


# --- status and metrics -------------------------------------------------------------------------


STATUS_KEYS = {
    "name",
    "type",
    "state",
    "failures_in_window",
    "calls_in_window",
    "failure_rate",
    "consecutive_trips",
    "current_open_timeout",
    "seconds_until_retry",
    "total_requests",
    "successful_requests",
    "failed_requests",
    "rejected_requests",
    "last_failure_time",
    "last_failure_message",
    "opened_at",
}


def test_status_has_required_keys(make_any: MakeAny) -> None:
    assert set(make_any().get_status()) >= STATUS_KEYS


@pytest.mark.parametrize("setup", ["closed", "open", "half_open", "forced"])
def test_status_is_json_serialisable(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock, setup: str
) -> None:
    breaker = make_any("json", CircuitType.DAILY_LOSS, failure_threshold=2)
    succeed(breaker)
    fail(breaker, 1 if setup == "closed" else 2)
    if setup == "half_open":
        clock.advance(60)
    if setup == "forced":
        breaker.force_open()
    status = breaker.get_status()
    assert json.loads(json.dumps(status)) == status
    assert status["state"] == ("open" if setup == "forced" else setup)


def test_status_reports_identity(make_any: MakeAny) -> None:
    status = make_any("broker", CircuitType.CONNECTION_FAILURE).get_status()
    assert status["name"] == "broker"
    assert status["type"] == "connection_failure"
    assert status["state"] == "closed"


def test_status_reports_window_and_failures(make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=10)
    succeed(breaker, 3)
    fail(breaker, 1)
    status = breaker.get_status()
    assert (status["calls_in_window"], status["failures_in_window"]) == (4, 1)
    assert status["failure_rate"] == pytest.approx(0.25)
    assert status["last_failure_message"] == "Boom: boom"
    assert status["last_failure_time"] == clock.now().isoformat()
    assert (status["total_requests"], status["successful_requests"], status["failed_requests"]) == (4, 3, 1)


def test_status_of_empty_window_has_zero_rate(make_any: MakeAny) -> None:
    status = make_any().get_status()
    assert status["failure_rate"] == 0.0
    assert status["last_failure_time"] is None
    assert status["seconds_until_retry"] is None
    assert status["opened_at"] is None


def test_status_while_open(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1)
    opened = clock.now()
    fail(breaker)
    clock.advance(20)
    rejection(breaker)
    status = breaker.get_status()
    assert status["state"] == "open"
    assert status["opened_at"] == opened.isoformat()
    assert status["seconds_until_retry"] == pytest.approx(40.0)
    assert status["rejected_requests"] == 1


def test_status_reads_half_open_lazily(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    clock.advance(60)
    status = breaker.get_status()
    assert status["state"] == "half_open"
    assert status["seconds_until_retry"] == 0.0


def test_metrics_is_frozen_dataclass(make_any: MakeAny) -> None:
    metrics = make_any().metrics
    assert dataclasses.is_dataclass(metrics)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.total_requests = 5  # type: ignore[misc]


def test_metrics_snapshot_does_not_change(make_any: MakeAny, succeed: Drive) -> None:
    breaker = make_any()
    before = breaker.metrics
    succeed(breaker)
    assert before.successful_requests == 0
    assert breaker.metrics.successful_requests == 1


def test_metrics_total_is_sum_of_outcomes(make_any: MakeAny, fail: Drive, succeed: Drive) -> None:
    breaker = make_any(failure_threshold=3, excluded_exceptions=(KeyError,))
    succeed(breaker, 4)
    fail(breaker, 2, KeyError)
    fail(breaker, 3)
    for _ in range(5):
        rejection(breaker)
    metrics = breaker.metrics
    assert (metrics.successful_requests, metrics.failed_requests, metrics.ignored_requests) == (4, 3, 2)
    assert metrics.rejected_requests == 5
    assert metrics.total_requests == 14


def test_metrics_count_trips_and_times(make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=1)
    fail(breaker)
    failed_at = clock.now()
    clock.advance(60)
    succeed(breaker)
    metrics = breaker.metrics
    assert metrics.circuit_trips == 1
    assert metrics.last_failure_time == failed_at
    assert metrics.last_recovery_time == clock.now()
