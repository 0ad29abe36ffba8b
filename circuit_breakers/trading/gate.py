"""The pre-trade gate: every per-order check, and the record of accepted orders.

Flow: read what the provider knows about the order (reference price, position, gross exposure,
concentration) with no lock held -> under the gate's lock, run the checks in a fixed order and, when
recording, take the rate permits and remember the order (duplicates, pending exposure) all
together -> a refused order records nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple

from circuit_breakers.clock import Clock
from circuit_breakers.errors import ConfigError, ConfigTypeError, UnknownOrderError
from circuit_breakers.events import Pending, fire
from circuit_breakers.ratelimit import Limit, Permits, RateLimiter, acquire_together
from circuit_breakers.trading.orders import (
    ACCEPTED,
    Order,
    OrderDecision,
    OrderLimits,
    RejectReason,
    Side,
    TradingState,
    check_amount,
    check_symbol,
)
from circuit_breakers.trading.provider import checked_decimal
from circuit_breakers.trading.rules import Level, Verdict, computed

logger = logging.getLogger(__name__)

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class _Facts:
    """What the provider said about one order; an error string where it could not say."""

    reference: Optional[Decimal]
    reference_error: Optional[str]
    position: Optional[Decimal]
    position_error: Optional[str]
    working: Optional[Decimal]  # the broker's working quantity on the order's symbol and side, if it says
    exposure: Optional[Decimal]
    exposure_error: Optional[str]
    concentration: Optional[Verdict]


@dataclass
class _Pending:
    order: Order
    remaining: Decimal
    price: Decimal
    reduces: bool  # accepted as risk-reducing: counts against the position, not as exposure
    unknown: Optional[str] = None  # its send failed and it may have reached the broker: why


def _ask(
    provider: object, method: str, *args: Any, minimum: Optional[Decimal] = None, strict: bool = False
) -> Tuple[Optional[Decimal], Optional[str]]:
    """Call an optional provider method; (value, None), or (None, why not).

    A value below ``minimum`` (or equal to it, when ``strict``) is garbage: a price of 0 or a
    negative gross exposure would make a check pass that must not.
    """
    function = getattr(provider, method, None)
    if function is None:
        return None, f"provider has no {method}()"
    try:
        value = checked_decimal(method, function(*args))
    except Exception as exc:
        logger.warning("%s failed; the order check fails closed: %r", method, exc)
        return None, f"{method}() failed: {type(exc).__name__}: {exc}"
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        logger.warning("%s returned %s; the order check fails closed", method, value)
        return None, f"{method}() returned {value}, expected {'>' if strict else '>='} {minimum}"
    return value, None


def _reduces(order: Order, position: Decimal, working: Decimal = Decimal(0)) -> bool:
    """Whether ``order`` only shrinks ``position``, counting ``working`` same-side orders already sent."""
    if order.side is Side.SELL:
        return position > 0 and order.quantity + working <= position
    return position < 0 and order.quantity + working <= -position


_UNTRACKED_FOR = 86_400.0
"""Seconds an order sent without a client_order_id is assumed to be still working (a trading day)."""


class PreTradeGate:
    """Per-order checks over :class:`OrderLimits`; thread-safe."""

    def __init__(self, limits: OrderLimits, order_limiter: Permits, *, clock: Clock) -> None:
        self.limits = limits
        self._orders = order_limiter
        self._mono = clock.monotonic
        self._messages: Optional[RateLimiter] = (
            RateLimiter(Limit(limits.max_messages_per_minute, 60), name="messages", clock=clock)
            if limits.max_messages_per_minute is not None
            else None
        )
        # _lock guards _restricted, _recent, _recent_order, _pending and _pending_notional.
        self._lock = threading.Lock()
        self._restricted = {symbol.casefold(): symbol for symbol in limits.restricted_symbols}  # by casefold
        self._recent: Dict[Tuple[Any, ...], float] = {}  # fingerprint -> time last accepted
        self._recent_order: Deque[Tuple[float, Tuple[Any, ...]]] = deque()
        self._pending: Dict[str, _Pending] = {}
        self._pending_notional = Decimal(0)  # remaining x price over pending orders that add exposure
        # (symbol, side) -> (orders accepted without a client_order_id, when the last was)
        self._untracked: Dict[Tuple[str, Side], Tuple[int, float]] = {}
        self._decisions: Dict[str, int] = {}  # recorded decisions by reason ("accepted" for accepted ones)

    # --- facts (no lock) --------------------------------------------------------------------------

    def read_facts(
        self, order: Order, provider: object, state: TradingState, concentration: Callable[[str, Decimal], Verdict]
    ) -> _Facts:
        """Ask the provider what the checks need for ``order``. Blocks while it answers."""
        limits = self.limits
        _, _, collar = limits.for_symbol(order.symbol)
        needs_reference = collar is not None or order.price is None
        reference, reference_error = (
            _ask(provider, "get_reference_price", order.symbol, minimum=Decimal(0), strict=True)
            if needs_reference
            else (None, None)
        )
        position, position_error = (
            _ask(provider, "get_position_quantity", order.symbol) if state is TradingState.REDUCING else (None, None)
        )
        working: Optional[Decimal] = None
        if state is TradingState.REDUCING and hasattr(provider, "get_working_quantity"):
            working, working_error = _ask(
                provider, "get_working_quantity", order.symbol, order.side, minimum=Decimal(0)
            )
            if working_error is not None:
                position, position_error = None, working_error  # fail closed: the reduction cannot be judged
        exposure, exposure_error = (
            _ask(provider, "get_gross_exposure", minimum=Decimal(0))
            if limits.max_gross_exposure is not None
            else (None, None)
        )
        verdict = None
        price = order.price if order.price is not None else reference
        reducing = position is not None and _reduces(order, position)
        if price is not None and not reducing:
            signed = order.quantity * price * (1 if order.side is Side.BUY else -1)
            verdict = concentration(order.symbol, signed)
        return _Facts(reference, reference_error, position, position_error, working, exposure, exposure_error, verdict)

    # --- decision (lock held) --------------------------------------------------------------------

    def _judge(
        self, order: Order, facts: _Facts, state: TradingState, halted: str, now: float
    ) -> Tuple[OrderDecision, bool]:
        """The first check that refuses ``order`` (or ACCEPTED), and whether it only reduces risk."""
        decision = self._first_refusal(order, facts, state, halted, now)
        reducing = state is TradingState.REDUCING and decision.accepted
        return decision, reducing

    def _first_refusal(
        self, order: Order, facts: _Facts, state: TradingState, halted: str, now: float
    ) -> OrderDecision:
        if state is TradingState.HALTED:
            return OrderDecision(False, RejectReason.TRADING_HALTED, halted)
        reducing = False
        if state is TradingState.REDUCING:
            if facts.position is None:
                why = facts.position_error or "position not read (the desk turned reduce-only meanwhile)"
                return OrderDecision(False, RejectReason.REDUCE_ONLY, f"reduce-only ({halted}); {why}")
            untracked = self._untracked_working(order, now)
            if facts.working is None and (order.client_order_id is None or untracked):
                missing = (
                    "this order has no client_order_id"
                    if order.client_order_id is None
                    else f"{untracked} earlier {order.side.value} orders in {order.symbol} had no client_order_id"
                )
                return OrderDecision(
                    False,
                    RejectReason.REDUCE_ONLY,
                    f"reduce-only ({halted}): the quantity still working cannot be known: {missing} "
                    "(give client_order_ids and report fills, or let the provider implement get_working_quantity)",
                )
            working = self._working(order)
            if facts.working is not None:
                working = max(working, facts.working)
            reducing = _reduces(order, facts.position, working)
            if not reducing:
                also = f" (with {working} already working)" if working else ""
                return OrderDecision(
                    False,
                    RejectReason.REDUCE_ONLY,
                    f"reduce-only ({halted}): {order.side.value} {order.quantity} {order.symbol} "
                    f"does not reduce position {facts.position}{also}",
                )
        if order.symbol.casefold() in self._restricted:
            return OrderDecision(False, RejectReason.RESTRICTED, f"{order.symbol} is on the restricted list")
        max_notional, max_quantity, collar = self.limits.for_symbol(order.symbol)
        if max_quantity is not None and order.quantity > max_quantity:
            return OrderDecision(
                False, RejectReason.MAX_QUANTITY, f"quantity {order.quantity} > limit {max_quantity} for {order.symbol}"
            )
        reference = facts.reference
        if reference is None and (collar is not None or order.price is None):
            kind = "market order" if order.price is None else "price collar"
            return OrderDecision(
                False, RejectReason.NO_REFERENCE_PRICE, f"{kind} needs a reference price: {facts.reference_error}"
            )
        if collar is not None and order.price is not None and reference is not None:
            gap = abs(order.price - reference) * _HUNDRED  # compared as gap > collar x reference: no division
            if gap > collar * reference:
                distance = gap / reference
                return OrderDecision(
                    False,
                    RejectReason.PRICE_COLLAR,
                    f"price {order.price} is {distance.quantize(Decimal('0.01'))}% from reference {reference} "
                    f"(collar {collar}%)",
                )
        notional = order.notional(reference)
        if max_notional is not None and notional > max_notional:
            return OrderDecision(False, RejectReason.MAX_NOTIONAL, f"notional {notional} > limit {max_notional}")
        window = self.limits.duplicate_window_seconds
        if window is not None:
            seen = self._recent.get(order.fingerprint)
            if seen is not None and now - seen < window:
                return OrderDecision(
                    False,
                    RejectReason.DUPLICATE,
                    f"same {order.side.value} {order.quantity} {order.symbol} @ {order.price or 'market'} "
                    f"{now - seen:.1f}s ago (window {window:g}s)",
                )
        if order.client_order_id is not None and order.client_order_id in self._pending:
            return OrderDecision(False, RejectReason.DUPLICATE, f"client_order_id {order.client_order_id} is pending")
        if order.client_order_id is not None and len(self._pending) >= self.limits.max_pending_orders:
            return OrderDecision(
                False,
                RejectReason.TOO_MANY_PENDING,
                f"{len(self._pending)} orders pending (limit {self.limits.max_pending_orders}): "
                "report fills and cancels (order_filled / order_cancelled)",
            )
        limit = self.limits.max_gross_exposure
        if limit is not None and not reducing:
            if facts.exposure is None:
                return OrderDecision(False, RejectReason.EXPOSURE, f"gross exposure unknown: {facts.exposure_error}")
            pending = self._pending_notional
            total = facts.exposure + pending + notional
            if total > limit:
                return OrderDecision(
                    False,
                    RejectReason.EXPOSURE,
                    f"gross exposure {facts.exposure} + pending {pending} + order {notional} = {total} > limit {limit}",
                )
        if facts.concentration is not None and facts.concentration.level is Level.TRIP:
            return OrderDecision(False, RejectReason.CONCENTRATION, f"{order.symbol}: {facts.concentration.message}")
        return ACCEPTED

    def _working(self, order: Order) -> Decimal:
        """Quantity still working of every pending order on the same symbol and side, whatever the
        state it was sent in: a sell accepted while ACTIVE shrinks the long a later sell may take."""
        return sum(
            (
                entry.remaining
                for entry in self._pending.values()
                if entry.order.symbol == order.symbol and entry.order.side is order.side
            ),
            Decimal(0),
        )

    def _untracked_working(self, order: Order, now: float) -> int:
        """How many orders on the symbol and side were accepted without an id within the last day."""
        seen = self._untracked.get((order.symbol, order.side))
        if seen is None or now - seen[1] >= _UNTRACKED_FOR:
            return 0
        return seen[0]

    def decide(
        self,
        order: Order,
        facts: _Facts,
        trading_state: Callable[[Pending], Tuple[TradingState, str]],
        *,
        record: bool,
    ) -> OrderDecision:
        """Run every check; with ``record``, remember an accepted order, take its rate permits, and count
        the decision by reason (for status and metrics).

        ``trading_state`` is read again here, under the gate's lock, so that a kill switch that
        engaged while the provider was being asked is not missed. The callbacks that reading fires (a
        halt lifted by time) run once the lock is released: one that checks an order would otherwise
        wait for the lock its own thread holds.
        """
        if record and order.client_order_id is None and self.limits.max_gross_exposure is not None:
            raise ConfigError("with max_gross_exposure set, trade_guard(order) needs order.client_order_id")
        pending: Pending = []
        with self._lock:
            decision = self._decide(order, facts, trading_state, pending, record)
            if record:
                key = decision.reason.value if decision.reason is not None else "accepted"
                self._decisions[key] = self._decisions.get(key, 0) + 1
        if pending:
            try:
                fire(pending)
            except BaseException:  # a callback's SystemExit or KeyboardInterrupt: the order is never sent
                if record and decision.accepted:
                    self.released(order)
                raise
        return decision

    def _decide(
        self,
        order: Order,
        facts: _Facts,
        trading_state: Callable[[Pending], Tuple[TradingState, str]],
        pending: Pending,
        record: bool,
    ) -> OrderDecision:
        """:meth:`decide` under the gate's lock, before the decision is counted; the callbacks the
        trading state's reading fires go to ``pending``."""
        now = self._mono()
        self._forget_old(now)
        state, halted = trading_state(pending)
        decision, reduces = self._judge(order, facts, state, halted, now)
        if not decision.accepted:
            return decision
        limiters: Tuple[Permits, ...] = (self._orders,)
        if self._messages is not None:
            limiters = (self._orders, self._messages)
        refused: Optional[Permits] = None
        if record:
            refused = acquire_together(*limiters)
        else:
            for limiter in limiters:
                if limiter.retry_after() > 0:
                    refused = limiter
                    break
        if refused is not None:
            reason, what = (
                (RejectReason.RATE_LIMIT, "order")
                if refused is self._orders
                else (RejectReason.MESSAGE_RATE, "message")
            )
            limits = ", ".join(f"{limit.max_calls} per {limit.period_seconds:g}s" for limit in refused.limits)
            return OrderDecision(
                False, reason, f"{what} rate limit reached ({limits}); next slot in {refused.retry_after():.1f}s"
            )
        if record:
            self._remember(order, facts, now, reduces)
        return ACCEPTED

    def _remember(self, order: Order, facts: _Facts, now: float, reduces: bool) -> None:
        if self.limits.duplicate_window_seconds is not None:
            self._recent[order.fingerprint] = now
            self._recent_order.append((now, order.fingerprint))
        if order.client_order_id is None:
            key = (order.symbol, order.side)
            count = self._untracked_working(order, now)
            self._untracked[key] = (count + 1, now)
        else:
            # A market order without a reference price was refused, so one of the two is set.
            price = order.price if order.price is not None else facts.reference or Decimal(0)
            self._pending[order.client_order_id] = _Pending(order, order.quantity, price, reduces)
            if not reduces:
                self._pending_notional += order.quantity * price

    def _forget_old(self, now: float) -> None:
        window = self.limits.duplicate_window_seconds
        recent, queue = self._recent, self._recent_order
        while queue and (window is None or now - queue[0][0] >= window):
            at, fingerprint = queue.popleft()
            if recent.get(fingerprint) == at:
                del recent[fingerprint]

    # --- after the order left -------------------------------------------------------------------

    def filled(self, client_order_id: str, quantity: Decimal) -> Decimal:
        """Release the pending exposure of a fill; return the quantity still pending.

        A filled order is still remembered for the duplicate check: the same order again within the
        window is the duplicate the check is for. Raises UnknownOrderError for an id that is not
        pending, ConfigError for a quantity <= 0 or larger than what is pending.
        """
        if not isinstance(client_order_id, str):
            raise ConfigTypeError(f"client_order_id must be a str, got {client_order_id!r}")
        amount = check_amount("quantity", quantity)
        with self._lock:
            entry = self._pending_entry(client_order_id)
            if not 0 < amount <= entry.remaining:
                raise ConfigError(f"fill quantity must be in (0, {entry.remaining}], got {quantity!r}")
            computed(self._take, entry, amount)
            if entry.remaining == 0:
                self._drop(client_order_id, forget=False)
            return entry.remaining

    def cancelled(self, client_order_id: str) -> None:
        """Release all pending exposure of an order and forget it; UnknownOrderError for an unknown id."""
        if not isinstance(client_order_id, str):
            raise ConfigTypeError(f"client_order_id must be a str, got {client_order_id!r}")
        with self._lock:
            self._drop(client_order_id)

    def released(self, order: Order) -> None:
        """Forget an accepted order that never reached the broker (or that it refused): no pending
        exposure, no duplicate memory, so a corrected or retried send passes. Its rate permits stay
        spent (the attempt was a message)."""
        with self._lock:
            if order.client_order_id is not None and order.client_order_id in self._pending:
                self._drop(order.client_order_id)
            elif order.client_order_id is None:
                self._recent.pop(order.fingerprint, None)
                count, since = self._untracked.get((order.symbol, order.side), (0, 0.0))
                if count > 1:
                    self._untracked[(order.symbol, order.side)] = (count - 1, since)
                else:
                    self._untracked.pop((order.symbol, order.side), None)

    def unknown(self, order: Order, why: str) -> None:
        """Mark an accepted order whose send failed as perhaps placed: it stays counted until the
        application reports it filled, cancelled or rejected."""
        with self._lock:
            entry = self._pending.get(order.client_order_id or "")
            if entry is not None:
                entry.unknown = why

    def _pending_entry(self, client_order_id: str) -> _Pending:
        entry = self._pending.get(client_order_id)
        if entry is None:
            raise UnknownOrderError(client_order_id)
        return entry

    def _take(self, entry: _Pending, quantity: Decimal) -> None:
        """Take ``quantity`` off ``entry`` and its exposure off the pending total. Lock held; call it
        through :func:`~circuit_breakers.trading.rules.computed`, so that a fill or cancel reported
        from a thread with a precision of 3 neither rounds what is still working nor leaves exposure
        counted (or uncounted) once released."""
        entry.remaining -= quantity
        if not entry.reduces:
            self._pending_notional -= quantity * entry.price

    def _drop(self, client_order_id: str, *, forget: bool = True) -> None:
        """Stop counting a pending order and, with ``forget``, its duplicate memory too (a cancelled or
        rejected order may be sent again). Lock held; UnknownOrderError if not pending."""
        entry = self._pending_entry(client_order_id)
        computed(self._take, entry, entry.remaining)
        del self._pending[client_order_id]
        if forget:
            self._recent.pop(entry.order.fingerprint, None)

    def record_message(self) -> bool:
        """Count a cancel or modify against the message limit; False (not counted) when it is reached."""
        return True if self._messages is None else self._messages.try_acquire()

    # --- restricted list ---------------------------------------------------------------------------

    def restrict(self, symbols: Iterable[str]) -> None:
        """Add symbols to the restricted list."""
        items = _checked_symbols(symbols)
        with self._lock:
            self._restricted.update((symbol.casefold(), symbol) for symbol in items)

    def unrestrict(self, symbols: Iterable[str]) -> None:
        """Remove symbols from the restricted list (absent ones are ignored)."""
        items = _checked_symbols(symbols)
        with self._lock:
            for symbol in items:
                self._restricted.pop(symbol.casefold(), None)

    def status(self) -> Dict[str, Any]:
        """Restricted symbols, pending orders and exposure, and the message window."""
        with self._lock:
            status: Dict[str, Any] = {
                "restricted_symbols": sorted(self._restricted.values()),
                "pending_orders": len(self._pending),
                "pending_notional": self._pending_notional,
                "remembered_orders": len(self._recent),
                "unknown_orders": {key: entry.unknown for key, entry in self._pending.items() if entry.unknown},
                "untracked_orders": sum(count for count, _ in self._untracked.values()),
                "decisions": dict(self._decisions),
            }
        if self._messages is not None:
            status["messages"] = self._messages.status()["limits"][0]
        return status


def _checked_symbols(symbols: Iterable[str]) -> List[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    return [check_symbol("symbols", item) for item in symbols]
