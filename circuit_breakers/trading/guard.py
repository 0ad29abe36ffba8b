"""TradeGuard: the ``with breakers.trade_guard(...):`` block, and the surface of the desk it works through."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Callable, List, Optional, Type, Union

from circuit_breakers.breaker_base import describe_error
from circuit_breakers.errors import ConfigTypeError, OrderRejected, TradingHalted
from circuit_breakers.outage import SendOutcome, send_outcome
from circuit_breakers.ratelimit import Permits
from circuit_breakers.trading.orders import Order, OrderDecision, RejectReason
from circuit_breakers.trading.rules import Level, Verdict


@dataclass(frozen=True)
class GuardPort:
    """What a :class:`TradeGuard` may ask of and tell the desk it guards; built once by each desk.

    Tickets are the connection breaker's admissions: ``admit()`` gives one (None while the breaker
    refuses, ``connection_reason()`` says why), and each ticket taken is given back exactly once,
    through ``give_back`` (nothing was sent), ``succeeded`` or ``raised``.
    """

    can_trade: Callable[[], bool]
    blocking_reasons: Callable[[], List[str]]
    judge_concentration: Callable[[str, Decimal], Verdict]  # remembered for status and warnings
    decide: Callable[[Order], OrderDecision]  # every pre-trade check; an accepted order is recorded
    orders: Permits  # the order-rate windows, for a guard given a symbol and a value
    admit: Callable[[], Any]
    connection_reason: Callable[[], str]
    give_back: Callable[[Any], None]
    succeeded: Callable[[Any], None]
    raised: Callable[[Any, BaseException], None]
    released: Callable[[Order], None]  # an order that certainly was not placed
    unknown: Callable[[Order, str], None]  # an order whose send may have reached the broker: why not known


class TradeGuard:
    """One guarded block; build it with ``breakers.trade_guard(...)`` and enter it once.

    On entry: refuse if trading is blocked; check and record the order (an :class:`Order`, or a
    symbol and value); take a connection-breaker admission. Nothing is recorded unless every step
    passes. On exit: the connection breaker learns how the block ended; an order whose block raised
    is released at once if it certainly was not placed (see
    :func:`~circuit_breakers.outage.send_outcome`), and otherwise stays counted, marked unknown,
    until the application reports it filled, cancelled or rejected.
    """

    __slots__ = ("_desk", "_order", "_symbol", "_ticket", "_value")

    def __init__(self, desk: GuardPort, symbol: Union[str, Order, None], value: Optional[Decimal]) -> None:
        self._order: Optional[Order] = None
        if isinstance(symbol, Order):
            if value is not None:
                raise ConfigTypeError("trade_guard(order) takes no value: the order carries its own")
            self._order, symbol = symbol, None
        elif (symbol is None) != (value is None):
            raise ConfigTypeError("trade_guard needs both symbol and value, or neither")
        self._desk, self._symbol, self._value = desk, symbol, value
        self._ticket: Any = None

    def __enter__(self) -> TradeGuard:
        desk = self._desk
        if self._order is None:
            reasons = [] if desk.can_trade() else desk.blocking_reasons()
            if reasons:
                raise TradingHalted(reasons)
            if self._symbol is not None and self._value is not None:
                verdict = desk.judge_concentration(self._symbol, self._value)
                if verdict.level is Level.TRIP:
                    raise TradingHalted([f"position_concentration: {self._symbol}: {verdict.message}"])
        ticket = desk.admit()
        if ticket is None:
            reason = f"connection: {desk.connection_reason()}"
            if self._order is not None:
                raise OrderRejected(OrderDecision(False, RejectReason.TRADING_HALTED, reason))
            raise TradingHalted([reason])
        try:
            if self._order is not None:
                decision = desk.decide(self._order)
                if not decision.accepted:
                    raise OrderRejected(decision)
            elif self._symbol is not None and not desk.orders.try_acquire():
                retry = desk.orders.retry_after()
                raise TradingHalted([f"rate_limit: order refused; next slot in {retry:.1f}s"])
        except BaseException:
            desk.give_back(ticket)  # give back a half-open permit; nothing was sent
            raise
        self._ticket = ticket
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        ticket, self._ticket = self._ticket, None
        if exc is None:
            self._desk.succeeded(ticket)
            return
        self._desk.raised(ticket, exc)
        order = self._order
        if order is not None:
            if send_outcome(exc) is SendOutcome.NOT_PLACED:
                self._desk.released(order)  # refused, or it never left: nothing of it can fill
            else:
                self._desk.unknown(order, describe_error(exc) or type(exc).__name__)
