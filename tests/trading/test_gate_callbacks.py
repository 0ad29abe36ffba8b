"""Callbacks fired while an order is decided run after the gate's lock is released."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, List

import pytest

from circuit_breakers import ManualClock, OrderDecision, TradingCircuitBreakers

from .order_fakes import START, WAIT, Desk, make_breakers, order


def time_passes_while_deciding(desk: Desk, clock: ManualClock, seconds: float) -> None:
    """Move ``clock`` on to ``seconds`` at the order's concentration look: between the gate's first
    look at the trading state and its second, under its lock."""
    looked = desk.get_position_concentration

    def later(symbol: str) -> Any:
        if clock.monotonic() < seconds:
            clock.advance(seconds)
        return looked(symbol)

    desk.get_position_concentration = later  # type: ignore[method-assign]


def halted_then_cleared(desk: Desk, clock: ManualClock) -> TradingCircuitBreakers:
    """A daily-loss halt whose reading has cleared: it lifts once its 60 s cooldown has passed."""
    breakers = make_breakers(desk, clock=clock, auto_recovery=True, cooldown_seconds=60)
    desk.daily_pnl_pct = Decimal("-3")
    breakers.check_now()
    desk.daily_pnl_pct = Decimal(0)
    breakers.check_now()
    return breakers


def check_order_on_a_thread(breakers: TradingCircuitBreakers, what: str) -> List[OrderDecision]:
    """check_order() on a thread of its own, which must end within the bound (else: a deadlock)."""
    decided: List[OrderDecision] = []
    worker = threading.Thread(target=lambda: decided.append(breakers.check_order(order())), daemon=True)
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), f"check_order deadlocked on the gate lock held around {what}"
    return decided


def test_a_recovery_callback_that_checks_an_order_does_not_wait_for_the_gate_lock() -> None:
    clock = ManualClock(start=START)
    desk = Desk()
    breakers = halted_then_cleared(desk, clock)
    try:
        seen: List[Any] = []
        breakers.register_recovery_callback(lambda name: seen.append((name, breakers.check_order(order()))))
        time_passes_while_deciding(desk, clock, 61)  # the halt lifts between the gate's two looks
        decided = check_order_on_a_thread(breakers, "its own callback")
        assert seen == [("daily_loss", OrderDecision(True))]
        assert decided == [OrderDecision(True)]
    finally:
        breakers.close()


class Interrupted(BaseException):
    """Stands for a KeyboardInterrupt raised inside a callback."""


def test_an_order_whose_callback_interrupts_its_decision_is_released() -> None:
    clock = ManualClock(start=START)
    desk = Desk()
    breakers = halted_then_cleared(desk, clock)
    try:

        def interrupt(name: str) -> None:
            raise Interrupted(name)

        breakers.register_recovery_callback(interrupt)
        time_passes_while_deciding(desk, clock, 61)
        sent = order(client_order_id="c-1")
        ran: List[bool] = []
        with pytest.raises(Interrupted), breakers.trade_guard(sent):
            ran.append(True)
        assert ran == []
        orders = breakers.get_status().details["orders"]
        assert orders["pending_orders"] == 0  # accepted, then released: it was never sent
        assert orders["pending_notional"] == 0
        with breakers.trade_guard(sent):  # no duplicate memory of it either
            ran.append(True)
        assert ran == [True]
    finally:
        breakers.close()


def test_a_connection_callback_that_checks_an_order_does_not_wait_for_the_gate_lock() -> None:
    clock = ManualClock(start=START)
    desk = Desk()
    breakers = make_breakers(desk, clock=clock, connection_timeout_seconds=30)
    try:
        breakers.check_now()
        for _ in range(breakers.config.connection_failure_threshold):
            breakers.record_connection_failure()
        connection = breakers.manager.get_circuit_breaker("connection")
        assert connection is not None
        seen: List[Any] = []

        def on_change(name: str, old: Any, new: Any) -> None:
            if not seen:
                seen.append((new.value, breakers.check_order(order())))

        connection.register_state_change_callback(on_change)
        time_passes_while_deciding(desk, clock, 31)  # the open timeout ends between the gate's two looks
        decided = check_order_on_a_thread(breakers, "a connection callback")
        assert seen == [("half_open", OrderDecision(True))]
        assert decided == [OrderDecision(True)]
    finally:
        breakers.close()
