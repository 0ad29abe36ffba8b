"""TradeGuard: the ``with breakers.trade_guard(...):`` block."""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Type, Union

from circuit_breakers.breaker_base import describe_error
from circuit_breakers.errors import ConfigTypeError, OrderRejected, TradingHalted
from circuit_breakers.outage import SendOutcome, send_outcome
from circuit_breakers.trading.orders import Order, OrderDecision, RejectReason
from circuit_breakers.trading.rules import Level

if TYPE_CHECKING:
    from circuit_breakers.trading.breakers import TradingCircuitBreakers


class TradeGuard:
    """One guarded block; build it with ``breakers.trade_guard(...)`` and enter it once.

    On entry: refuse if trading is blocked; check and record the order (an :class:`Order`, or a
    symbol and value); take a connection-breaker admission. Nothing is recorded unless every step
    passes. On exit: the connection breaker learns how the block ended; an order whose block raised
    is released at once if it certainly was not placed (see
    :func:`~circuit_breakers.outage.send_outcome`), and otherwise stays counted, marked unknown,
    until the application reports it filled, cancelled or rejected.
    """

    __slots__ = ("_breakers", "_order", "_symbol", "_ticket", "_value")

    def __init__(
        self, breakers: TradingCircuitBreakers, symbol: Union[str, Order, None], value: Optional[Decimal]
    ) -> None:
        self._order: Optional[Order] = None
        if isinstance(symbol, Order):
            if value is not None:
                raise ConfigTypeError("trade_guard(order) takes no value: the order carries its own")
            self._order, symbol = symbol, None
        elif (symbol is None) != (value is None):
            raise ConfigTypeError("trade_guard needs both symbol and value, or neither")
        self._breakers, self._symbol, self._value = breakers, symbol, value
        self._ticket: Any = None

    def __enter__(self) -> TradeGuard:
        breakers = self._breakers
        if self._order is None:
            reasons = [] if breakers.can_trade() else breakers.get_blocking_reasons()
            if reasons:
                raise TradingHalted(reasons)
            if self._symbol is not None and self._value is not None:
                verdict = breakers._judge_concentration(self._symbol, self._value)
                if verdict.level is Level.TRIP:
                    raise TradingHalted([f"position_concentration: {self._symbol}: {verdict.message}"])
        connection = breakers._connection
        ticket = connection._admit()
        if ticket is None:
            reason = f"connection: {breakers._connection_reason()}"
            if self._order is not None:
                raise OrderRejected(OrderDecision(False, RejectReason.TRADING_HALTED, reason))
            raise TradingHalted([reason])
        try:
            if self._order is not None:
                decision = breakers._decide(self._order, record=True)
                if not decision.accepted:
                    raise OrderRejected(decision)
            elif self._symbol is not None and not breakers._limiter.try_acquire():
                retry = breakers._limiter.retry_after()
                raise TradingHalted([f"rate_limit: order refused; next slot in {retry:.1f}s"])
        except BaseException:
            connection._ignored_outcome(ticket)  # give back a half-open permit; nothing was sent
            raise
        self._ticket = ticket
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        ticket, self._ticket = self._ticket, None
        if exc is None:
            self._breakers._connection._succeeded(ticket)
            return
        self._breakers._connection._raised(ticket, exc)
        order = self._order
        if order is not None:
            gate = self._breakers._gate
            if send_outcome(exc) is SendOutcome.NOT_PLACED:
                gate.released(order)  # refused, or it never left: nothing of it can fill
            else:
                gate.unknown(order, describe_error(exc) or type(exc).__name__)
