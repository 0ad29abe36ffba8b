"""Order, OrderLimits, SymbolLimits and OrderDecision: validation, freezing, notional."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Dict

import pytest

from circuit_breakers import (
    ConfigError,
    ConfigTypeError,
    Order,
    OrderDecision,
    OrderLimits,
    OrderRejected,
    RejectReason,
    Side,
    SymbolLimits,
    TradingHalted,
)

from .order_fakes import D

# --- Order -----------------------------------------------------------------------------------------


def test_order_converts_ints_and_numeric_strs_exactly() -> None:
    the_order = Order("SPY", Side.BUY, 10, "512.30", "c-1")  # type: ignore[arg-type]
    assert the_order.quantity == D(10)
    assert isinstance(the_order.quantity, Decimal)
    assert the_order.price == D("512.30")
    assert isinstance(the_order.price, Decimal)
    assert the_order.client_order_id == "c-1"


def test_market_order_has_no_price() -> None:
    the_order = Order("SPY", Side.SELL, D(5))
    assert the_order.price is None
    assert the_order.client_order_id is None


@pytest.mark.parametrize(
    ("quantity", "error"),
    [
        (D(0), ConfigError),
        (D(-1), ConfigError),
        (0, ConfigError),
        (D("-0.01"), ConfigError),
        (10.0, ConfigTypeError),
        (1.5, ConfigTypeError),
        (D("NaN"), ConfigError),
        (D("Infinity"), ConfigError),
        ("ten", ConfigError),
        (True, ConfigTypeError),
        (None, ConfigTypeError),
    ],
)
def test_order_refuses_bad_quantity(quantity: Any, error: type) -> None:
    with pytest.raises(error, match="quantity"):
        Order("SPY", Side.BUY, quantity)


@pytest.mark.parametrize(
    ("price", "error"),
    [
        (D(0), ConfigError),
        (0, ConfigError),
        (D("-512.30"), ConfigError),
        (512.3, ConfigTypeError),
        (D("NaN"), ConfigError),
        (D("sNaN"), ConfigError),
        (D("-Infinity"), ConfigError),
        ("abc", ConfigError),
        (False, ConfigTypeError),
    ],
)
def test_order_refuses_bad_price(price: Any, error: type) -> None:
    with pytest.raises(error, match="price"):
        Order("SPY", Side.BUY, D(1), price)


def test_float_error_says_how_to_convert() -> None:
    with pytest.raises(ConfigTypeError, match=r"floats are not exact"):
        Order("SPY", Side.BUY, D(1), 100.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("symbol", ["", "   ", "\t"])
def test_order_refuses_empty_symbol(symbol: str) -> None:
    with pytest.raises(ConfigError, match="symbol"):
        Order(symbol, Side.BUY, D(1))


@pytest.mark.parametrize("side", ["buy", "BUY", 1, None, "sell"])
def test_order_refuses_side_that_is_not_a_side(side: Any) -> None:
    with pytest.raises(ConfigTypeError, match="side"):
        Order("SPY", side, D(1))


def test_order_refuses_empty_client_order_id() -> None:
    with pytest.raises(ConfigError, match="client_order_id"):
        Order("SPY", Side.BUY, D(1), D(100), "")


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"symbol": 5}, id="symbol-int"),
        pytest.param({"symbol": None}, id="symbol-none"),
        pytest.param({"client_order_id": 7}, id="client_order_id-int"),
    ],
)
def test_wrong_types_in_order_are_refused_naming_the_field(kwargs: Dict[str, Any]) -> None:
    fields: Dict[str, Any] = {"symbol": "SPY", "side": Side.BUY, "quantity": D(1), "client_order_id": None}
    fields.update(kwargs)
    name = next(iter(kwargs))
    with pytest.raises((ConfigError, ConfigTypeError), match=name):
        Order(**fields)


@pytest.mark.parametrize("kwargs", [{"symbol": 5}, {"client_order_id": 7}], ids=["symbol", "client_order_id"])
def test_wrong_types_in_order_raise_config_type_error(kwargs: Dict[str, Any]) -> None:
    fields: Dict[str, Any] = {"symbol": "SPY", "side": Side.BUY, "quantity": D(1), "client_order_id": None}
    fields.update(kwargs)
    with pytest.raises(ConfigTypeError):
        Order(**fields)


def test_order_is_frozen() -> None:
    the_order = Order("SPY", Side.BUY, D(10), D(100), "c-1")
    for name, value in (("quantity", D(1_000_000)), ("price", D(1)), ("symbol", "GME"), ("client_order_id", "x")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(the_order, name, value)
    assert the_order == Order("SPY", Side.BUY, D(10), D(100), "c-1")
    assert hash(the_order) == hash(Order("SPY", Side.BUY, D(10), D(100), "c-1"))


def test_limit_order_notional_is_quantity_times_price() -> None:
    assert Order("SPY", Side.BUY, D("10"), D("512.30")).notional() == D("5123.00")
    # a limit order ignores any reference price offered
    assert Order("SPY", Side.SELL, D("3"), D("0.01")).notional(D(1000)) == D("0.03")


def test_market_order_notional_uses_the_reference_price() -> None:
    market = Order("SPY", Side.BUY, D("3"))
    assert market.notional(D("1.5")) == D("4.5")
    with pytest.raises(ConfigError, match="reference price"):
        market.notional()


def test_fingerprint_is_symbol_side_quantity_price() -> None:
    first = Order("SPY", Side.BUY, D("10"), D("512.5"), "a")
    second = Order("SPY", Side.BUY, D("10.0"), D("512.50"), "b")
    assert first.fingerprint == second.fingerprint  # equal Decimals, any client id
    assert first.fingerprint != Order("SPY", Side.SELL, D("10"), D("512.5")).fingerprint


# --- OrderDecision ---------------------------------------------------------------------------------


def test_decision_truthiness() -> None:
    assert OrderDecision(True)
    assert OrderDecision(True).message == "accepted"
    refused = OrderDecision(False, RejectReason.MAX_QUANTITY, "too big")
    assert not refused


def test_order_rejected_is_trading_halted_carrying_the_decision() -> None:
    decision = OrderDecision(False, RejectReason.RESTRICTED, "XYZ is on the restricted list")
    error = OrderRejected(decision)
    assert isinstance(error, TradingHalted)
    assert error.decision is decision
    assert error.reasons == ("restricted: XYZ is on the restricted list",)
    assert "XYZ is on the restricted list" in str(error)


# --- SymbolLimits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max_notional", "max_quantity", "price_collar_pct"])
@pytest.mark.parametrize(
    ("value", "error"),
    [(D(0), ConfigError), (D(-5), ConfigError), (1.5, ConfigTypeError), (D("NaN"), ConfigError), ("x", ConfigError)],
)
def test_symbol_limits_validate_each_field(name: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=name):
        SymbolLimits(**{name: value})


def test_symbol_limits_convert_and_freeze() -> None:
    limits = SymbolLimits(max_quantity=100, price_collar_pct="2.5")  # type: ignore[arg-type]
    assert limits.max_quantity == D(100)
    assert limits.price_collar_pct == D("2.5")
    assert limits.max_notional is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_quantity = D(1)  # type: ignore[misc]


# --- OrderLimits -----------------------------------------------------------------------------------


def test_order_limits_default_to_every_check_off() -> None:
    limits = OrderLimits()
    assert limits.max_notional is None
    assert limits.max_quantity is None
    assert limits.price_collar_pct is None
    assert limits.duplicate_window_seconds is None
    assert limits.max_gross_exposure is None
    assert limits.max_messages_per_minute is None
    assert limits.restricted_symbols == frozenset()
    assert limits.per_symbol == {}
    assert limits.reducing_breakers == frozenset({"daily_loss", "volatility"})


@pytest.mark.parametrize("name", ["max_notional", "max_quantity", "price_collar_pct", "max_gross_exposure"])
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (D(0), ConfigError),
        (0, ConfigError),
        (D("-0.01"), ConfigError),
        (-100, ConfigError),
        (100.0, ConfigTypeError),
        (D("NaN"), ConfigError),
        (D("Infinity"), ConfigError),
        ("abc", ConfigError),
        (True, ConfigTypeError),
    ],
)
def test_order_limits_refuse_bad_money_limits(name: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=name):
        OrderLimits(**{name: value})


def test_order_limits_convert_money_limits_exactly() -> None:
    limits = OrderLimits(max_notional="100000.01", max_quantity=1000, max_gross_exposure=D("5e5"))  # type: ignore[arg-type]
    assert limits.max_notional == D("100000.01")
    assert limits.max_quantity == D(1000)
    assert limits.max_gross_exposure == D(500_000)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ConfigError),
        (-1, ConfigError),
        ("30", ConfigTypeError),
        (float("nan"), ConfigError),
        (True, ConfigTypeError),
    ],
)
def test_order_limits_refuse_bad_duplicate_window(value: Any, error: type) -> None:
    with pytest.raises(error, match="duplicate_window_seconds"):
        OrderLimits(duplicate_window_seconds=value)


def test_duplicate_window_accepts_fractional_seconds() -> None:
    assert OrderLimits(duplicate_window_seconds=0.5).duplicate_window_seconds == 0.5


@pytest.mark.parametrize(
    ("value", "error"), [(0, ConfigError), (-3, ConfigError), (50.0, ConfigTypeError), ("50", ConfigTypeError)]
)
def test_order_limits_refuse_bad_message_limit(value: Any, error: type) -> None:
    with pytest.raises(error, match="max_messages_per_minute"):
        OrderLimits(max_messages_per_minute=value)


@pytest.mark.parametrize("value", ["XYZ", 5, None, {5}, ["ok", None]])
def test_order_limits_refuse_bad_restricted_symbols(value: Any) -> None:
    with pytest.raises(ConfigTypeError, match="restricted_symbols"):
        OrderLimits(restricted_symbols=value)


@pytest.mark.parametrize("value", [{""}, {" SPY"}, {"SPY "}, {"\tSPY"}])
def test_order_limits_refuse_blank_or_padded_symbols(value: Any) -> None:
    with pytest.raises(ConfigError, match="restricted_symbols: a symbol must be non-empty, without surrounding"):
        OrderLimits(restricted_symbols=value)


@pytest.mark.parametrize("symbol", [" SPY", "SPY ", "SPY\n"])
def test_orders_refuse_padded_symbols(symbol: str) -> None:
    with pytest.raises(ConfigError, match="without surrounding whitespace"):
        Order(symbol, Side.BUY, Decimal(1), Decimal(1))
    with pytest.raises(ConfigError, match="per_symbol"):
        OrderLimits(per_symbol={symbol: SymbolLimits(max_quantity=Decimal(1))})


def test_collar_in_basis_points_is_the_exact_percent() -> None:
    limits = OrderLimits(price_collar_bps=Decimal(25), per_symbol={"SPY": SymbolLimits(price_collar_bps=7)})
    assert limits.price_collar_pct == Decimal("0.25")
    assert limits.price_collar_bps == Decimal(25)
    assert limits.for_symbol("SPY")[2] == Decimal("0.07")
    with pytest.raises(ConfigError, match="price_collar_pct or price_collar_bps, not both"):
        OrderLimits(price_collar_pct=Decimal(1), price_collar_bps=Decimal(100))
    with pytest.raises(ConfigTypeError, match="price_collar_bps"):
        SymbolLimits(price_collar_bps=0.5)  # type: ignore[arg-type]


def test_restricted_symbols_become_a_frozenset() -> None:
    limits = OrderLimits(restricted_symbols=["XYZ", "GME", "XYZ"])  # type: ignore[arg-type]
    assert limits.restricted_symbols == frozenset({"XYZ", "GME"})
    assert isinstance(limits.restricted_symbols, frozenset)


@pytest.mark.parametrize(
    "names",
    [{"max_drawdown"}, {"connection"}, {"daily_loss", "kill_switch"}, {"position_concentration"}, {"rate_limit"}],
)
def test_reducing_breakers_may_only_name_daily_loss_and_volatility(names: Any) -> None:
    with pytest.raises(ConfigError, match="reducing_breakers may only name daily_loss, volatility"):
        OrderLimits(reducing_breakers=names)


@pytest.mark.parametrize("value", ["daily_loss", 3, {5}])
def test_reducing_breakers_wrong_type(value: Any) -> None:
    with pytest.raises(ConfigTypeError, match="reducing_breakers"):
        OrderLimits(reducing_breakers=value)


@pytest.mark.parametrize("names", [set(), {"daily_loss"}, {"volatility"}, ["daily_loss", "volatility"]])
def test_reducing_breakers_subsets_are_allowed(names: Any) -> None:
    assert OrderLimits(reducing_breakers=names).reducing_breakers == frozenset(names)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([("TSLA", SymbolLimits())], id="list-of-pairs"),
        pytest.param({5: SymbolLimits()}, id="int-key"),
        pytest.param({"TSLA": {"max_quantity": D(1)}}, id="dict-value"),
        pytest.param({"TSLA": None}, id="none-value"),
        pytest.param({"TSLA": OrderLimits()}, id="order-limits-value"),
        pytest.param("TSLA", id="str"),
    ],
)
def test_per_symbol_wrong_types(value: Any) -> None:
    with pytest.raises(ConfigTypeError, match="per_symbol"):
        OrderLimits(per_symbol=value)


def test_for_symbol_applies_overrides_field_by_field() -> None:
    limits = OrderLimits(
        max_notional=D(100_000),
        max_quantity=D(1000),
        price_collar_pct=D(2),
        per_symbol={"TSLA": SymbolLimits(max_quantity=D(100)), "GME": SymbolLimits(price_collar_pct=D(10))},
    )
    assert limits.for_symbol("SPY") == (D(100_000), D(1000), D(2))
    assert limits.for_symbol("TSLA") == (D(100_000), D(100), D(2))
    assert limits.for_symbol("GME") == (D(100_000), D(1000), D(10))


def test_order_limits_are_frozen() -> None:
    limits = OrderLimits(max_quantity=D(10))
    for name, value in (
        ("max_quantity", D(1_000_000)),
        ("max_notional", D(1)),
        ("restricted_symbols", frozenset()),
        ("per_symbol", {}),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(limits, name, value)


def test_order_limits_copy_per_symbol_so_the_callers_dict_cannot_change_them() -> None:
    overrides = {"TSLA": SymbolLimits(max_quantity=D(100))}
    limits = OrderLimits(per_symbol=overrides)
    overrides["TSLA"] = SymbolLimits(max_quantity=D(1_000_000))
    overrides["GME"] = SymbolLimits(max_quantity=D(1))
    assert limits.for_symbol("TSLA")[1] == D(100)
    assert "GME" not in limits.per_symbol


def test_order_limits_per_symbol_cannot_be_mutated_after_validation() -> None:
    limits = OrderLimits(per_symbol={"TSLA": SymbolLimits(max_quantity=D(100))})
    with pytest.raises(TypeError):
        limits.per_symbol["TSLA"] = "junk"  # type: ignore[index]


def test_order_limits_are_hashable_and_compare_by_value() -> None:
    first = OrderLimits(max_quantity=D(10), per_symbol={"A": SymbolLimits(max_quantity=D(1))})
    second = OrderLimits(max_quantity="10", per_symbol={"A": SymbolLimits(max_quantity=1)})  # type: ignore[arg-type]
    assert first == second
    assert hash(first) == hash(second)
    assert first != OrderLimits(max_quantity=D(10))
