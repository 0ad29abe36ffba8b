"""The pre-trade gate's checks: each at its boundary, fail-closed reference prices, per-symbol limits, their order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuit_breakers import (
    ConfigError,
    ConfigTypeError,
    ManualClock,
    OrderLimits,
    OrderRejected,
    RejectReason,
    Side,
    SymbolLimits,
    TradingCircuitBreakers,
)

from .order_fakes import (
    D,
    Desk,
    R,
    assert_refused,
    both_ways,
    desk,
    make_breakers,
    order,
    submit,
)

__all__ = ["desk"]  # fixtures


# --- boundaries, table-driven ------------------------------------------------------------------------

Case = Tuple[Dict[str, Any], Dict[str, Any], Optional[RejectReason], Tuple[str, ...]]

BOUNDARIES: Dict[str, Case] = {
    # max_quantity
    "quantity-at-limit": ({"max_quantity": D(1000)}, {"quantity": "1000"}, None, ()),
    "quantity-a-cent-over": (
        {"max_quantity": D(1000)},
        {"quantity": "1000.01"},
        R.MAX_QUANTITY,
        ("quantity 1000.01", "limit 1000", "SPY"),
    ),
    "quantity-far-under": ({"max_quantity": D(1000)}, {"quantity": "0.01"}, None, ()),
    # max_notional: 1 x price
    "notional-at-limit": ({"max_notional": D(100_000)}, {"quantity": "1", "price": "100000"}, None, ()),
    "notional-a-cent-over": (
        {"max_notional": D(100_000)},
        {"quantity": "1", "price": "100000.01"},
        R.MAX_NOTIONAL,
        ("notional 100000.01", "limit 100000"),
    ),
    "notional-at-limit-qty-x-price": ({"max_notional": D(100_000)}, {"quantity": "1000", "price": "100"}, None, ()),
    "notional-over-qty-x-price": (
        {"max_notional": D(100_000)},
        {"quantity": "1000", "price": "100.01"},
        R.MAX_NOTIONAL,
        ("notional 100010", "limit 100000"),
    ),
    # market order: valued at the reference (100)
    "market-notional-at-limit": ({"max_notional": D(100_000)}, {"quantity": "1000", "price": None}, None, ()),
    "market-notional-over": (
        {"max_notional": D(100_000)},
        {"quantity": "1000.01", "price": None},
        R.MAX_NOTIONAL,
        ("notional 100001", "limit 100000"),
    ),
    # price collar around the reference 100
    "collar-exactly-above": ({"price_collar_pct": D(2)}, {"price": "102"}, None, ()),
    "collar-a-cent-above": (
        {"price_collar_pct": D(2)},
        {"price": "102.01"},
        R.PRICE_COLLAR,
        ("price 102.01", "2.01%", "reference 100", "collar 2%"),
    ),
    "collar-exactly-below": ({"price_collar_pct": D(2)}, {"price": "98"}, None, ()),
    "collar-a-cent-below": (
        {"price_collar_pct": D(2)},
        {"price": "97.99"},
        R.PRICE_COLLAR,
        ("price 97.99", "2.01%", "reference 100", "collar 2%"),
    ),
    "collar-at-reference": ({"price_collar_pct": D(2)}, {"price": "100"}, None, ()),
    "collar-market-order": ({"price_collar_pct": D(2)}, {"price": None}, None, ()),
    "collar-sell-a-cent-above": (
        {"price_collar_pct": D(2)},
        {"side": Side.SELL, "price": "102.01"},
        R.PRICE_COLLAR,
        ("price 102.01",),
    ),
    "collar-fractional-pct": ({"price_collar_pct": D("0.5")}, {"price": "100.5"}, None, ()),
    "collar-fractional-pct-over": (
        {"price_collar_pct": D("0.5")},
        {"price": "100.51"},
        R.PRICE_COLLAR,
        ("0.51%", "collar 0.5%"),
    ),
}


@pytest.mark.parametrize(("limits", "fields", "reason", "fragments"), BOUNDARIES.values(), ids=BOUNDARIES.keys())
def test_check_boundaries(
    desk: Desk,
    limits: Dict[str, Any],
    fields: Dict[str, Any],
    reason: Optional[RejectReason],
    fragments: Tuple[str, ...],
) -> None:
    decision = both_ways(lambda: make_breakers(desk, OrderLimits(**limits)), order(**fields))
    if reason is None:
        assert decision.accepted, decision
        assert decision.reason is None
        assert decision.message == "accepted"
    else:
        assert_refused(decision, reason, *fragments)


@pytest.mark.parametrize(
    ("price", "accepted"),
    [("522.546", True), ("522.556", False), ("502.054", True), ("502.044", False), ("522.547", False)],
)
def test_collar_on_an_uneven_reference(desk: Desk, price: str, accepted: bool) -> None:
    desk.reference = D("512.30")  # 2 % of it is 10.246
    decision = both_ways(lambda: make_breakers(desk, OrderLimits(price_collar_pct=D(2))), order(price=price))
    assert decision.accepted is accepted
    if not accepted:
        assert decision.reason is R.PRICE_COLLAR


def test_readme_collar_message(desk: Desk) -> None:
    desk.reference = D("512.30")
    breakers = make_breakers(desk, OrderLimits(price_collar_pct=D(2)))
    with pytest.raises(OrderRejected) as refused, breakers.trade_guard(order(price="600", client_order_id="c-2")):
        pass
    assert refused.value.decision.reason is R.PRICE_COLLAR
    assert refused.value.decision.message == "price 600 is 17.12% from reference 512.30 (collar 2%)"
    assert refused.value.reasons == ("price_collar: price 600 is 17.12% from reference 512.30 (collar 2%)",)


def test_no_limits_accept_anything_with_a_price(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits())
    assert breakers.check_order(order(quantity="1000000", price="0.0001")).accepted
    assert submit(breakers, order(quantity="5", price="123456.78")).accepted


def test_limit_order_without_collar_needs_no_reference_price() -> None:
    desk = Desk(without=["get_reference_price"])
    breakers = make_breakers(desk, OrderLimits(max_notional=D(10_000)))
    assert breakers.check_order(order()).accepted
    assert submit(breakers, order()).accepted


def test_limit_order_without_collar_does_not_ask_for_a_reference(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(max_notional=D(10_000)))
    breakers.check_order(order())
    assert desk.reference_calls == 0
    breakers.check_order(order(price=None))
    assert desk.reference_calls == 1


# --- reference price: fail closed ------------------------------------------------------------------------

BAD_REFERENCES: Dict[str, Any] = {
    "raises": RuntimeError("quote feed down"),
    "connection-error": ConnectionError("no route"),
    "none": None,
    "float": 100.0,
    "str": "100",
    "nan": D("NaN"),
    "infinity": D("Infinity"),
    "bool": True,
    "list": [D(100)],
}


@pytest.mark.parametrize("kind", ["collared-limit", "market-no-collar", "market-collared"])
@pytest.mark.parametrize("garbage", BAD_REFERENCES.values(), ids=BAD_REFERENCES.keys())
def test_bad_reference_price_refuses_with_no_reference_price(desk: Desk, kind: str, garbage: Any) -> None:
    desk.reference = garbage
    limits = OrderLimits() if kind == "market-no-collar" else OrderLimits(price_collar_pct=D(2))
    the_order = order(price=None if kind.startswith("market") else "100")
    decision = both_ways(lambda: make_breakers(desk, limits), the_order)
    what = "market order" if kind.startswith("market") else "price collar"
    assert_refused(decision, R.NO_REFERENCE_PRICE, f"{what} needs a reference price", "get_reference_price")


@pytest.mark.parametrize("kind", ["collared-limit", "market-no-collar"])
def test_missing_reference_method_refuses_with_no_reference_price(kind: str) -> None:
    desk = Desk(without=["get_reference_price"])
    limits = OrderLimits() if kind == "market-no-collar" else OrderLimits(price_collar_pct=D(2))
    the_order = order(price=None if kind == "market-no-collar" else "100")
    decision = both_ways(lambda: make_breakers(desk, limits), the_order)
    assert_refused(decision, R.NO_REFERENCE_PRICE, "provider has no get_reference_price()")


def test_int_reference_price_is_accepted(desk: Desk) -> None:
    desk.reference = 100
    assert both_ways(lambda: make_breakers(desk, OrderLimits(price_collar_pct=D(2))), order(price="102")).accepted


def test_zero_reference_price_with_collar_is_refused_not_raised(desk: Desk) -> None:
    desk.reference = D(0)
    decision = make_breakers(desk, OrderLimits(price_collar_pct=D(2))).check_order(order(price="100"))
    assert_refused(decision, R.NO_REFERENCE_PRICE)


@pytest.mark.parametrize("reference", [D(0), D(-100)], ids=["zero", "negative"])
def test_non_positive_reference_price_fails_closed_for_market_orders(desk: Desk, reference: Decimal) -> None:
    desk.reference = reference
    breakers = make_breakers(desk, OrderLimits(max_notional=D(1000)))
    assert_refused(breakers.check_order(order(quantity="5000", price=None)), R.NO_REFERENCE_PRICE)


def test_negative_reference_price_fails_closed_for_the_collar(desk: Desk) -> None:
    desk.reference = D(-100)
    breakers = make_breakers(desk, OrderLimits(price_collar_pct=D(2)))
    decision = breakers.check_order(order(price="100000"))
    assert not decision.accepted
    assert decision.reason is R.NO_REFERENCE_PRICE


# --- restricted list -------------------------------------------------------------------------------------


def test_configured_restricted_symbol_is_refused(desk: Desk) -> None:
    limits = OrderLimits(restricted_symbols={"XYZ"})
    decision = both_ways(lambda: make_breakers(desk, limits), order(symbol="XYZ"))
    assert_refused(decision, R.RESTRICTED, "XYZ is on the restricted list")
    assert both_ways(lambda: make_breakers(desk, limits), order(symbol="SPY")).accepted


def test_restrict_and_unrestrict_at_run_time(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(restricted_symbols={"XYZ"}))
    assert submit(breakers, order(symbol="GME", quantity="1")).accepted
    breakers.restrict("GME", "AMC")
    assert_refused(submit(breakers, order(symbol="GME", quantity="2")), R.RESTRICTED, "GME")
    assert breakers.check_order(order(symbol="AMC")).reason is R.RESTRICTED
    assert breakers.get_status().details["orders"]["restricted_symbols"] == ["AMC", "GME", "XYZ"]
    breakers.unrestrict("XYZ", "GME", "NOT-THERE")
    assert submit(breakers, order(symbol="XYZ", quantity="3")).accepted
    assert submit(breakers, order(symbol="GME", quantity="4")).accepted
    assert breakers.check_order(order(symbol="AMC")).reason is R.RESTRICTED
    assert breakers.get_status().details["orders"]["restricted_symbols"] == ["AMC"]


def test_restricted_beats_every_later_check(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(max_quantity=D(1), restricted_symbols={"XYZ"}))
    assert breakers.check_order(order(symbol="XYZ", quantity="1000")).reason is R.RESTRICTED


@pytest.mark.parametrize("bad", ["", 5, None])
def test_restrict_refuses_bad_symbols(desk: Desk, bad: Any) -> None:
    breakers = make_breakers(desk, OrderLimits())
    with pytest.raises((ConfigError, ConfigTypeError)):
        breakers.restrict("OK", bad)
    assert breakers.get_status().details["orders"]["restricted_symbols"] == []  # nothing added
    with pytest.raises((ConfigError, ConfigTypeError)):
        breakers.unrestrict(bad)


def test_restricted_list_ignores_case_and_a_basis_point_collar_refuses() -> None:
    breakers = make_breakers(Desk(), OrderLimits(restricted_symbols=frozenset({"GME"}), price_collar_bps=D(50)))
    assert_refused(breakers.check_order(order(symbol="gme")), R.RESTRICTED, "gme is on the restricted list")
    breakers.unrestrict("Gme")
    assert breakers.check_order(order(symbol="gme", price="100.5")).accepted  # 50 bps from 100: inside
    assert_refused(breakers.check_order(order(symbol="gme", price="100.51")), R.PRICE_COLLAR, "(collar 0.5%)")


# --- concentration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "fields", "accepted", "fragments"),
    [
        (D(15), {"quantity": "500", "price": "100"}, True, ()),  # 15 % + 5 % = 20 %: at the limit
        (D(15), {"quantity": "1", "price": "50000.01"}, False, ("position 20.00%", "limit 20.00%")),
        (D(15), {"quantity": "1000", "price": "100"}, False, ("SPY: position 25.00% > limit 20.00%",)),
        (D(0), {"side": Side.SELL, "quantity": "2000", "price": "100"}, True, ()),  # short 20 %
        (D(0), {"side": Side.SELL, "quantity": "2001", "price": "100"}, False, ("position -20.01%",)),
        (D(15), {"quantity": "500", "price": None}, True, ()),  # market: valued at the reference
        (D(15), {"quantity": "501", "price": None}, False, ("position 20.01%",)),
    ],
)
def test_concentration_boundaries(
    current: Decimal, fields: Dict[str, Any], accepted: bool, fragments: Tuple[str, ...]
) -> None:
    desk = Desk(total_value=D(1_000_000), concentration=current)
    decision = both_ways(lambda: make_breakers(desk, OrderLimits()), order(**fields))
    if accepted:
        assert decision.accepted, decision
    else:
        assert_refused(decision, R.CONCENTRATION, *fragments)


@pytest.mark.parametrize("total", [D(0), D(-5)])
def test_concentration_fails_closed_on_non_positive_total_value(total: Decimal) -> None:
    desk = Desk(total_value=total)
    decision = make_breakers(desk, OrderLimits()).check_order(order(quantity="1", price="1"))
    assert_refused(decision, R.CONCENTRATION, f"total value {total} <= 0")


def test_concentration_fails_closed_when_the_provider_raises(desk: Desk) -> None:
    desk.concentration = RuntimeError("positions unavailable")
    decision = make_breakers(desk, OrderLimits()).check_order(order())
    assert_refused(decision, R.CONCENTRATION, "provider failed", "positions unavailable")


def test_concentration_uses_the_trading_config_limit() -> None:
    desk = Desk(total_value=D(1_000_000), concentration=D(5))
    breakers = make_breakers(desk, OrderLimits(), max_position_pct=D(6), position_warning_pct=D(3))
    assert breakers.check_order(order(quantity="100", price="100")).accepted  # 6 %
    assert_refused(breakers.check_order(order(quantity="101", price="100")), R.CONCENTRATION, "limit 6.00%")


def test_check_order_only_looks_while_trade_guard_warns() -> None:
    desk = Desk(concentration=D(16))  # above the 15 % warning level, under the 20 % limit
    breakers = make_breakers(desk)
    warnings: list = []
    breakers.register_warning_callback(lambda name, message: warnings.append((name, message)))
    assert breakers.check_order(order()).accepted
    assert warnings == []  # a look fires no warning and leaves the status alone
    assert breakers.get_status().details["position_concentration"]["state"] == "ok"
    assert submit(breakers, order()).accepted
    assert [name for name, _ in warnings] == ["position_concentration"]
    assert breakers.get_status().details["position_concentration"]["state"] == "warning"


# --- per-symbol overrides ---------------------------------------------------------------------------------


def per_symbol_limits() -> OrderLimits:
    return OrderLimits(
        max_notional=D(100_000),
        max_quantity=D(1000),
        price_collar_pct=D(2),
        per_symbol={
            "TSLA": SymbolLimits(max_quantity=D(100)),
            "GME": SymbolLimits(price_collar_pct=D(10), max_notional=D(5000)),
            "BRK": SymbolLimits(max_notional=D(1_000_000), max_quantity=D(5000)),
        },
    )


@pytest.mark.parametrize(
    ("fields", "reason", "fragments"),
    [
        ({"symbol": "TSLA", "quantity": "100"}, None, ()),
        ({"symbol": "TSLA", "quantity": "100.01"}, R.MAX_QUANTITY, ("quantity 100.01", "limit 100", "TSLA")),
        ({"symbol": "SPY", "quantity": "100.01"}, None, ()),
        ({"symbol": "TSLA", "quantity": "1", "price": "102.01"}, R.PRICE_COLLAR, ("collar 2%",)),  # desk collar
        ({"symbol": "GME", "quantity": "1", "price": "110"}, None, ()),
        ({"symbol": "GME", "quantity": "1", "price": "110.01"}, R.PRICE_COLLAR, ("collar 10%",)),
        ({"symbol": "GME", "quantity": "50", "price": "100"}, None, ()),
        ({"symbol": "GME", "quantity": "50.01", "price": "100"}, R.MAX_NOTIONAL, ("notional 5001", "limit 5000")),
        ({"symbol": "GME", "quantity": "1001"}, R.MAX_QUANTITY, ("limit 1000",)),  # desk size limit
        ({"symbol": "BRK", "quantity": "5000", "price": "100"}, None, ()),  # 500 000: above the desk limit
        ({"symbol": "BRK", "quantity": "5000.01"}, R.MAX_QUANTITY, ("limit 5000",)),
        ({"symbol": "SPY", "quantity": "1000", "price": "100.01"}, R.MAX_NOTIONAL, ("limit 100000",)),
    ],
)
def test_per_symbol_overrides(
    desk: Desk, fields: Dict[str, Any], reason: Optional[RejectReason], fragments: Tuple[str, ...]
) -> None:
    limits = per_symbol_limits()
    decision = both_ways(lambda: make_breakers(desk, limits), order(**fields))
    if reason is None:
        assert decision.accepted, decision
    else:
        assert_refused(decision, reason, *fragments)


# --- the order of the checks -------------------------------------------------------------------------------


def ordering_breakers(desk: Desk, clock: ManualClock) -> TradingCircuitBreakers:
    limits = OrderLimits(
        max_quantity=D(1000),
        max_notional=D(100_000),
        price_collar_pct=D(2),
        duplicate_window_seconds=30,
        restricted_symbols={"XYZ"},
        max_gross_exposure=D(1_000_000),
        max_messages_per_minute=3,
    )
    return make_breakers(desk, limits, clock=clock, max_orders_per_minute=2)


def test_halted_comes_first(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    breakers.engage_kill_switch("test")
    desk.reference = RuntimeError("no quote")
    decision = breakers.check_order(order(symbol="XYZ", quantity="5000"))
    assert_refused(decision, R.TRADING_HALTED, "max_drawdown", "kill switch engaged: test")


def test_restricted_before_size(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    assert breakers.check_order(order(symbol="XYZ", quantity="5000", price="500")).reason is R.RESTRICTED


def test_size_before_reference(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    desk.reference = RuntimeError("no quote")
    assert breakers.check_order(order(quantity="5000")).reason is R.MAX_QUANTITY


def test_collar_before_notional(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    assert breakers.check_order(order(quantity="1000", price="150")).reason is R.PRICE_COLLAR


def test_duplicate_before_exposure(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    assert submit(breakers, order(client_order_id="a")).accepted
    desk.gross_exposure = D(10**9)
    assert breakers.check_order(order(client_order_id="b")).reason is R.DUPLICATE
    assert breakers.check_order(order(quantity="11", client_order_id="b")).reason is R.EXPOSURE


def test_exposure_before_concentration(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    desk.gross_exposure = D(10**9)
    desk.concentration = D(99)
    assert breakers.check_order(order(client_order_id="a")).reason is R.EXPOSURE
    desk.gross_exposure = D(0)
    assert breakers.check_order(order(client_order_id="a")).reason is R.CONCENTRATION


def test_concentration_before_rate(desk: Desk, clock: ManualClock) -> None:
    breakers = ordering_breakers(desk, clock)
    assert submit(breakers, order(quantity="1", client_order_id="a")).accepted
    assert submit(breakers, order(quantity="2", client_order_id="b")).accepted
    desk.concentration = D(99)
    assert breakers.check_order(order(quantity="3", client_order_id="c")).reason is R.CONCENTRATION
    desk.concentration = D(0)
    assert breakers.check_order(order(quantity="3", client_order_id="c")).reason is R.RATE_LIMIT


# --- properties --------------------------------------------------------------------------------------------

cents = st.integers(min_value=1, max_value=10**9).map(lambda n: D(n) / 100)
collars = st.integers(min_value=1, max_value=5000).map(lambda n: D(n) / 100)  # 0.01 % .. 50 %


@settings(max_examples=60, deadline=None)
@given(reference=cents, collar=collars)
def test_collar_edges_property(reference: Decimal, collar: Decimal) -> None:
    desk = Desk(total_value=D(10) ** 15)
    desk.reference = reference
    breakers = make_breakers(desk, OrderLimits(price_collar_pct=collar))
    band = reference * collar / 100
    for edge, beyond in (
        (reference + band, reference + band + D("0.01")),
        (reference - band, reference - band - D("0.01")),
    ):
        assert breakers.check_order(order(quantity="1", price=edge)).accepted
        if beyond > 0:
            decision = breakers.check_order(order(quantity="1", price=beyond))
            assert decision.reason is R.PRICE_COLLAR, (reference, collar, beyond, decision)
