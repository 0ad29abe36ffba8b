"""The lock-free hot paths (circuit_breakers/fast_path.py): ``breaker.call(f)`` and the decorator.

Each must give exactly the answer of the locked path: a hypothesis test runs the same outcomes
through the lock-free decorator, ``call()`` and the decorator's locked twin (``lock_free=False``)
and compares state and counters after every step; the other tests pin the places where they could
differ (bucket edges, a trip while a call is in flight, clocks).
"""

from __future__ import annotations

import math
import pickle
from typing import Callable, Dict, List, Tuple

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ManualClock,
)
from circuit_breakers.fast_path import protect

from .conftest import Boom

# Trips on one failure, stays open 30 s, closes on one trial success.
OPENS_ON_ONE = CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=30, success_threshold=1)


# --- the lock-free paths and the locked path agree ------------------------------------------------

STEPS = st.tuples(
    st.one_of(st.just(0), st.just("to_retry"), st.integers(1, 90)),  # time first: 0, to the open timeout's end, or s
    st.sampled_from(
        ["success", "failure", "neither", "late_success", "late_failure", "force_open", "force_close", "reset"]
    ),
)
MODEL_CONFIG = CircuitBreakerConfig(
    failure_threshold=3,
    failure_rate_threshold=0.5,
    minimum_calls=4,
    failure_window_seconds=60,
    open_timeout_seconds=10,
    half_open_max_calls=2,
    success_threshold=2,
    half_open_timeout_seconds=20,
    excluded_exceptions=(KeyError,),
)


class Path:
    """One breaker on its own clock, called one way: the lock-free decorator, call(), or the locked decorator."""

    def __init__(self, style: str) -> None:
        self.clock = ManualClock()
        self.breaker = CircuitBreaker("same", config=MODEL_CONFIG, clock=self.clock)
        self.outcome = "success"
        if style == "call":
            self.run: Callable[[], str] = lambda: self.breaker.call(self.work)
        else:
            self.run = protect(self.breaker, self.work, lock_free=style == "lock_free")

    def work(self) -> str:
        outcome = self.outcome
        if outcome.startswith("late_"):  # the breaker moves on to a new period while this call runs
            self.breaker.force_open()
            if outcome == "late_success":
                self.breaker.force_close()
                self.outcome = "success"
                self.run()  # a call of the new period opens its live bucket before this one ends
        if outcome in ("success", "late_success"):
            return "ok"
        raise KeyError("neither") if outcome == "neither" else Boom(outcome)

    def step(self, wait: object, action: str) -> Tuple[str, object]:
        """Let ``wait`` seconds pass (or until the open timeout ends), then act; return what the caller saw."""
        breaker = self.breaker
        if wait == "to_retry":
            wait = math.ceil(breaker.get_status()["seconds_until_retry"] or 0)  # lands exactly on the boundary
        self.clock.advance(float(wait))  # type: ignore[arg-type]
        if action in ("force_open", "force_close", "reset"):
            getattr(breaker, action)()
            return ("manual", None)
        self.outcome = action
        try:
            return ("returned", self.run())
        except CircuitOpenException as exc:
            return ("rejected", (exc.state, exc.retry_after))
        except (Boom, KeyError) as exc:
            return ("raised", type(exc).__name__)

    def seen(self) -> Dict[str, object]:
        status = self.breaker.get_status()
        status["metrics"] = self.breaker.metrics
        return status


@settings(max_examples=300, deadline=None)
@given(st.lists(STEPS, max_size=40))
def test_lock_free_paths_and_the_locked_path_agree_step_by_step(steps: List[Tuple[object, str]]) -> None:
    paths = {style: Path(style) for style in ("lock_free", "call", "locked")}
    for number, step in enumerate(steps):
        answers = {style: path.step(*step) for style, path in paths.items()}
        assert answers["lock_free"] == answers["call"] == answers["locked"], (number, step, answers)
        seen = {style: path.seen() for style, path in paths.items()}
        assert seen["lock_free"] == seen["call"] == seen["locked"], (number, step)


def test_the_locked_decorator_keeps_the_signature_and_exposes_the_breaker() -> None:
    breaker = CircuitBreaker("b", clock=ManualClock())

    def quote(symbol: str) -> str:
        """Quote a symbol."""
        return symbol

    locked = protect(breaker, quote, lock_free=False)
    assert (locked("SPY"), locked.__name__, locked.__doc__, locked.breaker) == (
        "SPY",
        "quote",
        "Quote a symbol.",
        breaker,
    )
    assert breaker.metrics.successful_requests == 1


# --- the places where they could differ -----------------------------------------------------------


def test_success_after_a_trip_during_the_call_does_not_count_in_the_new_period() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("b", config=CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=5), clock=clock)

    @breaker
    def slow_success() -> int:
        breaker.force_open()
        breaker.force_close()  # a new CLOSED period begins while this call runs
        return 1

    assert slow_success() == 1
    status = breaker.get_status()
    assert status["calls_in_window"] == 0  # admitted in the old period: not in the new window
    assert status["successful_requests"] == 1  # but always in the metrics


def test_decorator_and_call_count_successes_in_the_window_across_bucket_edges() -> None:
    clock = ManualClock()
    config = CircuitBreakerConfig(failure_threshold=100, failure_window_seconds=60)
    breaker = CircuitBreaker("b", config=config, clock=clock)
    protected = breaker(lambda: None)
    for _ in range(3):
        protected()
        breaker.call(lambda: None)
        clock.advance(0.5)
    assert breaker.get_status()["calls_in_window"] == 6  # at 0.0, 0.5 and 1.0 s
    clock.advance(59.2)  # now 60.7 s: the calls of the bucket [0, 1) have left the window
    assert breaker.get_status()["calls_in_window"] == 2
    assert breaker.metrics.successful_requests == 6


def test_lock_free_successes_feed_the_failure_rate_rule() -> None:
    clock = ManualClock()
    config = CircuitBreakerConfig(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=4)
    breaker = CircuitBreaker("b", config=config, clock=clock)
    ok = breaker(lambda: None)

    @breaker
    def fail() -> None:
        raise Boom

    ok()
    ok()
    with pytest.raises(Boom):
        fail()
    assert breaker.is_closed  # 1 of 3, under minimum_calls
    with pytest.raises(Boom):
        fail()
    assert breaker.is_open  # 2 of 4 = 50 %


def test_forced_and_timed_rejections_are_lock_free_and_counted() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("b", config=OPENS_ON_ONE, clock=clock)
    protected = breaker(lambda: None)

    @breaker
    def fail() -> None:
        raise Boom

    with pytest.raises(Boom):
        fail()
    clock.advance(10)
    with pytest.raises(CircuitOpenException) as timed:
        protected()
    assert timed.value.retry_after == pytest.approx(20.0)
    breaker.force_open()
    with pytest.raises(CircuitOpenException) as forced:
        protected()
    assert forced.value.retry_after is None
    assert "forced open" in str(forced.value)
    assert breaker.metrics.rejected_requests == 2
    breaker.force_close()
    clock.advance(1)
    protected()
    assert breaker.metrics.successful_requests == 1


def test_timed_rejection_ends_exactly_at_the_open_timeout() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("b", config=OPENS_ON_ONE, clock=clock)
    calls: List[int] = []
    protected = breaker(calls.append)
    breaker.record_failure("down")
    clock.advance(29.999)
    with pytest.raises(CircuitOpenException):
        protected(1)
    clock.advance(0.001)
    protected(2)  # the half-open trial, which closes it
    assert calls == [2]
    assert breaker.state is CircuitState.CLOSED


def test_default_clock_fast_paths_follow_freezegun() -> None:
    with freeze_time("2026-03-02 15:00:00") as frozen:
        breaker = CircuitBreaker("b", config=OPENS_ON_ONE)
        protected = breaker(lambda: 1)
        breaker.record_failure("down")
        with pytest.raises(CircuitOpenException):
            protected()
        frozen.tick(31)
        assert protected() == 1  # the trial, which closes it
        frozen.tick(120)
        protected()
        assert breaker.get_status()["calls_in_window"] == 1


def test_circuit_open_exception_keeps_its_fields_through_pickle() -> None:
    exc = CircuitOpenException("feed", CircuitType.CONNECTION_FAILURE, CircuitState.OPEN, 12.5)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.name, copy.circuit_type, copy.state, copy.retry_after) == (
        "feed",
        CircuitType.CONNECTION_FAILURE,
        CircuitState.OPEN,
        12.5,
    )
    assert str(copy) == "circuit breaker 'feed' is open: next trial call in 12.500s"
    detailed = CircuitOpenException("feed", CircuitType.GENERIC, CircuitState.OPEN, None, "its store failed")
    assert str(detailed) == "circuit breaker 'feed' is open: its store failed"
