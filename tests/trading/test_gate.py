"""The pre-trade gate: every check at its boundary, reason codes and messages, recording and atomicity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Dict, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuit_breakers import (
    ConfigError,
    ConfigTypeError,
    ManualClock,
    Order,
    OrderDecision,
    OrderLimits,
    OrderRejected,
    RejectReason,
    Side,
    SymbolLimits,
    TradingCircuitBreakers,
    TradingHalted,
    TradingState,
    UnknownOrderError,
)

from .order_fakes import (
    START,
    D,
    Desk,
    make_breakers,
    messages_in_window,
    order,
    pending_notional,
    snapshot,
    submit,
)

KEY = "gate-tests-reset-key-7Hq"
R = RejectReason


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def desk() -> Desk:
    return Desk(total_value=D(10_000_000))


def both_ways(make: Callable[[], TradingCircuitBreakers], the_order: Order) -> OrderDecision:
    """The decision of check_order on one fresh breakers and of trade_guard on another; they must agree."""
    looked = make().check_order(the_order)
    sent = submit(make(), the_order)
    assert (looked.accepted, looked.reason, looked.message) == (sent.accepted, sent.reason, sent.message)
    return looked


def assert_refused(decision: OrderDecision, reason: RejectReason, *fragments: str) -> None:
    assert not decision.accepted, decision
    assert decision.reason is reason, decision
    for fragment in fragments:
        assert fragment in decision.message, (fragment, decision.message)


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


# --- duplicates ------------------------------------------------------------------------------------------


def test_duplicate_within_the_window_is_refused_and_accepted_at_its_end(desk: Desk, clock: ManualClock) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30), clock=clock)
    assert submit(breakers, order()).accepted
    clock.advance(29.999)
    decision = submit(breakers, order())
    assert_refused(decision, R.DUPLICATE, "same buy 10 SPY @ 100", "window 30s")
    assert breakers.check_order(order()).reason is R.DUPLICATE
    clock.advance(0.001)  # exactly the window: no longer a duplicate
    assert breakers.check_order(order()).accepted
    assert submit(breakers, order()).accepted
    assert submit(breakers, order()).reason is R.DUPLICATE  # remembered again from the second send
    clock.advance(45)
    assert submit(breakers, order()).accepted


def test_duplicate_window_restarts_from_the_last_accepted_send(desk: Desk, clock: ManualClock) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30), clock=clock)
    assert submit(breakers, order()).accepted
    clock.advance(20)
    assert submit(breakers, order()).reason is R.DUPLICATE  # refused: does not restart the window
    clock.advance(10)
    assert submit(breakers, order()).accepted


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": "QQQ"},
        {"side": Side.SELL},
        {"quantity": "10.01"},
        {"quantity": "9"},
        {"price": "100.01"},
        {"price": None},
    ],
    ids=["symbol", "side", "quantity-up", "quantity-down", "price", "market"],
)
def test_orders_differing_in_any_field_are_not_duplicates(desk: Desk, change: Dict[str, Any]) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30))
    assert submit(breakers, order()).accepted
    assert submit(breakers, order(**change)).accepted
    # ... and each is remembered on its own
    assert submit(breakers, order(**change)).reason is R.DUPLICATE
    assert submit(breakers, order()).reason is R.DUPLICATE


def test_equal_decimals_are_duplicates_and_client_ids_do_not_matter(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30))
    assert submit(breakers, order(quantity="10", price="100.5", client_order_id="a")).accepted
    decision = submit(breakers, order(quantity="10.00", price="100.50", client_order_id="b"))
    assert_refused(decision, R.DUPLICATE)


def test_market_order_duplicate_message(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30))
    assert submit(breakers, order(price=None)).accepted
    assert_refused(submit(breakers, order(price=None)), R.DUPLICATE, "@ market", "window 30s")


def test_without_a_window_the_same_order_may_repeat(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits())
    for _ in range(5):
        assert submit(breakers, order()).accepted
    assert snapshot(breakers)["remembered_orders"] == 0


def test_check_order_does_not_remember_duplicates(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30))
    for _ in range(3):
        assert breakers.check_order(order()).accepted
    assert submit(breakers, order()).accepted
    assert breakers.check_order(order()).reason is R.DUPLICATE


@pytest.mark.parametrize("window", [None, 30], ids=["no-window", "window"])
def test_pending_client_order_id_reused_is_duplicate(desk: Desk, window: Optional[int]) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=window))
    assert submit(breakers, order(client_order_id="c-1")).accepted
    other = order(symbol="QQQ", side=Side.SELL, quantity="3", price="99", client_order_id="c-1")
    assert_refused(submit(breakers, other), R.DUPLICATE, "client_order_id c-1 is pending")
    assert breakers.check_order(other).reason is R.DUPLICATE
    assert breakers.order_filled("c-1", D(10)) == D(0)
    assert submit(breakers, other).accepted  # no longer pending: the id may be used again


def test_cancelled_client_order_id_may_be_reused(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits())
    assert submit(breakers, order(client_order_id="c-1")).accepted
    breakers.order_cancelled("c-1")
    assert submit(breakers, order(client_order_id="c-1")).accepted


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


# --- gross exposure ---------------------------------------------------------------------------------------


def exposure_breakers(desk: Desk) -> TradingCircuitBreakers:
    desk.gross_exposure = D(250_000)
    return make_breakers(desk, OrderLimits(max_gross_exposure=D(500_000)))


def test_exposure_counts_current_plus_pending_plus_order(desk: Desk) -> None:
    breakers = exposure_breakers(desk)
    assert submit(breakers, order(quantity="2000", price="100", client_order_id="a")).accepted
    assert pending_notional(breakers) == D(200_000)
    # 250 000 + 200 000 + 50 000 = exactly the limit
    assert breakers.check_order(order(quantity="500", price="100", client_order_id="b")).accepted
    assert submit(breakers, order(quantity="500", price="100", client_order_id="b")).accepted
    assert pending_notional(breakers) == D(250_000)
    decision = submit(breakers, order(quantity="1", price="0.01", client_order_id="c"))
    assert_refused(
        decision,
        R.EXPOSURE,
        "gross exposure 250000",
        "pending 250000",
        "order 0.01",
        "= 500000.01",
        "limit 500000",
    )
    assert breakers.check_order(order(quantity="1", price="0.01", client_order_id="c")).reason is R.EXPOSURE
    assert pending_notional(breakers) == D(250_000)


def test_exposure_a_cent_over_with_nothing_pending(desk: Desk) -> None:
    limits = OrderLimits(max_gross_exposure=D(500_000))
    desk.gross_exposure = D("499999.99")

    def make() -> TradingCircuitBreakers:
        return make_breakers(desk, limits)

    assert both_ways(make, order(quantity="1", price="0.01", client_order_id="a")).accepted
    decision = both_ways(make, order(quantity="1", price="0.02", client_order_id="a"))
    assert_refused(decision, R.EXPOSURE, "500000.01 > limit 500000")


def test_partial_fill_releases_its_share(desk: Desk) -> None:
    breakers = exposure_breakers(desk)
    assert submit(breakers, order(quantity="2500", price="100", client_order_id="a")).accepted
    assert breakers.check_order(order(quantity="1", price="0.01", client_order_id="b")).reason is R.EXPOSURE
    assert breakers.order_filled("a", D(1000)) == D(1500)
    assert pending_notional(breakers) == D(150_000)
    assert breakers.order_filled("a", D("0.5")) == D("1499.5")
    assert pending_notional(breakers) == D(149_950)
    # now 250 000 + 149 950 + 100 050 = the limit exactly
    assert submit(breakers, order(quantity="1", price="100050", client_order_id="b")).accepted
    assert breakers.check_order(order(quantity="1", price="0.01", client_order_id="c")).reason is R.EXPOSURE
    assert breakers.order_filled("a", D("1499.5")) == D(0)
    assert pending_notional(breakers) == D(100_050)
    assert breakers.get_status().details["orders"]["pending_orders"] == 1


def test_cancel_releases_everything_pending(desk: Desk) -> None:
    breakers = exposure_breakers(desk)
    assert submit(breakers, order(quantity="2500", price="100", client_order_id="a")).accepted
    breakers.order_filled("a", D(500))
    breakers.order_cancelled("a")
    assert pending_notional(breakers) == D(0)
    assert breakers.get_status().details["orders"]["pending_orders"] == 0
    assert submit(breakers, order(quantity="2500", price="100", client_order_id="b")).accepted


def test_market_order_pending_is_valued_at_the_reference(desk: Desk) -> None:
    desk.references["QQQ"] = D("250.5")
    breakers = exposure_breakers(desk)
    assert submit(breakers, order(symbol="QQQ", quantity="100", price=None, client_order_id="m")).accepted
    assert pending_notional(breakers) == D(25_050)
    desk.references["QQQ"] = D(1)  # a later quote does not revalue what is pending
    assert pending_notional(breakers) == D(25_050)


def test_unknown_ids_raise_unknown_order_error(desk: Desk) -> None:
    breakers = exposure_breakers(desk)
    with pytest.raises(UnknownOrderError, match="nope") as info:
        breakers.order_filled("nope", D(1))
    assert isinstance(info.value, KeyError)
    assert info.value.client_order_id == "nope"
    with pytest.raises(KeyError):
        breakers.order_cancelled("nope")
    assert submit(breakers, order(client_order_id="a")).accepted
    breakers.order_cancelled("a")
    with pytest.raises(UnknownOrderError):
        breakers.order_cancelled("a")  # twice
    with pytest.raises(UnknownOrderError):
        breakers.order_filled("a", D(1))


@pytest.mark.parametrize(
    ("quantity", "error"),
    [(D("10.01"), ConfigError), (D(0), ConfigError), (D(-1), ConfigError), (1.0, ConfigTypeError)],
)
def test_bad_fill_quantities_change_nothing(desk: Desk, quantity: Any, error: type) -> None:
    breakers = exposure_breakers(desk)
    assert submit(breakers, order(quantity="10", price="100", client_order_id="a")).accepted
    with pytest.raises(error):
        breakers.order_filled("a", quantity)
    assert pending_notional(breakers) == D(1000)
    assert breakers.order_filled("a", D(10)) == D(0)


def test_overfill_error_names_what_is_pending(desk: Desk) -> None:
    breakers = exposure_breakers(desk)
    assert submit(breakers, order(quantity="10", price="100", client_order_id="a")).accepted
    breakers.order_filled("a", D(4))
    with pytest.raises(ConfigError, match=r"\(0, 6\]"):
        breakers.order_filled("a", D(7))


def test_fills_are_accepted_without_an_exposure_limit(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits())
    assert submit(breakers, order(client_order_id="a")).accepted
    assert pending_notional(breakers) == D(1000)
    assert breakers.order_filled("a", 10) == D(0)  # type: ignore[arg-type]


def test_exposure_needs_the_provider_method() -> None:
    desk = Desk(without=["get_gross_exposure"])
    limits = OrderLimits(max_gross_exposure=D(10**9))
    decision = both_ways(lambda: make_breakers(desk, limits), order(client_order_id="a"))
    assert_refused(decision, R.EXPOSURE, "gross exposure unknown", "provider has no get_gross_exposure()")


@pytest.mark.parametrize(
    "garbage", [RuntimeError("risk db down"), None, 1.5, "0", D("NaN")], ids=["raises", "none", "float", "str", "nan"]
)
def test_exposure_fails_closed_on_a_bad_answer(desk: Desk, garbage: Any) -> None:
    desk.gross_exposure = garbage
    limits = OrderLimits(max_gross_exposure=D(10**9))
    decision = both_ways(lambda: make_breakers(desk, limits), order(client_order_id="a"))
    assert_refused(decision, R.EXPOSURE, "gross exposure unknown", "get_gross_exposure")


def test_negative_gross_exposure_fails_closed(desk: Desk) -> None:
    desk.gross_exposure = D(-1_000_000)
    breakers = make_breakers(desk, OrderLimits(max_gross_exposure=D(100_000)))
    assert_refused(breakers.check_order(order(quantity="1000", price="1000", client_order_id="a")), R.EXPOSURE)


def test_trade_guard_needs_a_client_order_id_with_an_exposure_limit(desk: Desk) -> None:
    breakers = exposure_breakers(desk)
    before = snapshot(breakers)
    with pytest.raises(ConfigError, match="client_order_id"), breakers.trade_guard(order()):
        pytest.fail("the block must not run")
    assert snapshot(breakers) == before
    assert breakers.check_order(order()).accepted  # looking needs no id
    connection = breakers.manager.get_circuit_breaker("connection")
    assert connection is not None
    assert connection.get_status()["state"] == "closed"


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


# --- order rate -------------------------------------------------------------------------------------------


def test_order_rate_limit(desk: Desk, clock: ManualClock) -> None:
    breakers = make_breakers(desk, OrderLimits(), clock=clock, max_orders_per_minute=3, max_orders_per_hour=5)
    for number in range(3):
        assert submit(breakers, order(quantity=str(number + 1))).accepted
    assert breakers.get_status().orders_last_minute == 3
    decision = submit(breakers, order(quantity="9"))
    assert_refused(decision, R.RATE_LIMIT, "order rate limit reached", "next slot in 60.0s")
    assert breakers.check_order(order(quantity="9")).reason is R.RATE_LIMIT
    assert breakers.get_status().orders_last_minute == 3
    clock.advance(59.999)
    assert submit(breakers, order(quantity="9")).reason is R.RATE_LIMIT
    clock.advance(0.001)
    assert breakers.check_order(order(quantity="9")).accepted
    assert submit(breakers, order(quantity="9")).accepted
    assert submit(breakers, order(quantity="8")).accepted
    # the hourly limit (5) now binds
    assert_refused(submit(breakers, order(quantity="7")), R.RATE_LIMIT, "order rate limit reached")
    status = breakers.get_status()
    assert (status.orders_last_minute, status.orders_last_hour) == (2, 5)


def test_check_order_never_consumes_a_rate_permit(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(), max_orders_per_minute=2)
    for _ in range(100):
        assert breakers.check_order(order()).accepted
    assert breakers.get_status().orders_last_minute == 0
    assert submit(breakers, order(quantity="1")).accepted
    assert submit(breakers, order(quantity="2")).accepted
    assert breakers.check_order(order()).reason is R.RATE_LIMIT


def test_order_permits_are_shared_with_record_order(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(), max_orders_per_minute=2)
    assert breakers.record_order()
    assert submit(breakers, order()).accepted
    assert not breakers.record_order()
    assert submit(breakers, order(quantity="1")).reason is R.RATE_LIMIT


# --- message rate -----------------------------------------------------------------------------------------


def test_cancels_modifies_and_orders_share_the_message_limit(desk: Desk, clock: ManualClock) -> None:
    breakers = make_breakers(desk, OrderLimits(max_messages_per_minute=4), clock=clock, max_orders_per_minute=50)
    assert breakers.record_cancel()
    assert breakers.record_modify()
    assert submit(breakers, order(quantity="1")).accepted
    assert messages_in_window(breakers) == 3
    assert breakers.record_cancel()
    assert messages_in_window(breakers) == 4
    assert not breakers.record_cancel()
    assert not breakers.record_modify()
    assert messages_in_window(breakers) == 4  # refused messages are not counted
    decision = submit(breakers, order(quantity="2"))
    assert_refused(decision, R.MESSAGE_RATE, "message rate limit reached", "next slot in 60.0s")
    assert breakers.check_order(order(quantity="2")).reason is R.MESSAGE_RATE
    assert breakers.get_status().orders_last_minute == 1  # the refused order took no order permit
    clock.advance(60)
    assert submit(breakers, order(quantity="2")).accepted
    assert breakers.record_modify()


def test_without_a_message_limit_cancels_are_always_counted_as_true(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits())
    assert all(breakers.record_cancel() for _ in range(1000))
    assert all(breakers.record_modify() for _ in range(1000))
    assert "messages" not in breakers.get_status().details["orders"]
    assert submit(breakers, order()).accepted


def test_message_refusal_does_not_consume_an_order_permit(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(max_messages_per_minute=3), max_orders_per_minute=2)
    for _ in range(3):
        assert breakers.record_cancel()
    for number in range(5):
        assert submit(breakers, order(quantity=str(number + 1))).reason is R.MESSAGE_RATE
    assert breakers.get_status().orders_last_minute == 0
    assert breakers.record_order()
    assert breakers.record_order()  # both order permits were still free


def test_order_rate_refusal_does_not_consume_a_message(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(max_messages_per_minute=10), max_orders_per_minute=2)
    assert submit(breakers, order(quantity="1")).accepted
    assert submit(breakers, order(quantity="2")).accepted
    for number in range(5):
        assert submit(breakers, order(quantity=str(number + 3))).reason is R.RATE_LIMIT
    assert messages_in_window(breakers) == 2
    assert [breakers.record_cancel() for _ in range(9)] == [True] * 8 + [False]


def test_order_rate_is_reported_before_message_rate(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(max_messages_per_minute=2), max_orders_per_minute=2)
    assert submit(breakers, order(quantity="1")).accepted
    assert submit(breakers, order(quantity="2")).accepted
    assert submit(breakers, order(quantity="3")).reason is R.RATE_LIMIT
    assert breakers.check_order(order(quantity="3")).reason is R.RATE_LIMIT


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


# --- atomicity: a refused order records nothing ------------------------------------------------------------

Scenario = Callable[[TradingCircuitBreakers, Desk, ManualClock], Tuple[Order, Optional[Callable[[], None]]]]


def _halted(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    breakers.engage_kill_switch("atomicity test")
    return order("QQQ", client_order_id="x"), lambda: breakers.reset_kill_switch(KEY)


def _reduce_only(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    desk.daily_pnl_pct = D(-3)
    breakers.check_now()
    assert breakers.trading_state is TradingState.REDUCING

    def fix() -> None:
        desk.position = D(-1000)  # a short: the buy now reduces it

    return order("QQQ", client_order_id="x"), fix


def _restricted(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    breakers.restrict("QQQ")
    return order("QQQ", client_order_id="x"), lambda: breakers.unrestrict("QQQ")


def _max_quantity(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    return order("TSLA", quantity="101", client_order_id="x"), None


def _no_reference(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    desk.references["QQQ"] = RuntimeError("no quote")
    return order("QQQ", client_order_id="x"), lambda: desk.references.pop("QQQ")


def _collar(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    desk.references["QQQ"] = D(110)
    return order("QQQ", client_order_id="x"), lambda: desk.references.pop("QQQ")


def _notional(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    desk.references["QQQ"] = D(300)  # a market order for 1000 is then worth 300 000

    def fix() -> None:
        desk.references["QQQ"] = D(100)

    return order("QQQ", quantity="1000", price=None, client_order_id="x"), fix


def _duplicate(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    return order("SPY", client_order_id="x"), lambda: clock.advance(300)


def _exposure(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    desk.gross_exposure = D(4_998_001)  # + pending 1000 + order 1000 = limit + 1

    def fix() -> None:
        desk.gross_exposure = D(0)

    return order("QQQ", client_order_id="x"), fix


def _concentration(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    desk.concentrations["QQQ"] = D("19.995")  # + 0.01 % > 20 %
    return order("QQQ", client_order_id="x"), lambda: desk.concentrations.pop("QQQ")


def _rate(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    for number in range(4):
        assert submit(breakers, order("IWM", quantity=str(number + 1), client_order_id=f"fill-{number}")).accepted
    return order("QQQ", client_order_id="x"), lambda: clock.advance(60)


def _messages(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    while breakers.record_cancel():
        pass
    return order("QQQ", client_order_id="x"), lambda: clock.advance(60)


def _too_many_pending(breakers: TradingCircuitBreakers, desk: Desk, clock: ManualClock) -> Tuple[Order, Any]:
    for number in range(5):  # with "base": 6 pending, the limit; a minute apart, clear of the rate limit
        clock.advance(60)
        assert submit(breakers, order("IWM", quantity=str(number + 1), client_order_id=f"p{number}")).accepted
    assert breakers.record_cancel()  # the earlier messages left the window: one more, so it is not empty
    return order("QQQ", client_order_id="x"), lambda: breakers.order_cancelled("p0")


SCENARIOS: Dict[RejectReason, Scenario] = {
    R.TRADING_HALTED: _halted,
    R.REDUCE_ONLY: _reduce_only,
    R.RESTRICTED: _restricted,
    R.MAX_QUANTITY: _max_quantity,
    R.NO_REFERENCE_PRICE: _no_reference,
    R.PRICE_COLLAR: _collar,
    R.MAX_NOTIONAL: _notional,
    R.DUPLICATE: _duplicate,
    R.EXPOSURE: _exposure,
    R.CONCENTRATION: _concentration,
    R.RATE_LIMIT: _rate,
    R.MESSAGE_RATE: _messages,
    R.TOO_MANY_PENDING: _too_many_pending,
}


def test_every_reason_has_an_atomicity_scenario() -> None:
    assert set(SCENARIOS) == set(RejectReason)


@pytest.mark.parametrize("reason", list(SCENARIOS), ids=[reason.name for reason in SCENARIOS])
def test_a_refused_order_records_nothing(desk: Desk, clock: ManualClock, reason: RejectReason) -> None:
    limits = OrderLimits(
        max_notional=D(200_000),
        max_quantity=D(5000),
        price_collar_pct=D(5),
        duplicate_window_seconds=300,
        max_gross_exposure=D(5_000_000),
        max_messages_per_minute=20,
        per_symbol={"TSLA": SymbolLimits(max_quantity=D(100))},
        max_pending_orders=6,
    )
    key = KEY if reason is R.TRADING_HALTED else None  # hashing a key is slow (scrypt): only where needed
    breakers = make_breakers(desk, limits, clock=clock, reset_key=key, max_orders_per_minute=5)
    # something in every window first, so "unchanged" is not just "still empty"
    assert submit(breakers, order("SPY", client_order_id="base")).accepted
    assert breakers.record_cancel()
    refused_order, fix = SCENARIOS[reason](breakers, desk, clock)
    before = snapshot(breakers)
    assert before["orders_last_minute"] >= 1
    assert before["pending_orders"] >= 1
    assert before["messages"] >= 2

    looked = breakers.check_order(refused_order)
    assert looked.reason is reason, looked
    with pytest.raises(OrderRejected) as refused, breakers.trade_guard(refused_order):
        pytest.fail("the block of a refused order must not run")
    assert refused.value.decision.reason is reason
    assert refused.value.decision.message == looked.message
    assert snapshot(breakers) == before
    with pytest.raises(UnknownOrderError):
        breakers.order_cancelled("x")  # the refused order is not pending
    connection = breakers.manager.get_circuit_breaker("connection")
    assert connection is not None
    assert connection.get_status()["failed_requests"] == 0

    if fix is not None:
        fix()
        decision = submit(breakers, refused_order)  # not a duplicate of itself, its id is free
        assert decision.accepted, decision
        breakers.order_cancelled("x")


def test_check_order_a_hundred_times_records_nothing(desk: Desk) -> None:
    limits = OrderLimits(duplicate_window_seconds=30, max_gross_exposure=D(10**9), max_messages_per_minute=5)
    breakers = make_breakers(desk, limits, max_orders_per_minute=3)
    empty = snapshot(breakers)
    assert empty == {
        "orders_last_minute": 0,
        "orders_last_hour": 0,
        "pending_orders": 0,
        "pending_notional": D(0),
        "remembered_orders": 0,
        "messages": 0,
    }
    for _ in range(100):
        assert breakers.check_order(order(client_order_id="a")).accepted
    for _ in range(100):
        assert breakers.check_order(order(quantity="999999", price="999999", client_order_id="b")).reason is (
            R.EXPOSURE
        )
    assert snapshot(breakers) == empty


def test_check_order_never_raises_for_refused_orders(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(restricted_symbols={"XYZ"}, max_quantity=D(1)))
    breakers.engage_kill_switch("halted")
    for the_order in (order(symbol="XYZ"), order(quantity="5"), order(price=None)):
        decision = breakers.check_order(the_order)
        assert isinstance(decision, OrderDecision)
        assert decision.reason is R.TRADING_HALTED


@pytest.mark.parametrize("not_an_order", ["SPY", None, ("SPY", Side.BUY, D(1))])
def test_check_order_refuses_non_orders(desk: Desk, not_an_order: Any) -> None:
    with pytest.raises(ConfigTypeError, match="expected an Order"):
        make_breakers(desk).check_order(not_an_order)


def test_trade_guard_order_takes_no_value(desk: Desk) -> None:
    with pytest.raises(ConfigTypeError, match="takes no value"):
        make_breakers(desk).trade_guard(order(), D(100))


def test_accepted_order_is_recorded_everywhere(desk: Desk) -> None:
    limits = OrderLimits(duplicate_window_seconds=30, max_gross_exposure=D(10**9), max_messages_per_minute=5)
    breakers = make_breakers(desk, limits)
    ran = []
    with breakers.trade_guard(order(quantity="7", price="100", client_order_id="a")) as guard:
        ran.append(guard)
    assert len(ran) == 1
    assert snapshot(breakers) == {
        "orders_last_minute": 1,
        "orders_last_hour": 1,
        "pending_orders": 1,
        "pending_notional": D(700),
        "remembered_orders": 1,
        "messages": 1,
    }


def test_error_in_the_block_keeps_the_order_recorded(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits(duplicate_window_seconds=30))
    with pytest.raises(ConnectionError), breakers.trade_guard(order(client_order_id="a")):
        raise ConnectionError("broker down")
    assert snapshot(breakers)["orders_last_minute"] == 1
    assert breakers.check_order(order()).reason is R.DUPLICATE  # it may have reached the broker


def test_connection_open_refuses_orders_as_halted(desk: Desk) -> None:
    breakers = make_breakers(desk, OrderLimits())
    for _ in range(3):
        breakers.record_connection_failure("broker down")
    assert breakers.trading_state is TradingState.HALTED
    assert_refused(breakers.check_order(order()), R.TRADING_HALTED, "connection", "broker down")
    before = snapshot(breakers)
    # OrderRejected is a TradingHalted too; here the connection breaker refuses before the gate runs
    with pytest.raises(TradingHalted, match="connection"), breakers.trade_guard(order()):
        pytest.fail("must not run")
    assert snapshot(breakers) == before


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


operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 40), st.integers(1, 500)),
        st.tuples(st.just("fill"), st.integers(0, 30), st.integers(1, 40)),
        st.tuples(st.just("cancel"), st.integers(0, 30), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations, current=st.integers(0, 5000))
def test_exposure_model_property(ops: Any, current: int) -> None:
    """Against a model: accepted iff current + pending + order <= limit; pending always exact."""
    limit = D(10_000)
    desk = Desk(total_value=D(10) ** 12, gross_exposure=D(current))
    breakers = make_breakers(desk, OrderLimits(max_gross_exposure=limit), max_orders_per_minute=100)
    model: Dict[str, Tuple[Decimal, Decimal]] = {}  # id -> (remaining, price)
    sent = 0
    for kind, a, b in ops:
        pending = sum((remaining * price for remaining, price in model.values()), D(0))
        if kind == "send":
            quantity, price = D(a), D(b)
            the_id = f"o-{sent}"
            sent += 1
            decision = submit(breakers, order(quantity=quantity, price=price, client_order_id=the_id))
            fits = D(current) + pending + quantity * price <= limit
            assert decision.accepted is fits, (decision, current, pending, quantity * price)
            if fits:
                model[the_id] = (quantity, price)
            else:
                assert decision.reason is R.EXPOSURE
        elif kind == "fill":
            the_id = f"o-{a}"
            if the_id not in model:
                with pytest.raises(UnknownOrderError):
                    breakers.order_filled(the_id, D(b))
            elif D(b) > model[the_id][0]:
                with pytest.raises(ConfigError):
                    breakers.order_filled(the_id, D(b))
            else:
                remaining = model[the_id][0] - D(b)
                assert breakers.order_filled(the_id, D(b)) == remaining
                if remaining:
                    model[the_id] = (remaining, model[the_id][1])
                else:
                    del model[the_id]
        else:
            the_id = f"o-{a}"
            if the_id in model:
                breakers.order_cancelled(the_id)
                del model[the_id]
            else:
                with pytest.raises(UnknownOrderError):
                    breakers.order_cancelled(the_id)
        expected = sum((remaining * price for remaining, price in model.values()), D(0))
        assert pending_notional(breakers) == expected
        assert breakers.get_status().details["orders"]["pending_orders"] == len(model)
        assert D(current) + expected <= limit or not model


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


def test_restricted_list_ignores_case_and_a_basis_point_collar_refuses() -> None:
    breakers = make_breakers(Desk(), OrderLimits(restricted_symbols=frozenset({"GME"}), price_collar_bps=D(50)))
    assert_refused(breakers.check_order(order(symbol="gme")), R.RESTRICTED, "gme is on the restricted list")
    breakers.unrestrict("Gme")
    assert breakers.check_order(order(symbol="gme", price="100.5")).accepted  # 50 bps from 100: inside
    assert_refused(breakers.check_order(order(symbol="gme", price="100.51")), R.PRICE_COLLAR, "(collar 0.5%)")
