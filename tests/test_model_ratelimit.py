"""Model-based test: a RateLimiter with 1-3 Limits on a ManualClock against the list of admitted times.

The model keeps every admitted time since the last reset. For each limit a time ``t`` counts while
it lies in ``(now - period, now]``. Times are multiples of 0.25 s and periods whole seconds, so all
the arithmetic is exact in binary floating point and the model may compare with ``==``.

Invariants: no window of any limit ever holds more than its ``max_calls`` admitted times; an
attempt is refused exactly when some limit is full (never while every limit is under its max);
``retry_after()`` is 0.0 exactly when an attempt would succeed, and otherwise the wait until the
oldest time of the fullest limit leaves its window.
"""

from __future__ import annotations

from typing import List, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from circuit_breakers import Limit, ManualClock, RateLimiter, RateLimitExceeded

PERIODS = [1, 2, 5, 10, 60]


class RateModel:
    def __init__(self, limits: List[Tuple[int, int]]) -> None:
        self.limits = limits  # (max_calls, period)
        self.now = 0.0
        self.admitted: List[float] = []  # since the last reset, oldest first

    def in_window(self, period: float, at: float) -> List[float]:
        return [t for t in self.admitted if at - period < t <= at]

    def full(self) -> List[Tuple[int, int]]:
        return [(n, p) for n, p in self.limits if len(self.in_window(p, self.now)) >= n]

    def wait(self) -> float:
        waits = [self.in_window(p, self.now)[0] + p - self.now for n, p in self.full()]
        return max(waits, default=0.0)

    def try_acquire(self) -> bool:
        if self.full():
            return False
        self.admitted.append(self.now)
        return True


@st.composite
def limit_sets(draw: st.DrawFn) -> List[Tuple[int, int]]:
    periods = draw(st.lists(st.sampled_from(PERIODS), min_size=1, max_size=3, unique=True))
    return [(draw(st.integers(1, 5)), period) for period in periods]


class RateLimiterMachine(RuleBasedStateMachine):
    @initialize(limits=limit_sets())
    def build(self, limits: List[Tuple[int, int]]) -> None:
        self.clock = ManualClock()
        self.limiter = RateLimiter(*(Limit(n, p) for n, p in limits), name="model", clock=self.clock)
        self.model = RateModel(limits)

    def _advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now += seconds

    @rule(quarters=st.integers(0, 40))
    def advance_a_little(self, quarters: int) -> None:
        self._advance(quarters / 4)

    @rule(seconds=st.integers(0, 120))
    def advance_whole_seconds(self, seconds: int) -> None:
        self._advance(seconds)

    @rule(data=st.data())
    def advance_to_an_edge(self, data: st.DataObject) -> None:
        """Advance to exactly where an admitted time leaves a window, or a quarter second either side."""
        model = self.model
        edges = sorted(
            {t + p - model.now + d for t in model.admitted for _, p in model.limits for d in (-0.25, 0.0, 0.25)}
        )
        edges = [edge for edge in edges if edge >= 0]
        if edges:
            self._advance(data.draw(st.sampled_from(edges), label="seconds"))

    @rule(times=st.integers(1, 4))
    def try_acquire(self, times: int) -> None:
        for _ in range(times):
            under = not self.model.full()
            admitted = self.limiter.try_acquire()
            if under:
                assert admitted, "refused an attempt although every limit was under its max"
            assert admitted == self.model.try_acquire()

    @rule()
    def acquire_without_waiting(self) -> None:
        expected = self.model.try_acquire()
        wait = self.model.wait()
        if expected:
            self.limiter.acquire(timeout=0)
        else:
            with pytest.raises(RateLimitExceeded) as raised:
                self.limiter.acquire(timeout=0)
            assert raised.value.retry_after == wait

    @rule()
    def reset(self) -> None:
        self.limiter.reset()
        self.model.admitted = []

    @invariant()
    def never_more_than_max_in_any_window(self) -> None:
        # The count in (x - period, x] only grows at an admission, so checking at each admitted
        # time covers every window.
        model = self.model
        for n, p in model.limits:
            for t in model.admitted:
                assert len(model.in_window(p, t)) <= n, f"more than {n} in ({t - p}, {t}]"

    @invariant()
    def retry_after_is_zero_iff_an_attempt_would_succeed(self) -> None:
        model = self.model
        retry = self.limiter.retry_after()
        would_succeed = not model.full()
        assert (retry == 0.0) == would_succeed
        assert retry == model.wait()
        status = self.limiter.status()
        assert status["seconds_until_permit"] == retry
        for (n, p), limit in zip(model.limits, status["limits"]):
            assert limit["calls_in_window"] == len(model.in_window(p, model.now))
            assert limit["max_calls"] == n


RateLimiterMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_rate_limiter_matches_model = RateLimiterMachine.TestCase


def test_model_window_edges_by_hand() -> None:
    model = RateModel([(2, 10)])
    assert model.try_acquire()
    assert model.try_acquire()
    assert not model.try_acquire()
    model.now = 9.75
    assert model.wait() == 0.25
    model.now = 10.0  # t=0 counts while t + period > now
    assert model.wait() == 0.0
    assert model.try_acquire()
