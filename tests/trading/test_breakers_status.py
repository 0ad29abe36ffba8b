"""The TradingCircuitBreakers facade: construction, status and callbacks."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Callable

import pytest

from circuit_breakers import (
    ConfigTypeError,
    ManualClock,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    TradingStatus,
)
from circuit_breakers.trading.breakers import BREAKER_NAMES

from .conftest import NY_MIDNIGHT_AFTER_START, FakeProvider, MakeBreakers, Recorder, advance_to
from .order_fakes import D

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
