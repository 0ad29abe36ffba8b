"""Figures at the edge of Decimal: a provider or a caller answering 1e999999999 never crashes a check.

An absurd figure is a bad reading (as many in a row as ``connection_failure_threshold`` halt trading
with the provider fault, naming the method); an
absurd amount is a ConfigError naming the field. Neither reaches the arithmetic, where it would
raise decimal.Overflow or InvalidOperation from inside the monitor.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from circuit_breakers import ConfigError, Order, OrderRejected, Side, TradingCircuitBreakers

from .conftest import FakeProvider

ABSURD = ["1e999999999", "-1e999999999", "1e21", "-1e21", "1e-999999999", "-1e-41"]
LARGE_BUT_FINE = ["1e20", "123456789012345678.9", "1e-39", "0", "-0"]
FIGURES = {
    "total_value": "get_total_value",
    "daily_pnl": "get_daily_pnl",
    "daily_pnl_pct": "get_daily_pnl_pct",
    "max_drawdown": "get_max_drawdown",
}


def _reading_with(attribute: str, value: Decimal) -> TradingCircuitBreakers:
    provider = FakeProvider()
    breakers = TradingCircuitBreakers(provider)
    breakers.check_now()
    assert breakers.can_trade()
    setattr(provider, attribute, value)
    for _ in range(breakers.config.connection_failure_threshold):  # bad readings in a row halt trading
        breakers.check_now()  # never raises
    return breakers


@pytest.mark.parametrize("text", ABSURD)
@pytest.mark.parametrize("attribute", sorted(FIGURES))
def test_an_absurd_figure_is_a_bad_reading_that_halts_trading(attribute: str, text: str) -> None:
    breakers = _reading_with(attribute, Decimal(text))
    assert not breakers.can_trade()
    (reason,) = breakers.get_blocking_reasons()
    assert reason.startswith("provider:")
    assert FIGURES[attribute] in reason
    assert "out of range" in reason


@pytest.mark.parametrize("text", LARGE_BUT_FINE)
@pytest.mark.parametrize("attribute", ["daily_pnl", "total_value"])
def test_large_and_small_figures_within_range_are_read(attribute: str, text: str) -> None:
    breakers = _reading_with(attribute, Decimal(text))
    assert not any(reason.startswith("provider:") for reason in breakers.get_blocking_reasons())
    breakers.get_status()


@pytest.mark.parametrize("text", ABSURD)
def test_an_absurd_concentration_or_return_never_crashes_a_check(text: str) -> None:
    provider = FakeProvider(concentration={"AAPL": Decimal(text)}, returns=[Decimal("0.01"), Decimal(text)])
    breakers = TradingCircuitBreakers(provider)
    for _ in range(breakers.config.connection_failure_threshold):
        breakers.check_now()
    assert not breakers.can_trade()
    assert any("get_daily_returns" in reason for reason in breakers.get_blocking_reasons())
    decision = breakers.check_order(Order("AAPL", Side.BUY, Decimal(1), Decimal(100)))
    assert not decision.accepted


@pytest.mark.parametrize("field", ["quantity", "price"])
@pytest.mark.parametrize("text", ["1e999999999", "-1e999999999", "NaN", "Infinity"])
def test_an_absurd_order_is_refused_naming_the_field(field: str, text: str) -> None:
    values: Any = {"quantity": Decimal(1), "price": Decimal(100), field: Decimal(text)}
    with pytest.raises(ConfigError, match=field):
        Order("AAPL", Side.BUY, values["quantity"], values["price"])


@pytest.mark.parametrize("text", ["1e999999999", "-1e999999999"])
def test_an_absurd_cash_flow_is_refused_naming_the_field(text: str) -> None:
    breakers = TradingCircuitBreakers(FakeProvider())
    breakers.check_now()
    with pytest.raises(ConfigError, match="amount"):
        breakers.record_cash_flow(Decimal(text))


FINE_DIGITS = Order("AAPL", Side.BUY, Decimal("0.123456789123456789"), Decimal("100.123456789012345678"), "c-1")


def test_an_order_whose_value_has_many_decimal_places_passes_the_guard_as_it_passes_the_check() -> None:
    breakers = TradingCircuitBreakers(FakeProvider())
    breakers.check_now()
    assert breakers.check_order(FINE_DIGITS).accepted
    with breakers.trade_guard(FINE_DIGITS):  # the exact value has 36 decimal places: no ConfigError
        pass
    assert breakers.get_status().details["orders"]["pending_notional"] == FINE_DIGITS.notional()


def test_the_largest_order_is_a_concentration_refusal_in_the_guard_as_in_the_check() -> None:
    huge = Order("AAPL", Side.BUY, Decimal("9.99e14"), Decimal("9.99e14"))  # worth about 1e30
    breakers = TradingCircuitBreakers(FakeProvider())
    breakers.check_now()
    decision = breakers.check_order(huge)
    assert not decision.accepted
    assert decision.reason.value == "concentration"
    with pytest.raises(OrderRejected) as info, breakers.trade_guard(huge):
        pass
    assert info.value.decision.reason is decision.reason
    assert breakers.get_status().details["orders"]["pending_notional"] == 0
    assert "E+" in decision.message  # the share is shown, not a crash of the arithmetic
