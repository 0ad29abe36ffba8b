"""The lock-free paths: successes while CLOSED, rejections while OPEN, can_trade() while halted.

Each fast path must give exactly the answer the locked path gives; these tests pin the places where
they could differ (bucket edges, a trip while a call is in flight, clocks, concurrent counting).
"""

from __future__ import annotations

import datetime as dt
import pickle
import threading
from decimal import Decimal
from typing import List

import pytest
from freezegun import freeze_time

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ManualClock,
    TradingBreakerConfig,
    TradingCircuitBreakers,
)
from circuit_breakers.window import BucketedWindow, Tally

from .conftest import Boom

# Trips on one failure, stays open 30 s, closes on one trial success.
OPENS_ON_ONE = CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=30, success_threshold=1)


def test_tally_counts_every_add_and_reads_without_disturbing() -> None:
    tally = Tally()
    for _ in range(5):
        tally.add()
    assert tally.value() == 5
    assert tally.value() == 5  # a read takes a number but does not count it
    tally.add()
    assert tally.value() == 6


def test_tally_is_exact_under_threads() -> None:
    tally = Tally()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(20_000):
            tally.add()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert tally.value() == 160_000


def test_window_counts_lock_free_successes_into_the_live_bucket() -> None:
    window = BucketedWindow(60)  # buckets of 1 s
    window.add(10.5, True)  # opens bucket [10, 11)
    start, end, add = window.live
    assert (start, end) == (10.0, 11.0)
    add()
    add()
    assert window.totals(10.9) == (3, 1)
    assert window.totals(69.9) == (3, 1)  # bucket 10 still inside the window ending at 69.9
    assert window.totals(70.0) == (0, 0)  # and gone when the window slides past it


def test_window_live_range_moves_with_the_head_and_empties_on_clear() -> None:
    window = BucketedWindow(60)
    window.add(5.0, False)
    window.totals(7.2)
    assert window.live[:2] == (7.0, 8.0)
    window.clear()
    start, end, _ = window.live
    assert not start <= 7.5 < end  # no live bucket: the next success takes the locked path
    assert window.totals(7.5) == (0, 0)


def test_a_late_lock_free_count_still_lands_in_its_own_bucket() -> None:
    window = BucketedWindow(60)
    window.add(10.5, False)
    _, _, late_add = window.live  # a thread reads the live bucket [10, 11) ...
    window.add(12.5, True)  # ... the window moves on twice before it counts ...
    window.add(13.5, False)
    late_add()  # ... and its success still counts, in bucket 10
    assert window.totals(13.9) == (4, 1)
    assert window.totals(70.5) == (2, 1)  # bucket 10 expires at 70 s, with the late count


def test_a_late_count_after_clear_is_dropped_with_its_period() -> None:
    window = BucketedWindow(60)
    window.add(10.5, False)
    _, _, late_add = window.live
    window.clear()
    late_add()
    assert window.totals(10.9) == (0, 0)


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


class LossProvider:
    def __init__(self) -> None:
        self.pnl_pct = Decimal("-3")

    def get_total_value(self) -> Decimal:
        return Decimal(1_000_000)

    def get_daily_pnl(self) -> Decimal:
        return self.pnl_pct * Decimal(10_000)

    def get_daily_pnl_pct(self) -> Decimal:
        return self.pnl_pct

    def get_max_drawdown(self) -> Decimal:
        return Decimal(0)

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal(0)


def test_can_trade_fast_path_holds_a_day_halt_until_the_next_trading_day() -> None:
    # 2026-03-06 is a Friday; the day resets at 00:00 America/New_York (05:00 UTC in winter).
    clock = ManualClock(start=dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.timezone.utc))
    provider = LossProvider()
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(), clock=clock)
    breakers.check_now()
    assert not breakers.can_trade()
    provider.pnl_pct = Decimal("0")
    breakers.check_now()
    clock.advance((dt.datetime(2026, 3, 7, 4, 59, 59, tzinfo=dt.timezone.utc) - clock.now()).total_seconds())
    assert not breakers.can_trade()  # still Friday in New York
    clock.advance(1)
    assert breakers.can_trade()  # Saturday has begun by both clocks: the halt lifts


def test_can_trade_fast_path_lets_auto_recovery_decide_after_the_cooldown() -> None:
    clock = ManualClock(start=dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.timezone.utc))
    provider = LossProvider()
    config = TradingBreakerConfig(auto_recovery=True, cooldown_seconds=300)
    breakers = TradingCircuitBreakers(provider, config, clock=clock)
    breakers.check_now()
    provider.pnl_pct = Decimal("0")
    breakers.check_now()
    clock.advance(299)
    assert not breakers.can_trade()
    clock.advance(1)
    assert breakers.can_trade()


def test_can_trade_fast_path_sees_a_manual_reset_at_once() -> None:
    clock = ManualClock(start=dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.timezone.utc))
    provider = LossProvider()
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(), clock=clock)
    breakers.check_now()
    assert not breakers.can_trade()
    provider.pnl_pct = Decimal("0")
    breakers.reset_breaker("daily_loss")
    assert breakers.can_trade()
