"""The pre-trade gate's recording: a refused order records nothing, an accepted one is recorded everywhere."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import pytest

from circuit_breakers import (
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
    KEY,
    D,
    Desk,
    R,
    assert_refused,
    desk,
    make_breakers,
    order,
    snapshot,
    submit,
)

__all__ = ["desk"]  # fixtures


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
