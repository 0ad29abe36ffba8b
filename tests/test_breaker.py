"""The CircuitBreaker state machine, driven by a ManualClock (and by freezegun for the default clock)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from contextlib import ExitStack
from decimal import Decimal
from typing import Callable, List

import pytest
from freezegun import freeze_time

from circuit_breakers import (
    BreakerMetrics,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerError,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ConfigError,
    ConfigTypeError,
    ManualClock,
)

from .conftest import Boom

MakeBreaker = Callable[..., CircuitBreaker]
Drive = Callable[..., None]

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def rejection(breaker: CircuitBreaker) -> CircuitOpenException:
    """Make a call that must be rejected and return the exception."""
    called = []
    with pytest.raises(CircuitOpenException) as info:
        breaker.call(called.append, 1)
    assert called == []
    return info.value


def join_or_fail(thread: threading.Thread) -> None:
    thread.join(timeout=10)
    assert not thread.is_alive(), "thread still running: deadlock?"


class APIError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def is_server_error(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.status >= 500


# --- tripping ---------------------------------------------------------------------------------


def test_new_breaker_is_closed(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    assert breaker.state is CLOSED
    assert breaker.is_closed
    assert not breaker.is_open
    assert not breaker.is_half_open


def test_stays_closed_below_failure_threshold(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state is CLOSED


def test_trips_on_failure_threshold_failures(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=3)
    fail(breaker, 3)
    assert breaker.state is OPEN
    assert breaker.is_open


def test_successes_in_between_do_not_forgive_failures(make_breaker: MakeBreaker, fail: Drive, succeed: Drive) -> None:
    breaker = make_breaker(failure_threshold=3, minimum_calls=1000)
    fail(breaker, 2)
    succeed(breaker, 5)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_failures_within_window_count(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=3, failure_window_seconds=60)
    fail(breaker, 2)
    clock.advance(30)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_failures_older_than_window_no_longer_count(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=3, failure_window_seconds=60)
    fail(breaker, 2)
    clock.advance(60)
    fail(breaker, 1)
    assert breaker.state is CLOSED
    assert breaker.get_status()["failures_in_window"] == 1


def test_trips_on_failure_rate_once_minimum_calls_seen(make_breaker: MakeBreaker, fail: Drive, succeed: Drive) -> None:
    breaker = make_breaker(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    for _ in range(5):
        succeed(breaker)
        fail(breaker)
    assert breaker.state is OPEN


def test_failure_rate_below_threshold_does_not_trip(make_breaker: MakeBreaker, fail: Drive, succeed: Drive) -> None:
    breaker = make_breaker(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    succeed(breaker, 6)
    fail(breaker, 4)
    assert breaker.state is CLOSED


def test_failure_rate_ignored_before_minimum_calls(make_breaker: MakeBreaker, fail: Drive, succeed: Drive) -> None:
    breaker = make_breaker(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    succeed(breaker, 4)
    fail(breaker, 5)  # 9 calls, 55 % failures, but fewer than minimum_calls
    assert breaker.state is CLOSED
    fail(breaker, 1)  # 10 calls, 60 %
    assert breaker.state is OPEN


def test_failure_rate_counts_only_calls_in_window(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    fail(breaker, 5)
    clock.advance(60)
    succeed(breaker, 5)
    fail(breaker, 4)  # 9 calls in the window: the 5 old failures expired
    assert breaker.state is CLOSED


# --- rejections while open --------------------------------------------------------------------


def test_open_breaker_rejects_without_calling_function(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    called = []
    with pytest.raises(CircuitOpenException):
        breaker.call(called.append, "x")
    assert called == []


def test_rejection_carries_name_type_state(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker("broker_api", CircuitType.CONNECTION_FAILURE, failure_threshold=1)
    fail(breaker)
    exc = rejection(breaker)
    assert exc.name == "broker_api"
    assert exc.circuit_type is CircuitType.CONNECTION_FAILURE
    assert exc.state is OPEN


def test_rejection_retry_after_is_seconds_until_trial(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    assert rejection(breaker).retry_after == pytest.approx(60.0)
    clock.advance(15)
    assert rejection(breaker).retry_after == pytest.approx(45.0)


def test_rejection_message_names_breaker(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker("quotes_feed", failure_threshold=1)
    fail(breaker)
    assert "quotes_feed" in str(rejection(breaker))


def test_each_rejection_is_a_fresh_exception(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    first, second = rejection(breaker), rejection(breaker)
    assert first is not second
    assert first.__traceback__ is not second.__traceback__


def test_circuit_open_exception_is_a_library_error() -> None:
    assert issubclass(CircuitOpenException, CircuitBreakerError)


def test_rejections_are_counted(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    for _ in range(3):
        rejection(breaker)
    assert breaker.metrics.rejected_requests == 3


# --- half-open --------------------------------------------------------------------------------


def test_open_becomes_half_open_after_open_timeout(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    clock.advance(59.9)
    assert breaker.state is OPEN
    clock.advance(0.1)
    assert breaker.state is HALF_OPEN  # observed lazily, no call needed
    assert breaker.is_half_open


def test_half_open_rejects_second_concurrent_trial_with_retry_after_zero(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60, half_open_max_calls=1)
    fail(breaker)
    clock.advance(60)
    with breaker:  # the one trial, in flight
        exc = rejection(breaker)
    assert exc.state is HALF_OPEN
    assert exc.retry_after == 0.0


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_half_open_admits_at_most_half_open_max_calls(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock, limit: int
) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=limit, success_threshold=10)
    fail(breaker)
    clock.advance(60)
    with ExitStack() as stack:
        for _ in range(limit):
            stack.enter_context(breaker)
        rejection(breaker)
        assert breaker.get_status()["half_open_in_flight"] == limit


def test_finished_trial_frees_its_permit(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1, success_threshold=3)
    fail(breaker)
    clock.advance(60)
    succeed(breaker)
    succeed(breaker)  # admitted because the first trial gave its permit back
    assert breaker.state is HALF_OPEN


def test_success_threshold_successes_close(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=3)
    fail(breaker)
    clock.advance(60)
    succeed(breaker, 2)
    assert breaker.state is HALF_OPEN
    succeed(breaker)
    assert breaker.state is CLOSED


def test_failure_in_half_open_reopens(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=3)
    fail(breaker)
    clock.advance(60)
    succeed(breaker, 2)
    fail(breaker)
    assert breaker.state is OPEN


def test_half_open_single_failure_reopens_even_with_high_threshold(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=2)
    fail(breaker, 2)
    clock.advance(60)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_recovered_breaker_starts_with_empty_window(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=2, success_threshold=1)
    fail(breaker, 2)
    clock.advance(60)
    succeed(breaker)
    assert breaker.get_status()["failures_in_window"] == 0
    fail(breaker)
    assert breaker.state is CLOSED


# --- backoff ----------------------------------------------------------------------------------


def _trip_again_from_half_open(breaker: CircuitBreaker, clock: ManualClock, fail: Drive) -> None:
    clock.advance(breaker.current_backoff)
    assert breaker.state is HALF_OPEN
    fail(breaker)


def test_consecutive_trips_back_off_exponentially(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(
        failure_threshold=1, open_timeout_seconds=60, backoff_multiplier=2.0, max_backoff_seconds=300
    )
    fail(breaker)
    expected = [60, 120, 240, 300, 300, 300]
    for k, seconds in enumerate(expected, start=1):
        if k > 1:
            _trip_again_from_half_open(breaker, clock, fail)
        assert breaker.state is OPEN
        assert breaker.current_backoff == pytest.approx(seconds), f"trip {k}"
        assert rejection(breaker).retry_after == pytest.approx(seconds), f"trip {k}"
        status = breaker.get_status()
        assert status["consecutive_trips"] == k
        assert status["current_open_timeout"] == pytest.approx(seconds)


def test_backoff_open_time_is_honoured(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    _trip_again_from_half_open(breaker, clock, fail)  # second trip: 120 s
    clock.advance(119)
    assert breaker.state is OPEN
    clock.advance(1)
    assert breaker.state is HALF_OPEN


def test_fixed_backoff_when_exponential_disabled(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60, exponential_backoff=False)
    fail(breaker)
    for _ in range(4):
        _trip_again_from_half_open(breaker, clock, fail)
        assert breaker.current_backoff == 60
        assert rejection(breaker).retry_after == pytest.approx(60.0)


def test_recovery_resets_backoff(make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    _trip_again_from_half_open(breaker, clock, fail)
    assert breaker.current_backoff == 120
    clock.advance(120)
    succeed(breaker)
    assert breaker.state is CLOSED
    assert breaker.current_backoff == 60
    assert breaker.get_status()["consecutive_trips"] == 0
    fail(breaker)
    assert rejection(breaker).retry_after == pytest.approx(60.0)


def test_closed_breaker_reports_backoff_of_next_trip(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(open_timeout_seconds=45)
    assert breaker.current_backoff == 45
    assert breaker.get_status()["current_open_timeout"] == 45


# --- half-open timeout ------------------------------------------------------------------------


def test_undecided_trial_reopens_after_half_open_timeout(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    with breaker:  # a trial that hangs
        clock.advance(29.9)
        assert breaker.state is HALF_OPEN
        clock.advance(0.1)
        assert breaker.state is OPEN


def test_half_open_timeout_reopens_with_next_backoff(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    with breaker:
        clock.advance(30)
        exc = rejection(breaker)
    assert exc.state is OPEN
    assert exc.retry_after == pytest.approx(120.0)
    assert breaker.get_status()["consecutive_trips"] == 2


def test_trial_finishing_after_half_open_timeout_does_not_close(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=1, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    with breaker:
        clock.advance(31)  # the late success below must not count
    assert breaker.state is OPEN


def test_half_open_without_trial_does_not_time_out(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    assert breaker.state is HALF_OPEN
    clock.advance(10_000)
    assert breaker.state is HALF_OPEN
    assert breaker.allow()


# --- which exceptions count -------------------------------------------------------------------


def test_excluded_exception_passes_through_and_counts_as_neither(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1, excluded_exceptions=(KeyError,))
    fail(breaker, 3, KeyError)
    assert breaker.state is CLOSED
    metrics = breaker.metrics
    assert (metrics.ignored_requests, metrics.failed_requests, metrics.successful_requests) == (3, 0, 0)
    assert breaker.get_status()["calls_in_window"] == 0


def test_excluded_exception_is_the_same_object(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(excluded_exceptions=(KeyError,))
    error = KeyError("missing")

    def raise_it() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        breaker.call(raise_it)
    assert info.value is error


def test_excluded_wins_over_failure_exceptions(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1, failure_exceptions=(LookupError,), excluded_exceptions=(KeyError,))
    fail(breaker, 1, KeyError)
    assert breaker.state is CLOSED
    fail(breaker, 1, IndexError)
    assert breaker.state is OPEN


def test_excluded_exception_gives_back_half_open_permit(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1, excluded_exceptions=(KeyError,))
    fail(breaker)
    clock.advance(60)
    fail(breaker, 1, KeyError)
    assert breaker.state is HALF_OPEN
    assert breaker.metrics.ignored_requests == 1
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()


def test_exception_matching_neither_list_counts_as_neither(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1, failure_exceptions=(ConnectionError,))
    fail(breaker, 2, ValueError)
    assert breaker.state is CLOSED
    assert breaker.metrics.ignored_requests == 2
    assert breaker.metrics.failed_requests == 0


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_never_count_as_failures(make_breaker: MakeBreaker, fail: Drive, exc_type: type) -> None:
    breaker = make_breaker(failure_threshold=1, failure_exceptions=(BaseException,))
    fail(breaker, 2, exc_type)
    assert breaker.state is CLOSED
    assert breaker.metrics.failed_requests == 0
    assert breaker.metrics.ignored_requests == 2


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_give_back_half_open_permit(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock, exc_type: type
) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1)
    fail(breaker)
    clock.advance(60)
    fail(breaker, 1, exc_type)
    assert breaker.state is HALF_OPEN
    assert breaker.allow()


def _raise_api_error(status: int) -> None:
    raise APIError(status)


@pytest.mark.parametrize("status", [500, 502, 503, 599])
def test_predicate_marks_server_errors_as_failures(make_breaker: MakeBreaker, status: int) -> None:
    breaker = make_breaker(failure_threshold=1, failure_exceptions=(is_server_error,))
    with pytest.raises(APIError):
        breaker.call(_raise_api_error, status)
    assert breaker.state is OPEN
    assert breaker.metrics.failed_requests == 1


@pytest.mark.parametrize("status", [400, 404, 429])
def test_predicate_leaves_client_errors_uncounted(make_breaker: MakeBreaker, status: int) -> None:
    breaker = make_breaker(failure_threshold=1, failure_exceptions=(is_server_error,))
    with pytest.raises(APIError):
        breaker.call(_raise_api_error, status)
    assert breaker.state is CLOSED
    assert breaker.metrics.ignored_requests == 1


def test_predicate_that_raises_counts_as_failure_and_is_logged(
    make_breaker: MakeBreaker, fail: Drive, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(exc: BaseException) -> bool:
        raise AttributeError("predicate bug")

    breaker = make_breaker(failure_threshold=1, failure_exceptions=(broken,))
    with caplog.at_level(logging.ERROR, logger="circuit_breakers"):
        fail(breaker)
    assert breaker.state is OPEN
    records = [r for r in caplog.records if "predicate" in r.getMessage()]
    assert records
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], AttributeError)


# --- manual control ---------------------------------------------------------------------------


def test_force_open_rejects_with_retry_after_none(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    breaker.force_open()
    assert breaker.state is OPEN
    exc = rejection(breaker)
    assert exc.retry_after is None
    assert breaker.get_status()["seconds_until_retry"] is None


def test_force_open_never_drifts_to_half_open(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    breaker = make_breaker(open_timeout_seconds=1, max_backoff_seconds=1)
    breaker.force_open()
    clock.advance(10**9)
    assert breaker.state is OPEN
    assert not breaker.allow()


def test_force_open_on_tripped_breaker_makes_it_permanent(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    breaker.force_open()
    clock.advance(10_000)
    assert breaker.state is OPEN


def test_force_close_closes_and_admits(make_breaker: MakeBreaker, fail: Drive, succeed: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    breaker.force_close()
    assert breaker.state is CLOSED
    succeed(breaker)


def test_force_close_ends_forced_open(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    breaker.force_open()
    breaker.force_close()
    assert breaker.state is CLOSED
    assert breaker.allow()


def test_force_close_restarts_backoff(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    _trip_again_from_half_open(breaker, clock, fail)
    breaker.force_close()
    assert breaker.current_backoff == 60


def test_reset_returns_to_initial_state(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=2, success_threshold=1, excluded_exceptions=(KeyError,))
    succeed(breaker)
    fail(breaker, 1, KeyError)
    fail(breaker, 2)
    rejection(breaker)
    clock.advance(60)
    succeed(breaker)  # recovers: last_recovery_time set
    fail(breaker, 2)
    _trip_again_from_half_open(breaker, clock, fail)
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.current_backoff == 60
    assert breaker.metrics == BreakerMetrics(0, 0, 0, 0, 0, 0, None, None)
    status = breaker.get_status()
    assert (status["failures_in_window"], status["calls_in_window"], status["consecutive_trips"]) == (0, 0, 0)
    assert status["last_failure_message"] is None
    assert status["opened_at"] is None


def test_reset_empties_failure_window(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=3)
    fail(breaker, 2)
    breaker.reset()
    fail(breaker, 2)
    assert breaker.state is CLOSED


def test_reset_ends_forced_open(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    breaker.force_open()
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.get_status()["forced_open"] is False


# --- allow / record ---------------------------------------------------------------------------


def test_allow_is_true_while_closed(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    assert breaker.allow() is True
    assert breaker.metrics.rejected_requests == 0


def test_allow_is_false_while_open_and_counts_rejection(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    assert breaker.allow() is False
    assert breaker.metrics.rejected_requests == 1


def test_allow_in_half_open_takes_permit(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1)
    fail(breaker)
    clock.advance(60)
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_record_success_gives_back_half_open_permit(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1, success_threshold=2)
    fail(breaker)
    clock.advance(60)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED


def test_record_failure_in_half_open_reopens(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    clock.advance(60)
    assert breaker.allow()
    breaker.record_failure(TimeoutError("slow"))
    assert breaker.state is OPEN


def test_record_failure_counts_toward_threshold(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(failure_threshold=2)
    assert breaker.allow()
    breaker.record_failure("timeout")
    assert breaker.allow()
    breaker.record_failure("timeout")
    assert breaker.state is OPEN


def test_record_failure_with_exception_describes_it(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    breaker.record_failure(ValueError("bad price"))
    assert breaker.get_status()["last_failure_message"] == "ValueError: bad price"


def test_record_failure_with_message(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    breaker.record_failure("order rejected")
    assert breaker.get_status()["last_failure_message"] == "order rejected"
    assert breaker.metrics.failed_requests == 1


def test_record_failure_ignores_exception_filters(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(failure_threshold=1, excluded_exceptions=(KeyError,))
    breaker.record_failure(KeyError("x"))
    assert breaker.state is OPEN


def test_record_success_counts(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    assert breaker.allow()
    breaker.record_success()
    assert breaker.metrics.successful_requests == 1
    assert breaker.get_status()["calls_in_window"] == 1


def test_late_record_success_cannot_raise_half_open_limit(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1, success_threshold=5)
    assert breaker.allow()  # a call admitted while CLOSED ...
    fail(breaker)  # ... the breaker trips meanwhile ...
    clock.advance(60)
    assert breaker.state is HALF_OPEN
    breaker.record_success()  # ... and the late outcome arrives while HALF_OPEN
    assert breaker.allow() is True
    assert breaker.allow() is False, "a second concurrent trial was admitted"


# --- callbacks --------------------------------------------------------------------------------


def test_trip_callback_gets_name_and_type(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker("feed", CircuitType.RATE_LIMIT, failure_threshold=1)
    calls = []
    breaker.register_trip_callback(lambda *args: calls.append(args))
    fail(breaker)
    assert calls == [("feed", CircuitType.RATE_LIMIT)]


def test_recovery_callback_gets_name_and_type(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker("feed", CircuitType.VOLATILITY, failure_threshold=1, success_threshold=1)
    calls = []
    breaker.register_recovery_callback(lambda *args: calls.append(args))
    fail(breaker)
    assert calls == []
    clock.advance(60)
    succeed(breaker)
    assert calls == [("feed", CircuitType.VOLATILITY)]


def test_callbacks_fire_in_order_over_a_cycle(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker("b", failure_threshold=1, success_threshold=1)
    events: List[object] = []
    breaker.register_trip_callback(lambda name, kind: events.append(("trip", name)))
    breaker.register_recovery_callback(lambda name, kind: events.append(("recovery", name)))
    breaker.register_state_change_callback(lambda name, old, new: events.append((name, old, new)))
    fail(breaker)
    clock.advance(60)
    succeed(breaker)
    assert events == [
        ("trip", "b"),
        ("b", CLOSED, OPEN),
        ("b", OPEN, HALF_OPEN),
        ("recovery", "b"),
        ("b", HALF_OPEN, CLOSED),
    ]


def test_callbacks_fire_in_registration_order(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
    order = []
    for i in range(3):
        breaker.register_trip_callback(lambda name, kind, i=i: order.append(i))
    fail(breaker)
    assert order == [0, 1, 2]


def test_half_open_to_open_fires_trip_and_state_change(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    clock.advance(60)
    trips, changes = [], []
    breaker.register_trip_callback(lambda name, kind: trips.append(name))
    breaker.register_state_change_callback(lambda name, old, new: changes.append((old, new)))
    fail(breaker)
    assert trips == ["test"]
    assert changes == [(OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]


def test_callback_runs_after_lock_released_and_sees_new_state(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=1)
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


def _call_expecting_boom(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise_boom)


def test_callback_can_reset_breaker_without_deadlock(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(failure_threshold=1)
    breaker.register_trip_callback(lambda name, kind: breaker.reset())
    worker = threading.Thread(target=_call_expecting_boom, args=(breaker,))
    worker.start()
    join_or_fail(worker)
    assert breaker.state is CLOSED
    assert breaker.metrics.failed_requests == 0


def test_raising_callback_is_logged_and_isolated(make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make_breaker(failure_threshold=1)
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
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=1)
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
def test_registering_non_callable_raises(make_breaker: MakeBreaker, register: str, value: object) -> None:
    with pytest.raises(ConfigTypeError):
        getattr(make_breaker(), register)(value)


# --- status and metrics -----------------------------------------------------------------------

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


def test_status_has_required_keys(make_breaker: MakeBreaker) -> None:
    assert set(make_breaker().get_status()) >= STATUS_KEYS


@pytest.mark.parametrize("setup", ["closed", "open", "half_open", "forced"])
def test_status_is_json_serialisable(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock, setup: str
) -> None:
    breaker = make_breaker("json", CircuitType.DAILY_LOSS, failure_threshold=2)
    succeed(breaker)
    fail(breaker, 1 if setup == "closed" else 2)
    if setup == "half_open":
        clock.advance(60)
    if setup == "forced":
        breaker.force_open()
    status = breaker.get_status()
    assert json.loads(json.dumps(status)) == status
    assert status["state"] == ("open" if setup == "forced" else setup)


def test_status_reports_identity(make_breaker: MakeBreaker) -> None:
    status = make_breaker("broker", CircuitType.CONNECTION_FAILURE).get_status()
    assert status["name"] == "broker"
    assert status["type"] == "connection_failure"
    assert status["state"] == "closed"


def test_status_reports_window_and_failures(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=10)
    succeed(breaker, 3)
    fail(breaker, 1)
    status = breaker.get_status()
    assert (status["calls_in_window"], status["failures_in_window"]) == (4, 1)
    assert status["failure_rate"] == pytest.approx(0.25)
    assert status["last_failure_message"] == "Boom: boom"
    assert status["last_failure_time"] == clock.now().isoformat()
    assert (status["total_requests"], status["successful_requests"], status["failed_requests"]) == (4, 3, 1)


def test_status_of_empty_window_has_zero_rate(make_breaker: MakeBreaker) -> None:
    status = make_breaker().get_status()
    assert status["failure_rate"] == 0.0
    assert status["last_failure_time"] is None
    assert status["seconds_until_retry"] is None
    assert status["opened_at"] is None


def test_status_while_open(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1)
    opened = clock.now()
    fail(breaker)
    clock.advance(20)
    rejection(breaker)
    status = breaker.get_status()
    assert status["state"] == "open"
    assert status["opened_at"] == opened.isoformat()
    assert status["seconds_until_retry"] == pytest.approx(40.0)
    assert status["rejected_requests"] == 1


def test_status_reads_half_open_lazily(make_breaker: MakeBreaker, fail: Drive, clock: ManualClock) -> None:
    breaker = make_breaker(failure_threshold=1)
    fail(breaker)
    clock.advance(60)
    status = breaker.get_status()
    assert status["state"] == "half_open"
    assert status["seconds_until_retry"] == 0.0


def test_metrics_is_frozen_dataclass(make_breaker: MakeBreaker) -> None:
    metrics = make_breaker().metrics
    assert dataclasses.is_dataclass(metrics)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.total_requests = 5  # type: ignore[misc]


def test_metrics_snapshot_does_not_change(make_breaker: MakeBreaker, succeed: Drive) -> None:
    breaker = make_breaker()
    before = breaker.metrics
    succeed(breaker)
    assert before.successful_requests == 0
    assert breaker.metrics.successful_requests == 1


def test_metrics_total_is_sum_of_outcomes(make_breaker: MakeBreaker, fail: Drive, succeed: Drive) -> None:
    breaker = make_breaker(failure_threshold=3, excluded_exceptions=(KeyError,))
    succeed(breaker, 4)
    fail(breaker, 2, KeyError)
    fail(breaker, 3)
    for _ in range(5):
        rejection(breaker)
    metrics = breaker.metrics
    assert (metrics.successful_requests, metrics.failed_requests, metrics.ignored_requests) == (4, 3, 2)
    assert metrics.rejected_requests == 5
    assert metrics.total_requests == 14


def test_metrics_count_trips_and_times(
    make_breaker: MakeBreaker, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=1)
    fail(breaker)
    failed_at = clock.now()
    clock.advance(60)
    succeed(breaker)
    metrics = breaker.metrics
    assert metrics.circuit_trips == 1
    assert metrics.last_failure_time == failed_at
    assert metrics.last_recovery_time == clock.now()


# --- late outcomes (a call admitted in one period finishing in another) --------------------


def test_late_success_from_thread_leaves_breaker_open(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=2)
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


def test_late_success_from_with_block_leaves_breaker_open(make_breaker: MakeBreaker, fail: Drive) -> None:
    breaker = make_breaker(failure_threshold=2, success_threshold=1)
    with breaker:
        fail(breaker, 2)
    assert breaker.state is OPEN
    assert breaker.get_status()["calls_in_window"] == 0


def test_late_success_while_half_open_is_not_a_trial_success(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1, success_threshold=1, half_open_max_calls=1)
    with breaker:  # admitted while CLOSED
        fail(breaker)
        clock.advance(60)
        assert breaker.state is HALF_OPEN
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()  # the trial permit is still free


def test_late_failure_while_half_open_does_not_reopen(
    make_breaker: MakeBreaker, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_breaker(failure_threshold=1)

    def admitted_closed_failing_half_open() -> None:
        with breaker:
            fail(breaker)
            clock.advance(60)
            raise Boom("late")

    with pytest.raises(Boom):
        admitted_closed_failing_half_open()
    assert breaker.state is HALF_OPEN


def test_late_failure_does_not_count_in_next_closed_period(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(failure_threshold=1)

    def failing_after_force_cycle() -> None:
        with breaker:
            breaker.force_open()
            breaker.force_close()
            raise Boom("late")

    with pytest.raises(Boom):
        failing_after_force_cycle()
    assert breaker.state is CLOSED
    assert breaker.get_status()["failures_in_window"] == 0


def test_late_success_after_reset_does_not_count_in_window(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    with breaker:
        breaker.reset()
    assert breaker.get_status()["calls_in_window"] == 0


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError):
        CircuitBreaker(name)


@pytest.mark.parametrize("circuit_type", ["generic", None, 1])
def test_non_circuit_type_is_rejected(circuit_type: object) -> None:
    with pytest.raises(ConfigTypeError):
        CircuitBreaker("b", circuit_type)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", [{"failure_threshold": 3}, "config", 5])
def test_wrong_config_type_is_rejected(config: object) -> None:
    with pytest.raises(ConfigTypeError):
        CircuitBreaker("b", CircuitType.GENERIC, config)  # type: ignore[arg-type]


class _OnlyMonotonic:
    def monotonic(self) -> float:
        return 0.0


@pytest.mark.parametrize("bad_clock", [object(), _OnlyMonotonic(), 3.0])
def test_clock_without_methods_is_rejected(bad_clock: object) -> None:
    with pytest.raises(ConfigTypeError):
        CircuitBreaker("b", clock=bad_clock)  # type: ignore[arg-type]


def test_defaults_are_generic_type_and_default_config() -> None:
    breaker = CircuitBreaker("b")
    assert breaker.circuit_type is CircuitType.GENERIC
    assert breaker.config == CircuitBreakerConfig()
    assert breaker.name == "b"


def test_repr_names_breaker(make_breaker: MakeBreaker) -> None:
    assert "orders" in repr(make_breaker("orders"))


def test_decimal_failure_window_is_usable(clock: ManualClock) -> None:
    config = CircuitBreakerConfig(failure_window_seconds=Decimal("60"))
    breaker = CircuitBreaker("decimal", config=config, clock=clock)
    assert breaker.call(lambda: 1) == 1


def test_failures_expire_with_negative_monotonic_clock(fail: Drive) -> None:
    clock = ManualClock(monotonic_start=-1000.0)
    breaker = CircuitBreaker("neg", config=CircuitBreakerConfig(failure_threshold=2), clock=clock)
    fail(breaker)
    clock.advance(120)
    fail(breaker)
    assert breaker.state is CLOSED


# --- the default clock under freezegun --------------------------------------------------------


def test_freezegun_drives_open_timeout(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=60))
        fail(breaker)
        frozen.tick(59)
        assert breaker.state is OPEN
        frozen.tick(1)
        assert breaker.state is HALF_OPEN


def test_freezegun_drives_failure_window(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=2, failure_window_seconds=60))
        fail(breaker)
        frozen.tick(61)
        fail(breaker)
        assert breaker.state is CLOSED
        frozen.tick(1)
        fail(breaker)
        assert breaker.state is OPEN


def test_freezegun_drives_wall_times_and_retry(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=1))
        fail(breaker)
        frozen.tick(15)
        status = breaker.get_status()
    assert status["opened_at"] == "2026-01-05T14:30:00+00:00"
    assert status["last_failure_time"] == "2026-01-05T14:30:00+00:00"
    assert status["seconds_until_retry"] == pytest.approx(45.0)


def test_freezegun_half_open_timeout(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=1, half_open_timeout_seconds=30))
        fail(breaker)
        frozen.tick(60)
        with breaker:
            frozen.tick(30)
            assert breaker.state is OPEN
        assert breaker.get_status()["seconds_until_retry"] == pytest.approx(120.0)
