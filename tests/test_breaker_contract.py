"""The breaker contract, part 1: the state machine (breaker.py's table, rows A, T, S, F, N, E).

Every test runs against each implementation (``make_any``, see tests/breakers.py): a CircuitBreaker
and a RedisCircuitBreaker, both on the ManualClock of the ``clock`` fixture. Part 2 is
test_breaker_contract_api.py.
"""

from __future__ import annotations

import logging
import math
from contextlib import ExitStack
from typing import Callable, List

import pytest

from circuit_breakers import Backoff, CircuitOpenException, CircuitState, CircuitType, ManualClock

from .breakers import MakeAny, rejection, trip_again_from_half_open

Drive = Callable[..., None]

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class APIError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def is_server_error(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.status >= 500


# --- tripping -----------------------------------------------------------------------------------


def test_new_breaker_is_closed(make_any: MakeAny) -> None:
    breaker = make_any()
    assert breaker.state is CLOSED
    assert breaker.is_closed
    assert not breaker.is_open
    assert not breaker.is_half_open
    assert breaker.get_status()["half_open_in_flight"] == 0


def test_stays_closed_below_failure_threshold(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state is CLOSED


def test_trips_on_failure_threshold_failures(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=3)
    fail(breaker, 3)
    assert breaker.state is OPEN
    assert breaker.is_open


def test_successes_in_between_do_not_forgive_failures(make_any: MakeAny, fail: Drive, succeed: Drive) -> None:
    breaker = make_any(failure_threshold=3, minimum_calls=1000)
    fail(breaker, 2)
    succeed(breaker, 5)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_failures_within_window_count(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=3, failure_window_seconds=60)
    fail(breaker, 2)
    clock.advance(30)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_failures_older_than_window_no_longer_count(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=3, failure_window_seconds=60)
    fail(breaker, 2)
    assert breaker.get_status()["failures_in_window"] == 2
    clock.advance(60)
    assert breaker.get_status()["failures_in_window"] == 0
    fail(breaker, 1)
    assert breaker.state is CLOSED
    assert breaker.get_status()["failures_in_window"] == 1


def test_trips_on_failure_rate_once_minimum_calls_seen(make_any: MakeAny, fail: Drive, succeed: Drive) -> None:
    breaker = make_any(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    for _ in range(5):
        succeed(breaker)
        fail(breaker)
    assert breaker.state is OPEN


def test_failure_rate_below_threshold_does_not_trip(make_any: MakeAny, fail: Drive, succeed: Drive) -> None:
    breaker = make_any(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    succeed(breaker, 6)
    fail(breaker, 4)
    assert breaker.state is CLOSED


def test_failure_rate_ignored_before_minimum_calls(make_any: MakeAny, fail: Drive, succeed: Drive) -> None:
    breaker = make_any(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    succeed(breaker, 4)
    fail(breaker, 5)  # 9 calls, 55 % failures, but fewer than minimum_calls
    assert breaker.state is CLOSED
    fail(breaker, 1)  # 10 calls, 60 %
    assert breaker.state is OPEN


def test_failure_rate_counts_only_calls_in_window(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=100, minimum_calls=10, failure_rate_threshold=0.5)
    fail(breaker, 5)
    clock.advance(60)
    succeed(breaker, 5)
    fail(breaker, 4)  # 9 calls in the window: the 5 old failures expired
    assert breaker.state is CLOSED


# --- rejections while open (A2) -----------------------------------------------------------------


def test_open_breaker_rejects_without_calling_function(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    called = []
    with pytest.raises(CircuitOpenException):
        breaker.call(called.append, "x")
    assert called == []


def test_rejection_carries_name_type_state(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any("broker_api", CircuitType.CONNECTION_FAILURE, failure_threshold=1)
    fail(breaker)
    exc = rejection(breaker)
    assert exc.name == "broker_api"
    assert exc.circuit_type is CircuitType.CONNECTION_FAILURE
    assert exc.state is OPEN


def test_rejection_retry_after_is_seconds_until_trial(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    assert rejection(breaker).retry_after == pytest.approx(60.0)
    clock.advance(15)
    assert rejection(breaker).retry_after == pytest.approx(45.0)


def test_rejection_message_names_breaker(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any("quotes_feed", failure_threshold=1)
    fail(breaker)
    assert "quotes_feed" in str(rejection(breaker))


def test_each_rejection_is_a_fresh_exception(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    first, second = rejection(breaker), rejection(breaker)
    assert first is not second
    assert first.__traceback__ is not second.__traceback__


def test_rejections_are_counted(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    for _ in range(3):
        rejection(breaker)
    assert breaker.metrics.rejected_requests == 3
    assert breaker.allow() is False
    assert breaker.metrics.rejected_requests == 4


# --- half-open ----------------------------------------------------------------------------------


def test_open_becomes_half_open_after_open_timeout(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    clock.advance(59.9)
    assert breaker.state is OPEN
    clock.advance(0.1)
    assert breaker.state is HALF_OPEN  # observed lazily, no call needed
    assert breaker.is_half_open


def test_half_open_rejects_second_concurrent_trial_with_retry_after_zero(
    make_any: MakeAny, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, half_open_max_calls=1)
    fail(breaker)
    clock.advance(60)
    with breaker:  # the one trial, in flight
        exc = rejection(breaker)
    assert exc.state is HALF_OPEN
    assert exc.retry_after == 0.0


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_half_open_admits_at_most_half_open_max_calls(
    make_any: MakeAny, fail: Drive, clock: ManualClock, limit: int
) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=limit, success_threshold=10)
    fail(breaker)
    clock.advance(60)
    with ExitStack() as stack:
        for _ in range(limit):
            stack.enter_context(breaker)
        rejection(breaker)
        assert breaker.get_status()["half_open_in_flight"] == limit


def test_finished_trial_frees_its_permit(make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=1, success_threshold=3)
    fail(breaker)
    clock.advance(60)
    succeed(breaker)
    succeed(breaker)  # admitted because the first trial gave its permit back
    assert breaker.state is HALF_OPEN


def test_success_threshold_successes_close(make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=3)
    fail(breaker)
    clock.advance(60)
    succeed(breaker, 2)
    assert breaker.state is HALF_OPEN
    succeed(breaker)
    assert breaker.state is CLOSED


def test_failure_in_half_open_reopens_with_backoff(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=5, success_threshold=3, backoff_multiplier=2.0)
    fail(breaker, 5)
    clock.advance(60)
    succeed(breaker, 2)
    fail(breaker)  # one failure re-opens, whatever failure_threshold says
    assert breaker.state is OPEN
    status = breaker.get_status()
    assert status["consecutive_trips"] == 2
    assert status["current_open_timeout"] == pytest.approx(120.0)
    assert breaker.current_backoff == pytest.approx(120.0)
    assert status["seconds_until_retry"] == pytest.approx(120.0)


def test_half_open_single_failure_reopens_even_with_high_threshold(
    make_any: MakeAny, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=2)
    fail(breaker, 2)
    clock.advance(60)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_recovered_breaker_starts_with_empty_window(
    make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=2, success_threshold=1)
    fail(breaker, 2)
    clock.advance(60)
    succeed(breaker)
    assert breaker.get_status()["failures_in_window"] == 0
    fail(breaker)
    assert breaker.state is CLOSED


# --- backoff ------------------------------------------------------------------------------------


def test_consecutive_trips_back_off_exponentially(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, backoff_multiplier=2.0, max_backoff_seconds=300)
    fail(breaker)
    expected = [60, 120, 240, 300, 300, 300]
    for k, seconds in enumerate(expected, start=1):
        if k > 1:
            trip_again_from_half_open(breaker, clock, fail)
        assert breaker.state is OPEN
        assert breaker.current_backoff == pytest.approx(seconds), f"trip {k}"
        assert rejection(breaker).retry_after == pytest.approx(seconds), f"trip {k}"
        status = breaker.get_status()
        assert status["consecutive_trips"] == k
        assert status["current_open_timeout"] == pytest.approx(seconds)


def test_backoff_open_time_is_honoured(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    trip_again_from_half_open(breaker, clock, fail)  # second trip: 120 s
    clock.advance(119)
    assert breaker.state is OPEN
    clock.advance(1)
    assert breaker.state is HALF_OPEN


def test_fixed_backoff_when_exponential_disabled(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, exponential_backoff=False)
    fail(breaker)
    for _ in range(4):
        trip_again_from_half_open(breaker, clock, fail)
        assert breaker.current_backoff == 60
        assert rejection(breaker).retry_after == pytest.approx(60.0)


def test_recovery_resets_backoff(make_any: MakeAny, fail: Drive, succeed: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=1, open_timeout_seconds=60)
    fail(breaker)
    trip_again_from_half_open(breaker, clock, fail)
    assert breaker.current_backoff == 120
    clock.advance(120)
    succeed(breaker)
    assert breaker.state is CLOSED
    assert breaker.current_backoff == 60
    assert breaker.get_status()["consecutive_trips"] == 0
    fail(breaker)
    assert rejection(breaker).retry_after == pytest.approx(60.0)


def test_backoff_keeps_growing_past_32_trips_in_a_row(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    """open * multiplier ** (k - 1), capped, for any k: a slow multiplier reaches its cap late."""
    breaker = make_any(failure_threshold=1, open_timeout_seconds=1, backoff_multiplier=1.1, max_backoff_seconds=10_000)
    fail(breaker)
    for _ in range(39):
        clock.advance(math.ceil(breaker.current_backoff))  # whole seconds: no float sum falls short
        assert breaker.state is HALF_OPEN
        fail(breaker)
    status = breaker.get_status()
    assert status["consecutive_trips"] == 40
    assert status["seconds_until_retry"] == pytest.approx(1.1**39)  # 41.1 s; trip 32 stayed open 19.2 s


class Stairs(Backoff):
    """A policy of one's own: 5 s, then 50 s, then 500 s for every trip after."""

    def __call__(self, trip: int) -> float:
        return (5.0, 50.0, 500.0)[min(trip, 3) - 1]


def test_a_backoff_policy_of_ones_own_times_every_trip(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, backoff=Stairs())
    fail(breaker)
    for trip, seconds in enumerate([5.0, 50.0, 500.0, 500.0], start=1):
        if trip > 1:
            trip_again_from_half_open(breaker, clock, fail)
        assert rejection(breaker).retry_after == pytest.approx(seconds), f"trip {trip}"
        assert breaker.get_status()["current_open_timeout"] == seconds


def test_closed_breaker_reports_backoff_of_next_trip(make_any: MakeAny) -> None:
    breaker = make_any(open_timeout_seconds=45)
    assert breaker.current_backoff == 45
    assert breaker.get_status()["current_open_timeout"] == 45


# --- half-open timeout (T2) ---------------------------------------------------------------------


def test_undecided_trial_reopens_after_half_open_timeout(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    with breaker:  # a trial that hangs; its late success must not close the breaker
        clock.advance(29.9)
        assert breaker.state is HALF_OPEN
        clock.advance(0.1)
        assert breaker.state is OPEN
    assert breaker.state is OPEN
    assert breaker.get_status()["consecutive_trips"] == 2


def test_half_open_timeout_reopens_with_next_backoff(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    with breaker:
        clock.advance(30)
        exc = rejection(breaker)
    assert exc.state is OPEN
    assert exc.retry_after == pytest.approx(120.0)
    assert breaker.get_status()["consecutive_trips"] == 2


def test_every_status_read_observes_what_time_did(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    """metrics and current_backoff, like state and get_status(), apply T1 and T2 before answering."""
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    trips: List[str] = []
    breaker.register_trip_callback(lambda name, kind: trips.append(name))
    fail(breaker)
    clock.advance(60)
    assert breaker.allow()  # a trial that never reports back
    clock.advance(30)  # T2 is due; no one has looked yet
    assert breaker.metrics.circuit_trips == 2
    assert trips == ["test", "test"]  # the metrics read re-opened it, firing the trip callback
    assert breaker.get_status()["consecutive_trips"] == 2
    clock.advance(120)  # T1 is due
    other = make_any("other", failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(other)
    clock.advance(60)
    assert other.allow()
    clock.advance(30)
    assert other.current_backoff == 120  # the second trip's, read straight after T2
    assert breaker.current_backoff == 120
    assert breaker.get_status()["state"] == "half_open"


def test_trial_finishing_after_half_open_timeout_does_not_close(
    make_any: MakeAny, fail: Drive, clock: ManualClock
) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=1, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    with breaker:
        clock.advance(31)  # the late success below must not count
    assert breaker.state is OPEN


def test_half_open_without_trial_does_not_time_out(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=60, half_open_timeout_seconds=30)
    fail(breaker)
    clock.advance(60)
    assert breaker.state is HALF_OPEN
    clock.advance(10_000)
    assert breaker.state is HALF_OPEN
    assert breaker.allow()


# --- which exceptions count (N1) ----------------------------------------------------------------


def test_excluded_exception_passes_through_and_counts_as_neither(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1, excluded_exceptions=(KeyError,))
    fail(breaker, 3, KeyError)
    assert breaker.state is CLOSED
    metrics = breaker.metrics
    assert (metrics.ignored_requests, metrics.failed_requests, metrics.successful_requests) == (3, 0, 0)
    assert breaker.get_status()["calls_in_window"] == 0


def test_excluded_exception_is_the_same_object(make_any: MakeAny) -> None:
    breaker = make_any(excluded_exceptions=(KeyError,))
    error = KeyError("missing")

    def raise_it() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        breaker.call(raise_it)
    assert info.value is error


def test_excluded_wins_over_failure_exceptions(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=(LookupError,), excluded_exceptions=(KeyError,))
    fail(breaker, 1, KeyError)
    assert breaker.state is CLOSED
    fail(breaker, 1, IndexError)
    assert breaker.state is OPEN


def test_excluded_exception_gives_back_half_open_permit(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=1, excluded_exceptions=(KeyError,))
    fail(breaker)
    clock.advance(60)
    fail(breaker, 1, KeyError)
    assert breaker.state is HALF_OPEN
    assert breaker.metrics.ignored_requests == 1
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()


def test_exception_matching_neither_list_counts_as_neither(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=(ConnectionError,))
    fail(breaker, 2, ValueError)
    assert breaker.state is CLOSED
    assert breaker.metrics.ignored_requests == 2
    assert breaker.metrics.failed_requests == 0


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_never_count_as_failures(make_any: MakeAny, fail: Drive, exc_type: type) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=(BaseException,))
    fail(breaker, 2, exc_type)
    assert breaker.state is CLOSED
    assert breaker.metrics.failed_requests == 0
    assert breaker.metrics.ignored_requests == 2


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_give_back_half_open_permit(
    make_any: MakeAny, fail: Drive, clock: ManualClock, exc_type: type
) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=1)
    fail(breaker)
    clock.advance(60)
    fail(breaker, 1, exc_type)
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.allow()


def _raise_api_error(status: int) -> None:
    raise APIError(status)


@pytest.mark.parametrize("status", [500, 502, 503, 599])
def test_predicate_marks_server_errors_as_failures(make_any: MakeAny, status: int) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=(is_server_error,))
    with pytest.raises(APIError):
        breaker.call(_raise_api_error, status)
    assert breaker.state is OPEN
    assert breaker.metrics.failed_requests == 1


@pytest.mark.parametrize("status", [400, 404, 429])
def test_predicate_leaves_client_errors_uncounted(make_any: MakeAny, status: int) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=(is_server_error,))
    with pytest.raises(APIError):
        breaker.call(_raise_api_error, status)
    assert breaker.state is CLOSED
    assert breaker.metrics.ignored_requests == 1


def test_predicate_that_raises_counts_as_failure_and_is_logged(
    make_any: MakeAny, fail: Drive, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(exc: BaseException) -> bool:
        raise AttributeError("predicate bug")

    breaker = make_any(failure_threshold=1, failure_exceptions=(broken,))
    with caplog.at_level(logging.ERROR, logger="circuit_breakers"):
        fail(breaker)
    assert breaker.state is OPEN
    records = [r for r in caplog.records if "predicate" in r.getMessage()]
    assert records
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], AttributeError)
