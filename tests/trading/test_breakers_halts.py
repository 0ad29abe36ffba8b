"""The TradingCircuitBreakers day halts: daily loss, warnings, volatility, auto recovery and resets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Callable

import pytest
from freezegun import freeze_time

from circuit_breakers import (
    CircuitState,
    KillSwitchError,
    ManualClock,
    TradingCircuitBreakers,
    UnknownBreakerError,
)
from circuit_breakers.trading.breakers import BREAKER_NAMES

from .conftest import NY_MIDNIGHT_AFTER_START, FakeProvider, MakeBreakers, Recorder, advance_to, unit_returns
from .order_fakes import D

# --- daily loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pnl", [D("-2.0"), D("-2.5"), D(-7)])
def test_daily_loss_at_or_below_the_limit_halts(
    breakers: TradingCircuitBreakers, provider: FakeProvider, pnl: Decimal
) -> None:
    provider.daily_pnl_pct = pnl
    status = breakers.check_now()
    assert not status.can_trade
    assert not breakers.can_trade()
    assert "daily_loss" in status.blocking_breakers


def test_daily_loss_just_above_the_limit_does_not_halt(
    breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.daily_pnl_pct = D("-1.99")
    breakers.check_now()
    assert breakers.can_trade()


def test_daily_loss_halt_survives_recovery_for_the_rest_of_the_day(
    breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    provider.daily_pnl_pct = D("1.0")
    breakers.check_now()
    clock.advance(6 * 3600)  # 15:30 in New York, same trading day
    breakers.check_now()
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons()[0].startswith("daily_loss:")


def test_daily_loss_halt_holds_until_new_york_midnight(
    breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    advance_to(clock, NY_MIDNIGHT_AFTER_START - dt.timedelta(seconds=1))
    assert not breakers.can_trade()


def test_daily_loss_halt_lifts_on_the_next_trading_day(
    breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    advance_to(clock, NY_MIDNIGHT_AFTER_START + dt.timedelta(seconds=1))
    assert breakers.can_trade()
    assert breakers.check_now().can_trade


def test_daily_loss_halt_lifts_at_utc_midnight_only_if_that_is_new_york_midnight(
    breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    advance_to(clock, dt.datetime(2026, 1, 6, 0, 30, tzinfo=dt.timezone.utc))  # 19:30 EST on the 5th
    assert not breakers.can_trade()


def test_day_halt_lifts_across_a_dst_change(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    clock = ManualClock(start=dt.datetime(2026, 3, 8, 20, 0, tzinfo=dt.timezone.utc))  # 16:00 EDT, 8 March
    breakers = make_breakers(clock_=clock)
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    advance_to(clock, dt.datetime(2026, 3, 9, 3, 59, tzinfo=dt.timezone.utc))  # 23:59 EDT
    assert not breakers.can_trade()
    advance_to(clock, dt.datetime(2026, 3, 9, 4, 1, tzinfo=dt.timezone.utc))  # 00:01 EDT, 9 March
    assert breakers.can_trade()


def test_custom_reset_time_lifts_the_day_halt(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(trading_day_reset_time=dt.time(17, 0))
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()  # 09:30 EST
    provider.daily_pnl_pct = D(0)
    clock: ManualClock = breakers._clock  # type: ignore[assignment]
    advance_to(clock, dt.datetime(2026, 1, 5, 21, 59, tzinfo=dt.timezone.utc))  # 16:59 EST
    assert not breakers.can_trade()
    advance_to(clock, dt.datetime(2026, 1, 5, 22, 0, 1, tzinfo=dt.timezone.utc))  # 17:00:01 EST
    assert breakers.can_trade()


def test_wall_clock_stepping_back_does_not_lift_a_day_halt(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    clock = ManualClock(start=NY_MIDNIGHT_AFTER_START + dt.timedelta(seconds=30))  # 00:00:30 EST, 6 January
    breakers = make_breakers(clock_=clock)
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    clock.set_wall(NY_MIDNIGHT_AFTER_START - dt.timedelta(seconds=30))  # NTP steps the clock back a minute
    assert not breakers.can_trade()


def test_day_halt_lifts_at_new_york_midnight_with_freezegun(provider: FakeProvider) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breakers = TradingCircuitBreakers(provider)  # the system clock, frozen
        provider.daily_pnl_pct = D(-3)
        breakers.check_now()
        provider.daily_pnl_pct = D(0)
        frozen.move_to("2026-01-06 04:59:59")
        assert not breakers.can_trade()
        frozen.move_to("2026-01-06 05:00:00")
        assert breakers.can_trade()


def test_reset_breaker_lifts_the_daily_loss_halt(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    assert breakers.reset_breaker("daily_loss") is True
    assert breakers.can_trade()


def test_reset_breaker_with_nothing_to_reset_returns_false(breakers: TradingCircuitBreakers) -> None:
    assert breakers.reset_breaker("daily_loss") is False


def test_blocking_reason_names_breaker_value_and_limit(
    breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    assert breakers.get_blocking_reasons() == ["daily_loss: P&L -2.50% <= limit -2.00%"]


def test_daily_loss_mirror_breaker_opens(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    mirror = breakers.manager.get_circuit_breaker("daily_loss")
    assert mirror is not None
    assert mirror.state is CircuitState.OPEN


# --- warnings -------------------------------------------------------------------------------------


def test_warning_fires_once_per_crossing(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    provider.daily_pnl_pct = D("-1.6")
    breakers.check_now()
    provider.daily_pnl_pct = D("-1.7")
    breakers.check_now()
    breakers.check_now()
    assert warnings.calls == [("daily_loss", "P&L -1.60% <= warning -1.50%")]
    assert breakers.can_trade()


def test_warning_fires_again_after_recrossing(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    for pnl in ("-1.6", "-1.0", "-1.8"):
        provider.daily_pnl_pct = D(pnl)
        breakers.check_now()
    assert warnings.names() == ["daily_loss", "daily_loss"]
    assert "-1.8" in warnings.calls[1][1]


def test_warning_breakers_in_status(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D("-1.6")
    assert breakers.check_now().warning_breakers == ("daily_loss",)
    provider.daily_pnl_pct = D(0)
    assert breakers.check_now().warning_breakers == ()


def test_drawdown_warning_fires_without_halting(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    provider.max_drawdown = D("-7.5")
    breakers.check_now()
    assert warnings.names() == ["max_drawdown"]
    assert breakers.can_trade()
    assert not breakers.kill_switch_active


# --- volatility -----------------------------------------------------------------------------------


def test_volatility_spike_halts_for_the_day(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    provider = FakeProvider(returns=unit_returns(), daily_pnl_pct=D(4))
    breakers = make_breakers(provider)
    breakers.check_now()
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert len(reasons) == 1
    assert reasons[0].startswith("volatility:")
    assert "3.0" in reasons[0]
    provider.daily_pnl_pct = D(0)
    breakers.check_now()
    assert not breakers.can_trade()
    advance_to(clock, NY_MIDNIGHT_AFTER_START + dt.timedelta(seconds=1))
    assert breakers.can_trade()


def test_volatility_drop_also_halts(make_breakers: MakeBreakers) -> None:
    provider = FakeProvider(returns=[r / 2 for r in unit_returns()], daily_pnl_pct=D("-1.9"))  # std 0.5: ~3.8 sigma
    breakers = make_breakers(provider)
    status = breakers.check_now()
    assert status.blocking_breakers == ("volatility",)


def test_volatility_is_not_evaluated_without_returns(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D("1.9")
    status = breakers.check_now()
    assert status.can_trade
    assert "get_daily_returns" in status.details["volatility"]["message"]


def test_volatility_with_too_few_returns_does_not_halt(make_breakers: MakeBreakers) -> None:
    provider = FakeProvider(returns=unit_returns()[:3], daily_pnl_pct=D("1.9"))
    status = make_breakers(provider).check_now()
    assert status.can_trade
    assert "need 5" in status.details["volatility"]["message"]


def test_reset_breaker_lifts_the_volatility_halt(make_breakers: MakeBreakers) -> None:
    provider = FakeProvider(returns=unit_returns(), daily_pnl_pct=D(4))
    breakers = make_breakers(provider)
    breakers.check_now()
    assert breakers.reset_breaker("volatility") is True
    assert breakers.can_trade()


# --- auto recovery --------------------------------------------------------------------------------


@pytest.fixture
def auto(make_breakers: MakeBreakers) -> TradingCircuitBreakers:
    return make_breakers(auto_recovery=True, cooldown_seconds=300, reset_key="k")


def test_auto_recovery_lifts_after_cooldown_once_cleared(
    auto: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    auto.check_now()
    provider.daily_pnl_pct = D("-0.5")
    clock.advance(100)
    auto.check_now()
    clock.advance(199)
    assert not auto.can_trade()
    clock.advance(1)
    assert auto.can_trade()


def test_auto_recovery_waits_until_the_condition_clears(
    auto: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    auto.check_now()
    clock.advance(400)
    auto.check_now()
    assert not auto.can_trade()
    provider.daily_pnl_pct = D("-0.5")
    auto.check_now()
    assert auto.can_trade()


def test_without_auto_recovery_a_cleared_halt_stays(
    breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    provider.daily_pnl_pct = D(0)
    clock.advance(3600)
    breakers.check_now()
    assert not breakers.can_trade()


def test_auto_recovery_never_releases_the_kill_switch(
    auto: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.max_drawdown = D(-11)
    auto.check_now()
    provider.max_drawdown = D(0)
    for _ in range(3):
        clock.advance(86_400)
        auto.check_now()
    assert auto.kill_switch_active
    assert not auto.can_trade()


# --- reset_breaker / reset_all --------------------------------------------------------------------


def test_unknown_breaker_name_raises_listing_known_names(breakers: TradingCircuitBreakers) -> None:
    with pytest.raises(UnknownBreakerError) as info:
        breakers.reset_breaker("dayly_loss")
    assert isinstance(info.value, KeyError)
    for name in BREAKER_NAMES:
        assert name in str(info.value)
    assert "dayly_loss" in str(info.value)


def test_reset_all_lifts_day_halts_and_connection(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    provider = FakeProvider(returns=unit_returns(), daily_pnl_pct=D(-5))
    breakers = make_breakers(provider)
    breakers.check_now()
    for _ in range(3):
        breakers.record_connection_failure("down")
    assert set(breakers.get_status().blocking_breakers) == {"daily_loss", "volatility", "connection"}
    breakers.reset_all()
    assert breakers.can_trade()


def test_reset_breaker_max_drawdown_refuses_with_manual_reset(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.max_drawdown = D(-10)
    keyed_breakers.check_now()
    with pytest.raises(KillSwitchError):
        keyed_breakers.reset_breaker("max_drawdown")
    assert keyed_breakers.kill_switch_active
