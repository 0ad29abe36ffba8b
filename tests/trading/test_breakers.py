"""The TradingCircuitBreakers facade: day halts, warnings, concentration, orders, connection, status, callbacks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any, Callable

import pytest
from freezegun import freeze_time

from circuit_breakers import (
    CircuitBreaker,
    CircuitState,
    ConfigTypeError,
    KillSwitchError,
    ManualClock,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    TradingStatus,
    UnknownBreakerError,
)
from circuit_breakers.trading.breakers import BREAKER_NAMES

from .conftest import NY_MIDNIGHT_AFTER_START, FakeProvider, MakeBreakers, Recorder, unit_returns

D = Decimal


def advance_to(clock: ManualClock, when: dt.datetime) -> None:
    clock.advance((when - clock.now()).total_seconds())


def connection_breaker(breakers: TradingCircuitBreakers) -> CircuitBreaker:
    breaker = breakers.manager.get_circuit_breaker("connection")
    assert breaker is not None
    return breaker


# --- construction ---------------------------------------------------------------------------------


def test_provider_must_implement_the_protocol() -> None:
    with pytest.raises(ConfigTypeError, match="PortfolioProvider"):
        TradingCircuitBreakers(object())  # type: ignore[arg-type]


def test_config_must_be_a_trading_config(provider: FakeProvider) -> None:
    with pytest.raises(ConfigTypeError, match="TradingBreakerConfig"):
        TradingCircuitBreakers(provider, {"max_orders_per_minute": 5})  # type: ignore[arg-type]


def test_fresh_breakers_allow_trading(breakers: TradingCircuitBreakers) -> None:
    assert breakers.can_trade()
    assert breakers.get_blocking_reasons() == []
    assert not breakers.kill_switch_active


def test_can_trade_never_calls_the_provider(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.misbehave("raise")
    assert breakers.can_trade()
    assert provider.calls == 0


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


# --- position concentration -----------------------------------------------------------------------


@pytest.fixture
def spy_at_ten(provider: FakeProvider) -> FakeProvider:
    provider.concentration["SPY"] = D(10)
    return provider


def test_concentration_at_the_limit_is_allowed(breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider) -> None:
    assert breakers.check_position_concentration("SPY", D(100_000)) is True


def test_concentration_above_the_limit_is_refused(breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider) -> None:
    assert breakers.check_position_concentration("SPY", D("100000.01")) is False


def test_concentration_refusal_does_not_halt_trading(
    breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider
) -> None:
    breakers.check_position_concentration("SPY", D(500_000))
    assert breakers.can_trade()


def test_concentration_below_the_warning_level_is_silent(
    breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    assert breakers.check_position_concentration("SPY", D(40_000)) is True
    assert warnings.calls == []


def test_concentration_above_the_warning_level_warns(
    breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    assert breakers.check_position_concentration("SPY", D(60_000)) is True
    assert warnings.names() == ["position_concentration"]
    assert "16.00" in warnings.calls[0][1]


def test_concentration_warning_fires_once_per_crossing_for_one_symbol(
    breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    for value in (60_000, 70_000, 10_000, 60_000):  # 16 %, 17 %, back to 11 %, 16 % again
        breakers.check_position_concentration("SPY", D(value))
    assert warnings.names() == ["position_concentration", "position_concentration"]


def test_concentration_warning_fires_for_each_symbol_above_the_warning_level(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    provider.concentration.update(SPY=D(10), QQQ=D(10))
    warnings = recorder()
    breakers.register_warning_callback(warnings)
    assert breakers.check_position_concentration("SPY", D(60_000))  # 16 %
    assert breakers.check_position_concentration("QQQ", D(80_000))  # 18 %
    assert len(warnings.calls) == 2
    assert "QQQ" in warnings.calls[1][1]


@pytest.mark.parametrize("total", [D(0), D(-5000)])
def test_concentration_with_non_positive_total_is_refused(
    breakers: TradingCircuitBreakers, provider: FakeProvider, total: Decimal
) -> None:
    provider.total_value = total
    assert breakers.check_position_concentration("SPY", D(1)) is False


def test_concentration_fails_closed_when_the_provider_raises(
    breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.misbehave("raise", only=["get_position_concentration"])
    assert breakers.check_position_concentration("SPY", D(1)) is False


@pytest.mark.parametrize("garbage", [None, 12.5, "12.5", D("NaN")], ids=repr)
def test_concentration_fails_closed_on_garbage(
    breakers: TradingCircuitBreakers, provider: FakeProvider, garbage: Any
) -> None:
    provider.misbehave("garbage", only=["get_total_value"], garbage=garbage)
    assert breakers.check_position_concentration("SPY", D(1)) is False


def test_concentration_rejects_a_float_value(breakers: TradingCircuitBreakers) -> None:
    with pytest.raises(ConfigTypeError, match="proposed_value"):
        breakers.check_position_concentration("SPY", 50_000.0)  # type: ignore[arg-type]


def test_concentration_accepts_int_and_numeric_str(breakers: TradingCircuitBreakers, spy_at_ten: FakeProvider) -> None:
    assert breakers.check_position_concentration("SPY", 100_000) is True  # type: ignore[arg-type]
    assert breakers.check_position_concentration("SPY", "100000.01") is False  # type: ignore[arg-type]


# --- order rate -----------------------------------------------------------------------------------


def test_ten_orders_a_minute_then_refused(breakers: TradingCircuitBreakers) -> None:
    results = [breakers.record_order() for _ in range(11)]
    assert results == [True] * 10 + [False]


def test_refused_orders_are_not_counted(breakers: TradingCircuitBreakers) -> None:
    for _ in range(25):
        breakers.record_order()
    status = breakers.get_status()
    assert status.orders_last_minute == 10
    assert status.orders_last_hour == 10


def test_order_slots_free_as_the_window_slides(breakers: TradingCircuitBreakers, clock: ManualClock) -> None:
    for _ in range(10):
        assert breakers.record_order()
    clock.advance(59.9)
    assert not breakers.record_order()
    clock.advance(0.1)
    assert breakers.record_order()


def test_hourly_order_limit_is_enforced(breakers: TradingCircuitBreakers, clock: ManualClock) -> None:
    accepted = 0
    for _ in range(10):
        accepted += sum(breakers.record_order() for _ in range(10))
        clock.advance(60)
    assert accepted == 100
    assert not breakers.record_order()  # the minute window is empty, the hour window is full
    assert breakers.get_status().orders_last_minute == 0
    assert breakers.get_status().orders_last_hour == 100


def test_order_limit_never_blocks_trading(breakers: TradingCircuitBreakers) -> None:
    for _ in range(20):
        breakers.record_order()
    assert breakers.can_trade()
    assert breakers.get_blocking_reasons() == []


def test_custom_order_limits(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(max_orders_per_minute=2, max_orders_per_hour=3)
    assert [breakers.record_order() for _ in range(3)] == [True, True, False]


def test_reset_breaker_rate_limit_frees_the_window(breakers: TradingCircuitBreakers) -> None:
    for _ in range(10):
        breakers.record_order()
    assert breakers.reset_breaker("rate_limit") is True
    assert breakers.record_order()


# --- connection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [ConnectionError("broker reset"), "socket closed by broker"], ids=["exc", "str"])
def test_three_connection_failures_halt(breakers: TradingCircuitBreakers, error: Any) -> None:
    breakers.record_connection_failure(error)
    breakers.record_connection_failure(error)
    assert breakers.can_trade()
    breakers.record_connection_failure(error)
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert len(reasons) == 1
    assert reasons[0].startswith("connection:")
    assert "socket closed by broker" in reasons[0] or "broker reset" in reasons[0]


def test_connection_half_opens_after_the_open_timeout(breakers: TradingCircuitBreakers, clock: ManualClock) -> None:
    for _ in range(3):
        breakers.record_connection_failure(OSError("down"))
    clock.advance(29)
    assert not breakers.can_trade()
    clock.advance(1)
    assert connection_breaker(breakers).state is CircuitState.HALF_OPEN
    assert breakers.can_trade()


def test_record_connection_success_closes_a_half_open_connection(
    breakers: TradingCircuitBreakers, clock: ManualClock
) -> None:
    for _ in range(3):
        breakers.record_connection_failure(OSError("down"))
    clock.advance(30)
    breakers.record_connection_success()
    assert connection_breaker(breakers).state is CircuitState.CLOSED


def test_connection_recovers_through_a_guarded_call_after_the_open_timeout(
    breakers: TradingCircuitBreakers, clock: ManualClock
) -> None:
    for _ in range(3):
        breakers.record_connection_failure(OSError("down"))
    clock.advance(30)
    with breakers.trade_guard():
        pass
    assert connection_breaker(breakers).state is CircuitState.CLOSED
    assert breakers.can_trade()


def test_a_failure_while_half_open_reopens_the_connection(breakers: TradingCircuitBreakers, clock: ManualClock) -> None:
    for _ in range(3):
        breakers.record_connection_failure(OSError("down"))
    clock.advance(30)
    with pytest.raises(ConnectionResetError), breakers.trade_guard():
        raise ConnectionResetError("still down")
    assert connection_breaker(breakers).state is CircuitState.OPEN
    assert not breakers.can_trade()


def test_connection_breaker_is_in_the_manager(breakers: TradingCircuitBreakers) -> None:
    breaker = connection_breaker(breakers)
    for _ in range(3):
        breakers.record_connection_failure("down")
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.failed_requests == 3


def test_connection_threshold_is_configurable(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(connection_failure_threshold=1)
    breakers.record_connection_failure("down")
    assert not breakers.can_trade()


def test_reset_breaker_connection_closes_it(breakers: TradingCircuitBreakers) -> None:
    for _ in range(3):
        breakers.record_connection_failure("down")
    assert breakers.reset_breaker("connection") is True
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


# --- status ---------------------------------------------------------------------------------------


def test_status_is_frozen(breakers: TradingCircuitBreakers) -> None:
    status = breakers.get_status()
    assert isinstance(status, TradingStatus)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.can_trade = False  # type: ignore[misc]


def test_status_details_cover_every_breaker(breakers: TradingCircuitBreakers) -> None:
    assert set(breakers.get_status().details) >= set(BREAKER_NAMES)


def test_status_to_dict_is_json_with_decimals_as_strings(
    breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.daily_pnl_pct = D("-2.5")
    provider.concentration["SPY"] = D(18)
    breakers.check_now()
    breakers.check_position_concentration("SPY", D(1000))
    breakers.record_order()
    data = breakers.get_status().to_dict()
    decoded = json.loads(json.dumps(data))
    assert decoded == data
    daily = decoded["details"]["daily_loss"]
    assert daily["value"] == "-2.5"
    assert daily["limit"] == "-2.0"
    assert daily["warning_level"] == "-1.5"
    assert daily["tripped"] is True
    assert daily["state"] == "tripped"
    assert daily["last_trip_reason"] == "P&L -2.50% <= limit -2.00%"
    assert daily["last_trip_time"] == "2026-01-05T14:30:00+00:00"
    assert decoded["details"]["max_drawdown"]["limit"] == "-10.0"
    assert decoded["details"]["position_concentration"]["warning"] is True
    assert decoded["details"]["position_concentration"]["state"] == "warning"
    assert decoded["details"]["max_drawdown"]["state"] == "ok"
    assert decoded["orders_last_minute"] == 1
    assert decoded["blocking_breakers"] == ["daily_loss"]


def test_status_counts_orders(breakers: TradingCircuitBreakers, clock: ManualClock) -> None:
    for _ in range(3):
        breakers.record_order()
    clock.advance(61)
    breakers.record_order()
    status = breakers.get_status()
    assert (status.orders_last_minute, status.orders_last_hour) == (1, 4)


def test_status_reports_the_kill_switch(keyed_breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.max_drawdown = D(-12)
    status = keyed_breakers.check_now()
    assert status.kill_switch_active
    assert status.blocking_breakers == ("max_drawdown",)
    assert status.details["max_drawdown"]["tripped"] is True


def test_last_trip_is_kept_after_a_reset(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    breakers.reset_breaker("daily_loss")
    provider.daily_pnl_pct = D(0)
    details = breakers.check_now().details["daily_loss"]
    assert details["tripped"] is False
    assert details["last_trip_reason"] == "P&L -3.00% <= limit -2.00%"


# --- callbacks ------------------------------------------------------------------------------------


def test_trip_callback_gets_name_and_reason(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    trips = recorder()
    breakers.register_trip_callback(trips)
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    breakers.check_now()
    assert trips.calls == [("daily_loss", "P&L -2.50% <= limit -2.00%")]


def test_recovery_callback_gets_the_name(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    recoveries = recorder()
    breakers.register_recovery_callback(recoveries)
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    breakers.reset_breaker("daily_loss")
    assert recoveries.calls == [("daily_loss",)]


def test_recovery_callback_fires_at_the_day_rollover(
    breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock, recorder: Callable[[], Recorder]
) -> None:
    recoveries = recorder()
    breakers.register_recovery_callback(recoveries)
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    advance_to(clock, NY_MIDNIGHT_AFTER_START)
    breakers.can_trade()
    assert recoveries.calls == [("daily_loss",)]


def test_connection_trip_and_recovery_callbacks(
    breakers: TradingCircuitBreakers, clock: ManualClock, recorder: Callable[[], Recorder]
) -> None:
    trips, recoveries = recorder(), recorder()
    breakers.register_trip_callback(trips)
    breakers.register_recovery_callback(recoveries)
    for _ in range(3):
        breakers.record_connection_failure("gateway timeout")
    assert trips.names() == ["connection"]
    assert "gateway timeout" in trips.calls[0][1]
    clock.advance(30)
    with breakers.trade_guard():
        pass
    assert recoveries.calls == [("connection",)]


def test_raising_callback_is_logged_and_does_not_stop_the_halt(
    breakers: TradingCircuitBreakers,
    provider: FakeProvider,
    recorder: Callable[[], Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(name: str, reason: str) -> None:
        raise RuntimeError("pager is down")

    later = recorder()
    breakers.register_trip_callback(explode)
    breakers.register_trip_callback(later)
    provider.daily_pnl_pct = D(-3)
    with caplog.at_level(logging.ERROR):
        breakers.check_now()
    assert not breakers.can_trade()
    assert later.names() == ["daily_loss"]
    assert any(record.exc_info and "pager is down" in str(record.exc_info[1]) for record in caplog.records)


def test_callback_may_call_back_into_the_breakers(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    seen: list[bool] = []
    breakers.register_trip_callback(lambda name, reason: seen.append(breakers.can_trade()))
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    assert seen == [False]


def test_non_callable_callback_is_rejected(breakers: TradingCircuitBreakers) -> None:
    with pytest.raises(ConfigTypeError):
        breakers.register_trip_callback("print")  # type: ignore[arg-type]


def test_config_property_is_the_given_config(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(max_orders_per_minute=3)
    assert isinstance(breakers.config, TradingBreakerConfig)
    assert breakers.config.max_orders_per_minute == 3


def test_hand_made_changes_to_the_mirrors_are_undone_by_the_next_check(
    breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.daily_pnl_pct = D("-3")
    breakers.check_now()
    breakers.manager.reset_all()  # the mirrors close, the halt holds
    assert not breakers.can_trade()
    breakers.check_now()
    assert breakers.manager.get_open_breakers() == ["daily_loss"]
    volatility = breakers.manager.get_circuit_breaker("volatility")
    assert volatility is not None
    volatility.force_open()
    breakers.check_now()
    assert breakers.manager.get_open_breakers() == ["daily_loss"]
