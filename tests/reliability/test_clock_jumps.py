"""Clock jumps: the wall clock stepped backwards or forwards (NTP, a DST change in New York) opens or
closes nothing; intervals run on the monotonic clock, and only day boundaries read the wall clock.

Already covered: a day halt lifting across spring-forward and at New York midnight under freezegun,
and a wall clock stepped back not lifting a day halt (tests/trading/test_breakers.py), trading-day
arithmetic around both DST changes (tests/trading/test_config.py). Here: every interval the library
keeps, under wall-clock jumps both ways, and the fall-back repeated hour.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    KillSwitchError,
    Limit,
    ManualClock,
    RateLimiter,
)
from circuit_breakers.trading.latches import CLOCK_SLACK

from ..trading.conftest import RESET_KEY, WRONG_KEY, FakeProvider
from .conftest import MakeBreakers

D = Decimal
UTC = dt.timezone.utc
JUMPS = [
    dt.timedelta(hours=-1),
    dt.timedelta(hours=1),
    dt.timedelta(days=-1),
    dt.timedelta(days=1),
    dt.timedelta(days=-365),
    dt.timedelta(seconds=-59),
]
ids = [str(jump) for jump in JUMPS]


def jump(clock: ManualClock, by: dt.timedelta) -> None:
    clock.set_wall(clock.now() + by)


class Boom(RuntimeError):
    pass


def _raise() -> None:
    raise Boom("down")


@pytest.mark.parametrize("by", JUMPS, ids=ids)
def test_open_timeout_ignores_wall_jumps(clock: ManualClock, by: dt.timedelta) -> None:
    breaker = CircuitBreaker(
        "jumpy", config=CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=30), clock=clock
    )
    with pytest.raises(Boom):
        breaker.call(_raise)
    jump(clock, by)
    clock.advance(29)
    assert breaker.state is CircuitState.OPEN
    assert breaker.get_status()["seconds_until_retry"] == 1.0
    jump(clock, -by)
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN


@pytest.mark.parametrize("by", JUMPS, ids=ids)
def test_failure_window_ignores_wall_jumps(clock: ManualClock, by: dt.timedelta) -> None:
    breaker = CircuitBreaker(
        "window", config=CircuitBreakerConfig(failure_threshold=2, failure_window_seconds=60), clock=clock
    )
    with pytest.raises(Boom):
        breaker.call(_raise)
    clock.advance(30)
    jump(clock, by)
    assert breaker.get_status()["failures_in_window"] == 1
    clock.advance(29)
    with pytest.raises(Boom):
        breaker.call(_raise)  # 59 s after the first: both count
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("by", JUMPS, ids=ids)
def test_half_open_timeout_ignores_wall_jumps(clock: ManualClock, by: dt.timedelta) -> None:
    config = CircuitBreakerConfig(
        failure_threshold=1, open_timeout_seconds=10, half_open_timeout_seconds=5, success_threshold=2
    )
    breaker = CircuitBreaker("trial", config=config, clock=clock)
    breaker.record_failure("down")
    clock.advance(10)
    assert breaker.allow()  # a trial goes out
    jump(clock, by)
    clock.advance(4)
    assert breaker.state is CircuitState.HALF_OPEN
    clock.advance(1)
    assert breaker.state is CircuitState.OPEN


def test_opened_at_is_wall_time_and_only_for_display(clock: ManualClock) -> None:
    breaker = CircuitBreaker("display", config=CircuitBreakerConfig(failure_threshold=1), clock=clock)
    breaker.record_failure("down")
    opened = breaker.get_status()["opened_at"]
    jump(clock, dt.timedelta(days=-2))
    assert breaker.get_status()["opened_at"] == opened
    assert breaker.get_status()["seconds_until_retry"] == 60.0


@pytest.mark.parametrize("by", JUMPS, ids=ids)
def test_rate_windows_ignore_wall_jumps(clock: ManualClock, by: dt.timedelta) -> None:
    limiter = RateLimiter(Limit(2, 60), clock=clock)
    assert limiter.try_acquire()
    assert limiter.try_acquire()
    jump(clock, by)
    clock.advance(59.5)
    assert not limiter.try_acquire()
    assert limiter.retry_after() == 0.5
    clock.advance(0.5)
    assert limiter.try_acquire()


@pytest.mark.parametrize("by", JUMPS, ids=ids)
def test_reset_lockout_ignores_wall_jumps(make_breakers: MakeBreakers, clock: ManualClock, by: dt.timedelta) -> None:
    breakers = make_breakers(reset_key=RESET_KEY, reset_max_attempts=2, reset_lockout_seconds=60)
    breakers.engage_kill_switch("test")
    assert breakers.reset_kill_switch(WRONG_KEY) is False
    assert breakers.reset_kill_switch(WRONG_KEY) is False
    jump(clock, by)
    clock.advance(59)
    with pytest.raises(KillSwitchError, match="locked out"):
        breakers.reset_kill_switch(RESET_KEY)
    clock.advance(1)
    assert breakers.reset_kill_switch(RESET_KEY) is True


@pytest.mark.parametrize("by", JUMPS, ids=ids)
def test_staleness_and_connection_timeout_ignore_wall_jumps(
    make_breakers: MakeBreakers, clock: ManualClock, by: dt.timedelta
) -> None:
    breakers = make_breakers(check_interval_seconds=3600, stale_after_seconds=60, connection_timeout_seconds=30)
    breakers.start_monitoring()
    for _ in range(3):
        breakers.record_connection_failure("refused")
    assert not breakers.can_trade()
    jump(clock, by)
    clock.advance(29)
    assert any(reason.startswith("connection:") for reason in breakers.get_blocking_reasons())
    clock.advance(1)  # the connection breaker half-opens: no longer blocking
    assert breakers.get_blocking_reasons() == []
    clock.advance(30.5)  # 60.5 s since the last good reading
    assert [reason.split(":")[0] for reason in breakers.get_blocking_reasons()] == ["monitor"]


@pytest.mark.parametrize("by", [dt.timedelta(hours=-12), dt.timedelta(hours=-1), dt.timedelta(minutes=-1)])
def test_auto_recovery_cooldown_is_monotonic(
    make_breakers: MakeBreakers, provider: FakeProvider, clock: ManualClock, by: dt.timedelta
) -> None:
    breakers = make_breakers(auto_recovery=True, cooldown_seconds=300)
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    breakers.check_now()  # cleared, but cooling down
    jump(clock, by)
    clock.advance(299)
    assert not breakers.can_trade()
    clock.advance(1)
    assert breakers.can_trade()


def test_wall_jump_forward_past_midnight_lifts_nothing_until_the_monotonic_clock_agrees(
    make_breakers: MakeBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    breakers = make_breakers(reset_key=RESET_KEY)
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    breakers.engage_kill_switch("by hand")
    provider.daily_pnl_pct = D(0)
    jump(clock, dt.timedelta(hours=15))  # from 09:30 to 00:30 the next day in New York, by the wall clock alone
    assert not breakers.can_trade()  # the lock-free path
    names = [reason.split(":")[0] for reason in breakers.get_blocking_reasons()]
    assert names == ["max_drawdown", "daily_loss"]  # the day halt holds: the monotonic clock says 0 s passed
    jump(clock, dt.timedelta(hours=-15))  # stepping back re-imposes nothing and lifts nothing
    assert [reason.split(":")[0] for reason in breakers.get_blocking_reasons()] == ["max_drawdown", "daily_loss"]
    clock.advance(15 * 3600)  # both clocks at 00:30 the next day now
    assert [reason.split(":")[0] for reason in breakers.get_blocking_reasons()] == ["max_drawdown"]


def test_a_wall_clock_stepped_past_midnight_lifts_a_day_halt_only_when_the_monotonic_clock_gets_there(
    make_breakers: MakeBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D(-3)
    breakers = make_breakers()
    breakers.check_now()  # 09:30 in New York: 14.5 hours of this trading day left
    provider.daily_pnl_pct = D(0)
    jump(clock, dt.timedelta(hours=15))
    assert not breakers.can_trade()
    breakers.check_now()
    assert breakers.get_status().blocking_breakers == ("daily_loss",)
    clock.advance(14.5 * 3600 - CLOCK_SLACK - 1)
    assert not breakers.can_trade()
    clock.advance(1)  # the monotonic clock agrees too (within the stated slack)
    assert breakers.can_trade()


def test_dst_fall_back_repeated_hour_keeps_the_day_halt_until_midnight(
    make_breakers: MakeBreakers, provider: FakeProvider
) -> None:
    # Sunday 1 November 2026: 01:59:59 EDT is followed by 01:00:00 EST.
    clock = ManualClock(start=dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # 01:30 EDT
    breakers = make_breakers(clock_=clock)
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    clock.advance(3600)  # 01:30 EST: the same wall-clock reading again, the same trading day
    assert not breakers.can_trade()
    clock.advance(22 * 3600 + 1799)  # 23:59:59 EST: 25 hours in this day
    assert not breakers.can_trade()
    clock.advance(1)  # 00:00 EST, 2 November: a new trading day
    assert breakers.can_trade()


def test_dst_spring_forward_skipped_hour_does_not_end_the_day(
    make_breakers: MakeBreakers, provider: FakeProvider
) -> None:
    # Sunday 8 March 2026: 01:59:59 EST is followed by 03:00:00 EDT.
    clock = ManualClock(start=dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC))  # 01:30 EST
    breakers = make_breakers(clock_=clock)
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    clock.advance(3600)  # 03:30 EDT, one real hour later
    assert not breakers.can_trade()
    clock.advance(20 * 3600 + 1799)  # 23:59:59 EDT
    assert not breakers.can_trade()
    clock.advance(1)
    assert breakers.can_trade()
