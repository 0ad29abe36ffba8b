"""What the pre-trade gate remembers: duplicates, pending exposure with fills and cancels, order and message rates."""

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
    Side,
    TradingCircuitBreakers,
    UnknownOrderError,
)

from .order_fakes import (
    D,
    Desk,
    R,
    assert_refused,
    both_ways,
    desk,
    make_breakers,
    messages_in_window,
    order,
    pending_notional,
    snapshot,
    submit,
)

__all__ = ["desk"]  # fixtures


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


# --- properties --------------------------------------------------------------------------------------------


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
