"""Fills, cancels and releases reported from a thread with an odd decimal context leave the pending
exposure and the quantity still working exact, as the order's acceptance computed them."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from circuit_breakers import OrderLimits, RejectReason

from .order_fakes import Desk, make_breakers, order, pending_notional, submit

CALLERS = {
    "precision 1": decimal.Context(prec=1),
    "precision 3 rounding up": decimal.Context(prec=3, rounding=decimal.ROUND_CEILING),
    "precision 5": decimal.Context(prec=5),
    "precision 3 inexact trapped": decimal.Context(prec=3, traps=[decimal.Inexact]),
}
LIMIT = Decimal(1_000_000)


@pytest.mark.parametrize("caller", CALLERS.values(), ids=list(CALLERS))
def test_a_fill_and_a_cancel_in_an_odd_context_release_exactly_what_was_pending(caller: decimal.Context) -> None:
    breakers = make_breakers(Desk(), OrderLimits(max_gross_exposure=LIMIT))
    try:
        assert submit(breakers, order(quantity="1000.1", price="123.45", client_order_id="a")).accepted
        assert pending_notional(breakers) == Decimal("123462.345")
        with decimal.localcontext(caller):
            still = breakers.order_filled("a", Decimal("333.37"))
        assert still == Decimal("666.73")
        assert pending_notional(breakers) == Decimal("82307.8185")
        with decimal.localcontext(caller):
            breakers.order_cancelled("a")
        assert pending_notional(breakers) == 0
        # Nothing is pending: an order one cent over the limit is refused, whatever was rounded before.
        over = breakers.check_order(order(quantity="10000.0001", price="100", client_order_id="b"))
        assert over.reason is RejectReason.EXPOSURE
    finally:
        breakers.close()


@pytest.mark.parametrize("caller", CALLERS.values(), ids=list(CALLERS))
def test_an_order_released_by_its_guard_in_an_odd_context_leaves_nothing_pending(caller: decimal.Context) -> None:
    breakers = make_breakers(Desk(), OrderLimits(max_gross_exposure=LIMIT))
    try:
        guard = breakers.trade_guard(order(quantity="1000.1", price="123.45", client_order_id="a"))
        with decimal.localcontext(caller), pytest.raises(ConnectionRefusedError), guard:
            raise ConnectionRefusedError("broker down")  # certainly not placed: released on exit
        assert pending_notional(breakers) == 0
        assert breakers.get_status().details["orders"]["pending_orders"] == 0
    finally:
        breakers.close()
