"""The TradingCircuitBreakers limits that refuse without halting the day: concentration, order rate, connection."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitState,
    ConfigTypeError,
    ManualClock,
    TradingCircuitBreakers,
)

from .conftest import FakeProvider, MakeBreakers, Recorder
from .order_fakes import D


def connection_breaker(breakers: TradingCircuitBreakers) -> CircuitBreaker:
    breaker = breakers.manager.get_circuit_breaker("connection")
    assert breaker is not None
    return breaker


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
