"""The rules compute in a context of their own: the calling thread's decimal context changes nothing."""

from __future__ import annotations

import decimal
import threading
from decimal import Decimal

import pytest

from circuit_breakers import OrderDecision, RejectReason

from .order_fakes import Desk, make_breakers, order, submit

CALLERS = {
    "inexact trapped": decimal.Context(traps=[decimal.Inexact]),
    "rounded trapped": decimal.Context(traps=[decimal.Rounded]),
    "precision 3": decimal.Context(prec=3),
    "exponents up to 4": decimal.Context(Emax=4, Emin=-4),
}


@pytest.mark.parametrize("caller", CALLERS.values(), ids=list(CALLERS))
def test_a_drawdown_read_in_an_odd_context_engages_the_kill_switch(caller: decimal.Context) -> None:
    desk = Desk(returns=[Decimal(x) for x in ("0.5", "-0.3", "0.2", "0.1", "-0.4", "0.33")])
    breakers = make_breakers(desk)
    try:
        breakers.check_now()
        desk.total_value, desk.max_drawdown = Decimal(700000), Decimal(-30)
        with decimal.localcontext(caller):
            breakers.refresh()
        assert breakers.kill_switch_active
        assert breakers.can_trade() is False
    finally:
        breakers.close()


@pytest.mark.parametrize("caller", CALLERS.values(), ids=list(CALLERS))
def test_an_order_in_an_odd_context_is_judged_as_in_the_default_one(caller: decimal.Context) -> None:
    breakers = make_breakers(Desk(concentration=Decimal("3")))
    try:
        with decimal.localcontext(caller):
            accepted = submit(breakers, order(quantity="12.3457", price="100.01", client_order_id="a"))
            too_big = breakers.check_order(order(quantity="2000.01", price="100.01"))
        assert accepted == OrderDecision(True)
        assert too_big.reason is RejectReason.CONCENTRATION
        assert "provider failed" not in too_big.message
    finally:
        breakers.close()


@pytest.mark.parametrize("caller", CALLERS.values(), ids=list(CALLERS))
def test_a_cash_flow_and_the_status_in_an_odd_context_are_exact(caller: decimal.Context) -> None:
    breakers = make_breakers(Desk(total_value=Decimal("1000000")))
    try:
        breakers.check_now()
        with decimal.localcontext(caller):
            breakers.record_cash_flow(Decimal("123.45"))
            status = breakers.get_status()
        assert status.details["max_drawdown"]["own_high_water_mark"] == Decimal("1000123.45")
        assert status.can_trade
    finally:
        breakers.close()


def test_the_monitor_computes_in_the_rules_context_whatever_the_default() -> None:
    desk = Desk()
    breakers = make_breakers(desk, check_interval_seconds=0.01)
    saved = decimal.DefaultContext.prec, decimal.DefaultContext.traps[decimal.Inexact]
    decimal.DefaultContext.prec, decimal.DefaultContext.traps[decimal.Inexact] = 3, True
    try:
        breakers.start_monitoring()  # the monitor thread starts from the changed default
        desk.total_value, desk.max_drawdown = Decimal(700000), Decimal(-30)
        engaged = threading.Event()
        breakers.register_kill_handler(lambda reason: engaged.set())
        assert engaged.wait(10), breakers.get_blocking_reasons()
        assert breakers.kill_switch_active
    finally:
        decimal.DefaultContext.prec, decimal.DefaultContext.traps[decimal.Inexact] = saved
        breakers.close()
