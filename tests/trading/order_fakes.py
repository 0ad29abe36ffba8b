"""Helpers for the pre-trade gate tests: a scriptable desk provider and its fixture, a breakers factory, snapshots
and assertions on decisions.

Not a conftest: import what you need explicitly.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

import pytest

from circuit_breakers import (
    ManualClock,
    Order,
    OrderDecision,
    OrderLimits,
    OrderRejected,
    RejectReason,
    Side,
    TradingBreakerConfig,
    TradingCircuitBreakers,
)

D = Decimal
START = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)  # Monday 09:30 in New York
WAIT = 10.0  # generous bound for joins and events; never reached when things work

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
HUNDRED = Decimal(100)
KEY = "gate-tests-reset-key-7Hq"
R = RejectReason
OPTIONAL_METHODS = ("get_reference_price", "get_position_quantity", "get_gross_exposure")


class Desk:
    """A PortfolioProvider with the optional pre-trade extras; every figure is a plain attribute.

    ``references`` / ``positions`` map symbol -> answer (falling back to ``reference`` /
    ``position``). An answer that is an exception instance is raised instead of returned. Methods
    named in ``without`` do not exist at all. ``hold_reference``: when set (a pair of Events),
    get_reference_price sets the first and waits for the second before answering.
    """

    def __init__(
        self,
        *,
        total_value: Any = MILLION,
        daily_pnl_pct: Any = ZERO,
        max_drawdown: Any = ZERO,
        concentration: Any = ZERO,
        reference: Any = HUNDRED,
        position: Any = ZERO,
        gross_exposure: Any = ZERO,
        returns: Optional[Iterable[Any]] = None,
        without: Iterable[str] = (),
    ) -> None:
        self.total_value = total_value
        self.daily_pnl_pct = daily_pnl_pct
        self.max_drawdown = max_drawdown
        self.concentration = concentration
        self.concentrations: Dict[str, Any] = {}
        self.reference = reference
        self.references: Dict[str, Any] = {}
        self.position = position
        self.positions: Dict[str, Any] = {}
        self.gross_exposure = gross_exposure
        self.hold_reference: Optional[Tuple[threading.Event, threading.Event]] = None
        self.reference_calls = 0
        self._lock = threading.Lock()
        missing = set(without)
        assert missing <= set(OPTIONAL_METHODS), missing
        for name in OPTIONAL_METHODS:
            if name not in missing:
                setattr(self, name, getattr(self, "_" + name))
        if returns is not None:
            self.returns = list(returns)
            self.get_daily_returns = self._get_daily_returns

    @staticmethod
    def _answer(value: Any) -> Any:
        if isinstance(value, BaseException):
            raise value
        return value

    # --- the protocol ----------------------------------------------------------------------------

    def get_total_value(self) -> Any:
        return self._answer(self.total_value)

    def get_daily_pnl(self) -> Any:
        return D(0)

    def get_daily_pnl_pct(self) -> Any:
        return self._answer(self.daily_pnl_pct)

    def get_max_drawdown(self) -> Any:
        return self._answer(self.max_drawdown)

    def get_position_concentration(self, symbol: str) -> Any:
        return self._answer(self.concentrations.get(symbol, self.concentration))

    # --- the optional extras (installed per instance) --------------------------------------------

    def _get_reference_price(self, symbol: str) -> Any:
        with self._lock:
            self.reference_calls += 1
        hold = self.hold_reference
        if hold is not None:
            hold[0].set()
            assert hold[1].wait(WAIT), "a held get_reference_price was never released"
        return self._answer(self.references.get(symbol, self.reference))

    def _get_position_quantity(self, symbol: str) -> Any:
        return self._answer(self.positions.get(symbol, self.position))

    def _get_gross_exposure(self) -> Any:
        return self._answer(self.gross_exposure)

    def _get_daily_returns(self) -> Any:
        return self.returns


def make_breakers(
    desk: Optional[Desk] = None,
    limits: Optional[OrderLimits] = None,
    *,
    clock: Optional[ManualClock] = None,
    reset_key: Optional[str] = None,
    **config: Any,
) -> TradingCircuitBreakers:
    """Breakers over ``desk`` (default: a fresh Desk) on a ManualClock that moves only when told."""
    return TradingCircuitBreakers(
        Desk() if desk is None else desk,
        TradingBreakerConfig(**config),
        clock=ManualClock(start=START) if clock is None else clock,
        order_limits=limits,
        reset_key=reset_key,
    )


def order(
    symbol: str = "SPY",
    side: Side = Side.BUY,
    quantity: Union[Decimal, int, str] = "10",
    price: Union[Decimal, int, str, None] = "100",
    client_order_id: Optional[str] = None,
) -> Order:
    """An Order with string figures converted exactly: ``order(price=None)`` is a market order."""
    return Order(
        symbol,
        side,
        D(str(quantity)),
        None if price is None else D(str(price)),
        client_order_id,
    )


def submit(breakers: TradingCircuitBreakers, the_order: Order) -> OrderDecision:
    """Send ``the_order`` through ``trade_guard``; the decision (accepted, or the refusal's)."""
    try:
        with breakers.trade_guard(the_order):
            pass
    except OrderRejected as refused:
        return refused.decision
    return OrderDecision(True)


def snapshot(breakers: TradingCircuitBreakers) -> Dict[str, Any]:
    """Everything a refused order must leave untouched: rate windows, pending, duplicates, messages."""
    status = breakers.get_status()
    orders = status.details["orders"]
    messages = orders.get("messages")
    return {
        "orders_last_minute": status.orders_last_minute,
        "orders_last_hour": status.orders_last_hour,
        "pending_orders": orders["pending_orders"],
        "pending_notional": orders["pending_notional"],
        "remembered_orders": orders["remembered_orders"],
        "messages": None if messages is None else messages["calls_in_window"],
    }


def messages_in_window(breakers: TradingCircuitBreakers) -> int:
    return int(breakers.get_status().details["orders"]["messages"]["calls_in_window"])


def pending_notional(breakers: TradingCircuitBreakers) -> Decimal:
    value = breakers.get_status().details["orders"]["pending_notional"]
    assert isinstance(value, Decimal)
    return value


@pytest.fixture
def desk() -> Desk:
    """A Desk worth ten million: the pre-trade gate tests' default."""
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


__all__ = [
    "D",
    "KEY",
    "OPTIONAL_METHODS",
    "START",
    "WAIT",
    "Desk",
    "R",
    "assert_refused",
    "both_ways",
    "desk",
    "make_breakers",
    "messages_in_window",
    "order",
    "pending_notional",
    "snapshot",
    "submit",
]
