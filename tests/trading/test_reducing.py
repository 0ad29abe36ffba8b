"""Trading states (ACTIVE / REDUCING / HALTED), reduce-only orders, and the kill handlers."""

from __future__ import annotations

import itertools
import logging
import threading
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

import pytest

from circuit_breakers import (
    ConfigTypeError,
    Order,
    OrderDecision,
    OrderLimits,
    RejectReason,
    Side,
    TradingCircuitBreakers,
    TradingHalted,
    TradingState,
)

from .order_fakes import WAIT, D, Desk, make_breakers, pending_notional, snapshot, submit
from .order_fakes import order as plain_order

KEY = "reducing-tests-reset-key-3Vb"
R = RejectReason
_ids = itertools.count()


def order(*args: Any, client_order_id: Optional[str] = None, **fields: Any) -> Order:
    """An order with a client_order_id of its own unless given one: reduce-only needs ids to count
    the quantity still working (an order without one is refused while REDUCING, tested below)."""
    return plain_order(*args, client_order_id=client_order_id or f"order-{next(_ids)}", **fields)


def daily_loss_halt(breakers: TradingCircuitBreakers, desk: Desk) -> None:
    desk.daily_pnl_pct = D("-2.5")  # below the default -2 % limit
    status = breakers.check_now()
    assert status.blocking_breakers == ("daily_loss",)


def volatility_halt(breakers: TradingCircuitBreakers, desk: Desk) -> None:
    desk.daily_pnl_pct = D("3.5")  # 3.5 std devs from a mean of 0 (std dev 1): past the default 3
    status = breakers.check_now()
    assert status.blocking_breakers == ("volatility",)


def unit_returns() -> List[Decimal]:
    return [D(1), D(-1), D(1), D(-1), D(0)]  # mean 0, sample std dev 1


def both(breakers_a: TradingCircuitBreakers, the_order: Any) -> OrderDecision:
    """check_order, then trade_guard on the same breakers; they must agree (check_order records nothing)."""
    looked = breakers_a.check_order(the_order)
    sent = submit(breakers_a, the_order)
    assert (looked.accepted, looked.reason, looked.message) == (sent.accepted, sent.reason, sent.message)
    return sent


# --- the state ---------------------------------------------------------------------------------------------


def test_active_by_default() -> None:
    breakers = make_breakers(Desk())
    assert breakers.trading_state is TradingState.ACTIVE
    assert breakers.can_trade()
    assert breakers.get_status().trading_state is TradingState.ACTIVE


def test_daily_loss_halt_leaves_the_desk_reducing() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    assert breakers.trading_state is TradingState.REDUCING
    assert breakers.get_status().trading_state is TradingState.REDUCING
    assert breakers.can_trade() is False
    assert breakers.get_status().can_trade is False
    with pytest.raises(TradingHalted, match="daily_loss"), breakers.trade_guard():
        pytest.fail("a block without an order must not run while REDUCING")


def test_volatility_halt_leaves_the_desk_reducing() -> None:
    desk = Desk(position=D(100), returns=unit_returns())
    breakers = make_breakers(desk)
    volatility_halt(breakers, desk)
    assert breakers.trading_state is TradingState.REDUCING
    assert not breakers.can_trade()
    assert both(breakers, order(side=Side.SELL, quantity="100")).accepted
    refused = both(breakers, order(side=Side.BUY, quantity="1"))
    assert refused.reason is R.REDUCE_ONLY
    assert "reduce-only (volatility)" in refused.message


def test_both_day_halts_together_are_still_reducing() -> None:
    desk = Desk(position=D(100), returns=unit_returns())
    breakers = make_breakers(desk, volatility_std_threshold=D(1))
    desk.daily_pnl_pct = D(-3)  # trips daily loss and (3 std devs) volatility
    assert set(breakers.check_now().blocking_breakers) == {"daily_loss", "volatility"}
    assert breakers.trading_state is TradingState.REDUCING
    decision = breakers.check_order(order(quantity="1"))
    assert decision.reason is R.REDUCE_ONLY
    assert "reduce-only (daily_loss, volatility)" in decision.message


def test_reset_of_the_halt_makes_the_desk_active_again() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    desk.daily_pnl_pct = D(0)
    assert breakers.reset_breaker("daily_loss")
    assert breakers.trading_state is TradingState.ACTIVE
    assert both(breakers, order(side=Side.BUY)).accepted


# --- reduce-only decisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "side", "quantity", "accepted"),
    [
        (D(100), Side.SELL, "100", True),  # closes the long
        (D(100), Side.SELL, "0.01", True),
        (D(100), Side.SELL, "99.99", True),
        (D(100), Side.SELL, "100.01", False),  # a flip to short
        (D(100), Side.SELL, "200", False),
        (D(100), Side.BUY, "1", False),  # adds to the long
        (D(-100), Side.BUY, "100", True),  # closes the short
        (D(-100), Side.BUY, "50", True),
        (D(-100), Side.BUY, "100.01", False),  # a flip to long
        (D(-100), Side.SELL, "1", False),  # adds to the short
        (D(0), Side.SELL, "1", False),  # flat: nothing reduces
        (D(0), Side.BUY, "1", False),
        (D("0.5"), Side.SELL, "0.5", True),
    ],
)
def test_reduce_only_decisions(position: Decimal, side: Side, quantity: str, accepted: bool) -> None:
    desk = Desk(position=position)
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    decision = both(breakers, order(side=side, quantity=quantity, price="100"))
    if accepted:
        assert decision.accepted, decision
    else:
        assert decision.reason is R.REDUCE_ONLY
        assert f"reduce-only (daily_loss): {side.value} {D(quantity)} SPY does not reduce position {position}" == (
            decision.message
        )


def test_market_orders_may_reduce_too() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    assert both(breakers, order(side=Side.SELL, quantity="100", price=None)).accepted
    assert both(breakers, order(side=Side.SELL, quantity="101", price=None)).reason is R.REDUCE_ONLY


def test_positions_are_per_symbol() -> None:
    desk = Desk(position=D(0))
    desk.positions.update({"AAPL": D(50), "TSLA": D(-20)})
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    assert both(breakers, order(symbol="AAPL", side=Side.SELL, quantity="50")).accepted
    assert both(breakers, order(symbol="TSLA", side=Side.BUY, quantity="20")).accepted
    assert both(breakers, order(symbol="SPY", side=Side.SELL, quantity="1")).reason is R.REDUCE_ONLY
    assert both(breakers, order(symbol="TSLA", side=Side.SELL, quantity="1")).reason is R.REDUCE_ONLY


def test_no_position_method_refuses_with_reduce_only() -> None:
    desk = Desk(without=["get_position_quantity"])
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    decision = both(breakers, order(side=Side.SELL, quantity="1"))
    assert decision.reason is R.REDUCE_ONLY
    assert decision.message == "reduce-only (daily_loss); provider has no get_position_quantity()"


@pytest.mark.parametrize(
    "garbage",
    [RuntimeError("positions down"), None, 100.0, "100", D("NaN"), True],
    ids=["raises", "none", "float", "str", "nan", "bool"],
)
def test_bad_position_refuses_with_reduce_only(garbage: Any) -> None:
    desk = Desk(position=garbage)
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    decision = both(breakers, order(side=Side.SELL, quantity="1"))
    assert decision.reason is R.REDUCE_ONLY
    assert "get_position_quantity" in decision.message


def test_position_is_not_asked_while_active() -> None:
    desk = Desk(position=RuntimeError("must not be asked"))
    breakers = make_breakers(desk)
    assert both(breakers, order(side=Side.SELL, quantity="1")).accepted


def test_reducing_orders_skip_the_exposure_check() -> None:
    desk = Desk(position=D(100), without=["get_gross_exposure"])
    limits = OrderLimits(max_gross_exposure=D(1))
    active = make_breakers(desk, limits)
    assert active.check_order(order(side=Side.SELL, quantity="100", client_order_id="s")).reason is R.EXPOSURE
    breakers = make_breakers(desk, limits)
    daily_loss_halt(breakers, desk)
    assert both(breakers, order(side=Side.SELL, quantity="100", client_order_id="s")).accepted
    # the order that does not reduce is refused as reduce-only, before exposure
    assert breakers.check_order(order(side=Side.BUY, client_order_id="b")).reason is R.REDUCE_ONLY


def test_reducing_orders_skip_exposure_even_over_the_limit() -> None:
    desk = Desk(position=D(100), gross_exposure=D(10**9))
    limits = OrderLimits(max_gross_exposure=D(1000))
    breakers = make_breakers(desk, limits)
    assert breakers.check_order(order(side=Side.SELL, quantity="100", client_order_id="s")).reason is R.EXPOSURE
    daily_loss_halt(breakers, desk)
    assert both(breakers, order(side=Side.SELL, quantity="100", client_order_id="s")).accepted


def test_reducing_orders_skip_the_concentration_check() -> None:
    desk = Desk(position=D(100), concentration=D(50))
    active = make_breakers(desk)
    assert active.check_order(order(side=Side.SELL, quantity="100")).reason is R.CONCENTRATION
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    assert both(breakers, order(side=Side.SELL, quantity="100")).accepted


def test_reducing_orders_still_face_the_other_checks() -> None:
    desk = Desk(position=D(1000))
    limits = OrderLimits(
        restricted_symbols={"XYZ"},
        max_quantity=D(500),
        price_collar_pct=D(2),
        max_notional=D(20_000),
        duplicate_window_seconds=30,
    )
    breakers = make_breakers(desk, limits, max_orders_per_minute=3)
    daily_loss_halt(breakers, desk)
    sell = Side.SELL
    assert breakers.check_order(order(symbol="XYZ", side=sell)).reason is R.RESTRICTED
    assert breakers.check_order(order(side=sell, quantity="501")).reason is R.MAX_QUANTITY
    assert breakers.check_order(order(side=sell, price="90")).reason is R.PRICE_COLLAR
    assert breakers.check_order(order(side=sell, quantity="201")).reason is R.MAX_NOTIONAL
    assert submit(breakers, order(side=sell, quantity="1")).accepted
    assert breakers.check_order(order(side=sell, quantity="1")).reason is R.DUPLICATE
    assert submit(breakers, order(side=sell, quantity="2")).accepted
    assert submit(breakers, order(side=sell, quantity="3")).accepted
    assert breakers.check_order(order(side=sell, quantity="4")).reason is R.RATE_LIMIT


def test_refused_reduce_only_order_records_nothing() -> None:
    desk = Desk(position=D(100))
    limits = OrderLimits(duplicate_window_seconds=30, max_gross_exposure=D(10**9), max_messages_per_minute=10)
    breakers = make_breakers(desk, limits)
    assert submit(breakers, order(client_order_id="before")).accepted
    daily_loss_halt(breakers, desk)
    before = snapshot(breakers)
    assert submit(breakers, order(side=Side.SELL, quantity="101", client_order_id="flip")).reason is R.REDUCE_ONLY
    assert snapshot(breakers) == before


def test_reduce_only_counts_working_orders() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    assert submit(breakers, order(side=Side.SELL, quantity="100", price="100", client_order_id="a")).accepted
    second = submit(breakers, order(side=Side.SELL, quantity="100", price="99.99", client_order_id="b"))
    assert second.reason is R.REDUCE_ONLY


# --- halts that stop everything ---------------------------------------------------------------------------


def test_daily_loss_removed_from_reducing_breakers_halts_everything() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk, OrderLimits(reducing_breakers={"volatility"}))
    daily_loss_halt(breakers, desk)
    assert breakers.trading_state is TradingState.HALTED
    decision = both(breakers, order(side=Side.SELL, quantity="100"))
    assert decision.reason is R.TRADING_HALTED
    assert decision.message == "daily_loss: P&L -2.50% <= limit -2.00%"


def test_no_reducing_breakers_make_volatility_total_too() -> None:
    desk = Desk(position=D(100), returns=unit_returns())
    breakers = make_breakers(desk, OrderLimits(reducing_breakers=frozenset()))
    volatility_halt(breakers, desk)
    assert breakers.trading_state is TradingState.HALTED
    assert both(breakers, order(side=Side.SELL, quantity="1")).reason is R.TRADING_HALTED


def test_kill_switch_halts_everything() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    breakers.engage_kill_switch("operator pulled the plug")
    assert breakers.trading_state is TradingState.HALTED
    assert not breakers.can_trade()
    decision = both(breakers, order(side=Side.SELL, quantity="100"))
    assert decision.reason is R.TRADING_HALTED
    assert "kill switch engaged: operator pulled the plug" in decision.message


def test_kill_switch_on_top_of_a_daily_loss_halt_is_halted() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    daily_loss_halt(breakers, desk)
    breakers.engage_kill_switch("flatten")
    assert breakers.trading_state is TradingState.HALTED
    decision = breakers.check_order(order(side=Side.SELL, quantity="100"))
    assert decision.reason is R.TRADING_HALTED
    assert "max_drawdown" in decision.message
    assert "daily_loss" in decision.message


def test_drawdown_kill_switch_halts_everything() -> None:
    desk = Desk(position=D(100), max_drawdown=D(-12))
    breakers = make_breakers(desk)
    assert breakers.check_now().kill_switch_active
    assert breakers.trading_state is TradingState.HALTED
    assert breakers.check_order(order(side=Side.SELL, quantity="1")).reason is R.TRADING_HALTED


def test_open_connection_breaker_halts_everything() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    for _ in range(3):
        breakers.record_connection_failure("broker down")
    assert breakers.trading_state is TradingState.HALTED
    decision = breakers.check_order(order(side=Side.SELL, quantity="100"))
    assert decision.reason is R.TRADING_HALTED
    assert "connection" in decision.message


def test_provider_fault_halts_everything() -> None:
    desk = Desk(position=D(100))
    breakers = make_breakers(desk)
    desk.total_value = RuntimeError("portfolio service down")
    for _ in range(3):
        breakers.check_now()
    assert breakers.trading_state is TradingState.HALTED
    assert breakers.check_order(order(side=Side.SELL, quantity="1")).reason is R.TRADING_HALTED


# --- kill handlers ------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: List[Tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, reason: str) -> None:
        with self._lock:
            self.calls.append((reason, threading.get_ident()))


def run_in_thread(action: Any) -> int:
    """Run ``action()`` on a fresh thread with a bounded join; return that thread's ident."""
    idents: List[int] = []
    errors: List[BaseException] = []

    def body() -> None:
        idents.append(threading.get_ident())
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, name="engager")
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the engaging thread is stuck (deadlock?)"
    assert not errors, errors
    return idents[0]


def test_kill_handlers_run_once_per_engagement_on_the_engaging_thread() -> None:
    breakers = make_breakers(Desk(), reset_key=KEY)
    first, second = Recorder(), Recorder()
    breakers.register_kill_handler(first)
    breakers.register_kill_handler(second)
    engager = run_in_thread(lambda: breakers.engage_kill_switch("first"))
    assert first.calls == [("first", engager)]
    assert second.calls == [("first", engager)]
    breakers.engage_kill_switch("again while engaged")  # no new engagement
    run_in_thread(lambda: breakers.engage_kill_switch("and from another thread"))
    assert len(first.calls) == 1
    assert len(second.calls) == 1
    assert breakers.reset_kill_switch(KEY)
    assert len(first.calls) == 1  # a reset runs nothing
    breakers.engage_kill_switch("second")
    me = threading.get_ident()
    assert first.calls[1:] == [("second", me)]
    assert second.calls[1:] == [("second", me)]


def test_kill_handlers_run_on_the_thread_whose_reading_engaged_it() -> None:
    desk = Desk(max_drawdown=D(-12))
    breakers = make_breakers(desk)
    recorder = Recorder()
    breakers.register_kill_handler(recorder)
    engager = run_in_thread(breakers.check_now)
    assert len(recorder.calls) == 1
    reason, ident = recorder.calls[0]
    assert ident == engager
    assert "drawdown -12" in reason
    breakers.check_now()  # still below the limit: no second engagement
    assert len(recorder.calls) == 1


def test_kill_handlers_run_after_the_locks_are_released() -> None:
    desk = Desk(position=D(100))
    limits = OrderLimits(max_gross_exposure=D(10**9), max_messages_per_minute=100)
    breakers = make_breakers(desk, limits)
    seen: Dict[str, Any] = {}

    def cancel_everything(reason: str) -> None:
        status = breakers.get_status()
        seen["kill_switch_active"] = status.kill_switch_active
        seen["state"] = breakers.trading_state
        seen["decision"] = breakers.check_order(order(side=Side.SELL, client_order_id="z"))
        seen["cancel"] = breakers.record_cancel()
        seen["can_trade"] = breakers.can_trade()
        breakers.restrict("SPY")

    breakers.register_kill_handler(cancel_everything)
    run_in_thread(lambda: breakers.engage_kill_switch("deadlock probe"))
    assert seen["kill_switch_active"] is True
    assert seen["state"] is TradingState.HALTED
    assert seen["decision"].reason is R.TRADING_HALTED
    assert seen["cancel"] is True
    assert seen["can_trade"] is False


def test_kill_handler_may_release_pending_orders() -> None:
    breakers = make_breakers(Desk(), OrderLimits(max_gross_exposure=D(10**9)))
    for index in range(3):
        assert submit(breakers, order(quantity=str(index + 1), client_order_id=f"c-{index}")).accepted

    def cancel_all(reason: str) -> None:
        for index in range(3):
            breakers.order_cancelled(f"c-{index}")

    breakers.register_kill_handler(cancel_all)
    run_in_thread(lambda: breakers.engage_kill_switch("flatten"))
    assert pending_notional(breakers) == D(0)


def test_a_raising_kill_handler_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    breakers = make_breakers(Desk())
    before, after = Recorder(), Recorder()

    def broken(reason: str) -> None:
        raise RuntimeError("broker API refused the mass cancel")

    breakers.register_kill_handler(before)
    breakers.register_kill_handler(broken)
    breakers.register_kill_handler(after)
    assert breakers.get_status().details["max_drawdown"]["kill_handlers"] == []
    with caplog.at_level(logging.ERROR):
        breakers.engage_kill_switch("test")  # does not raise
    assert [call[0] for call in before.calls] == ["test"]
    assert [call[0] for call in after.calls] == ["test"]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR and record.exc_info]
    assert len(errors) == 1
    assert "kill handler" in errors[0].getMessage()
    assert "broken" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)

    outcomes = breakers.get_status().details["max_drawdown"]["kill_handlers"]
    assert [outcome["ok"] for outcome in outcomes] == [True, False, True]
    assert outcomes[0]["error"] is None
    assert "broken" in outcomes[1]["handler"]
    assert "RuntimeError" in outcomes[1]["error"]
    assert "broker API refused the mass cancel" in outcomes[1]["error"]
    assert outcomes[2]["error"] is None
    assert breakers.kill_switch_active
    assert breakers.get_status().to_dict()["details"]["max_drawdown"]["kill_handlers"][1]["ok"] is False


@pytest.mark.parametrize("not_callable", [None, "cancel_all", 42, object()])
def test_kill_handler_must_be_callable(not_callable: Any) -> None:
    breakers = make_breakers(Desk())
    with pytest.raises(ConfigTypeError):
        breakers.register_kill_handler(not_callable)
    breakers.engage_kill_switch("still works")
    assert breakers.get_status().details["max_drawdown"]["kill_handlers"] == []
