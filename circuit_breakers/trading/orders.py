"""Orders and the pre-trade limits they are checked against: Order, OrderLimits, OrderDecision.

:class:`OrderDecision` and :class:`RejectReason` live in :mod:`circuit_breakers.types` (the exceptions
carry them) and are re-exported here with the rest of the order vocabulary.

The checks follow what SEC 15c3-5 (c)(1), MiFID II RTS 6 art. 15 and the FIA's automated-trading
guidance ask of an order before it leaves: maximum value and size, price collars, duplicates,
restricted instruments, exposure counting orders already sent, and message rates.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Dict, FrozenSet, Optional, Tuple, Union

from circuit_breakers.config import check_int, check_number, to_decimal
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.types import OrderDecision, RejectReason


class Side(str, enum.Enum):
    """Order side. ``Side("buy")``, ``Side("BUY")`` and ``Side(" Sell ")`` all work (case and
    surrounding spaces ignored)."""

    BUY = "buy"
    SELL = "sell"

    @classmethod
    def _missing_(cls, value: object) -> Optional[Side]:
        if isinstance(value, str):
            spelled = value.strip().lower()
            for side in cls:
                if side.value == spelled:
                    return side
        return None


class TradingState(str, enum.Enum):
    """What the desk may do: everything, only reduce positions, or nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


_LARGEST = Decimal("1e15")  # a quantity or price at or above this is a mistake, and its products overflow
_SMALLEST = Decimal("1e-12")
_LARGEST_AMOUNT = Decimal("1e21")


def check_amount(name: str, value: object, *, signed: bool = False) -> Decimal:
    """``value`` as a Decimal amount of money: below 1e21 in size, with at most 18 decimal places.

    ``signed`` allows negative amounts (a sale, a withdrawal). Raises ConfigTypeError / ConfigError
    naming the field and the value: an amount like ``9E+999999`` would overflow later arithmetic.
    """
    number = to_decimal(name, value)
    if not signed and number < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    if number.copy_abs() >= _LARGEST_AMOUNT or (number and number.as_tuple().exponent < -18):  # type: ignore[operator]
        raise ConfigError(f"{name} must be below 1e21 in size with at most 18 decimal places, got {value!r}")
    return number


def _positive(name: str, value: object) -> Decimal:
    number = to_decimal(name, value)
    if number <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    if not _SMALLEST <= number < _LARGEST:
        raise ConfigError(f"{name} must lie in [1e-12, 1e15), got {value!r}")
    return number


def _optional_positive(name: str, value: object) -> Optional[Decimal]:
    return None if value is None else _positive(name, value)


@dataclass(frozen=True)
class Order:
    """An order about to be sent. ``price=None`` is a market order.

    ``quantity`` and ``price`` are Decimal (ints and numeric strs converted exactly; floats
    refused). Raises ConfigError / ConfigTypeError naming the field.

    >>> Order("SPY", Side.BUY, Decimal("10"), Decimal("512.30")).notional()
    Decimal('5123.00')
    """

    symbol: str
    side: Side
    quantity: Decimal
    price: Optional[Decimal] = None
    client_order_id: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str):
            raise ConfigTypeError(f"symbol must be a str, got {self.symbol!r}")
        check_symbol("symbol", self.symbol)
        if not isinstance(self.side, Side):
            raise ConfigTypeError(f"side must be a Side (Side.BUY, Side.SELL or Side(text)), got {self.side!r}")
        object.__setattr__(self, "quantity", _positive("quantity", self.quantity))
        object.__setattr__(self, "price", _optional_positive("price", self.price))
        if self.client_order_id is not None:
            if not isinstance(self.client_order_id, str):
                raise ConfigTypeError(f"client_order_id must be a str or None, got {self.client_order_id!r}")
            if not self.client_order_id:
                raise ConfigError("client_order_id must not be empty")

    def notional(self, reference_price: Optional[Decimal] = None) -> Decimal:
        """quantity x price, or x ``reference_price`` for a market order; ConfigError if neither is known."""
        price = self.price if self.price is not None else reference_price
        if price is None:
            raise ConfigError(f"market order for {self.symbol} has no reference price to value it")
        return self.quantity * price

    @property
    def fingerprint(self) -> Tuple[str, Side, Decimal, Optional[Decimal]]:
        """What makes two orders duplicates: symbol, side, quantity and price."""
        return (self.symbol, self.side, self.quantity, self.price)


ACCEPTED = OrderDecision(True)


def _collar(owner: Union[SymbolLimits, OrderLimits]) -> None:
    """Validate price_collar_pct / price_collar_bps (at most one) and keep the collar in percent."""
    pct = _optional_positive("price_collar_pct", owner.price_collar_pct)
    bps = _optional_positive("price_collar_bps", owner.price_collar_bps)
    if pct is not None and bps is not None:
        raise ConfigError(f"give price_collar_pct or price_collar_bps, not both (got {pct}% and {bps} bps)")
    object.__setattr__(owner, "price_collar_bps", bps)
    object.__setattr__(owner, "price_collar_pct", bps / _BPS_PER_PCT if bps is not None else pct)


@dataclass(frozen=True)
class SymbolLimits:
    """Per-symbol overrides of the order-size and collar limits (None keeps the desk-wide value).

    The collar is given in percent or in basis points (``price_collar_bps=50`` is 0.5 %), not both.
    """

    max_notional: Optional[Decimal] = None
    max_quantity: Optional[Decimal] = None
    price_collar_pct: Optional[Decimal] = None
    price_collar_bps: Optional[Decimal] = None

    def __post_init__(self) -> None:
        for name in ("max_notional", "max_quantity"):
            object.__setattr__(self, name, _optional_positive(name, getattr(self, name)))
        _collar(self)


_REDUCIBLE = ("daily_loss", "volatility")
_BPS_PER_PCT = Decimal(100)


@dataclass(frozen=True)
class OrderLimits:
    """Pre-trade limits, each off when None. Validated at construction; money and percent are Decimal.

    - ``max_notional`` / ``max_quantity``: largest order value / size.
    - ``price_collar_pct`` (or ``price_collar_bps``, not both): a limit price further than this
      from the reference price (provider method ``get_reference_price(symbol)``) is refused; with
      a collar on, an order whose reference price is unknown is refused (fail closed). Basis
      points are kept as the exact percent (``price_collar_bps=25`` sets ``price_collar_pct`` 0.25).
    - Symbols are compared as given (case matters, as at most brokers); surrounding whitespace is
      refused. The restricted list alone ignores case: a restricted ``"SPY"`` also stops ``"spy"``.
    - ``duplicate_window_seconds``: the same symbol, side, quantity and price again within this
      many seconds is refused.
    - ``restricted_symbols``: never traded (changeable at run time on the breakers).
    - ``max_gross_exposure``: provider ``get_gross_exposure()`` plus orders accepted and not yet
      filled or cancelled may not exceed it; without that provider method every order is refused.
    - ``max_messages_per_minute``: orders, cancels and modifies together.
    - ``per_symbol``: :class:`SymbolLimits` overriding the size and collar limits per symbol.
    - ``reducing_breakers``: the halts that leave the desk REDUCING (risk-reducing orders still
      pass) rather than HALTED; remove a name to make its halt total. A reducing order counts
      every order still working on its symbol and side (sent in any state): it needs a
      ``client_order_id`` (so that fills can be reported), and is refused after an order on the
      same symbol and side went out without one in the last day, unless the provider implements
      ``get_working_quantity(symbol, side)`` (the broker's working quantity, which is then used).
    - ``max_pending_orders``: orders with a ``client_order_id`` remembered until filled or
      cancelled; past this many, new ones are refused (memory stays bounded).
    """

    max_notional: Optional[Decimal] = None
    max_quantity: Optional[Decimal] = None
    price_collar_pct: Optional[Decimal] = None
    duplicate_window_seconds: Optional[float] = None
    restricted_symbols: Collection[str] = frozenset()  # any collection of str: kept as a frozenset
    max_gross_exposure: Optional[Decimal] = None
    max_messages_per_minute: Optional[int] = None
    per_symbol: Mapping[str, SymbolLimits] = field(default_factory=dict)
    reducing_breakers: Collection[str] = frozenset(_REDUCIBLE)
    price_collar_bps: Optional[Decimal] = None
    max_pending_orders: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_notional", "max_quantity", "max_gross_exposure"):
            object.__setattr__(self, name, _optional_positive(name, getattr(self, name)))
        _collar(self)
        if self.duplicate_window_seconds is not None:
            seconds = check_number("duplicate_window_seconds", self.duplicate_window_seconds)
            object.__setattr__(self, "duplicate_window_seconds", seconds)
        if self.max_messages_per_minute is not None:
            check_int("max_messages_per_minute", self.max_messages_per_minute, 1)
        check_int("max_pending_orders", self.max_pending_orders, 1)
        object.__setattr__(self, "restricted_symbols", _symbols("restricted_symbols", self.restricted_symbols))
        reducing = _symbols("reducing_breakers", self.reducing_breakers)
        if not reducing <= set(_REDUCIBLE):
            raise ConfigError(f"reducing_breakers may only name {', '.join(_REDUCIBLE)}, got {sorted(reducing)}")
        object.__setattr__(self, "reducing_breakers", reducing)
        if not isinstance(self.per_symbol, Mapping):
            raise ConfigTypeError(f"per_symbol must map symbols to SymbolLimits, got {self.per_symbol!r}")
        overrides: Dict[str, SymbolLimits] = {}
        for symbol, limits in self.per_symbol.items():
            if not isinstance(limits, SymbolLimits):
                raise ConfigTypeError(f"per_symbol must map str to SymbolLimits, got {symbol!r}: {limits!r}")
            check_symbol("per_symbol", symbol)
            overrides[symbol] = limits
        object.__setattr__(self, "per_symbol", MappingProxyType(overrides))

    def __hash__(self) -> int:
        return hash((self.max_notional, self.max_quantity, self.price_collar_pct, self.restricted_symbols))

    def for_symbol(self, symbol: str) -> Tuple[Optional[Decimal], Optional[Decimal], Optional[Decimal]]:
        """(max_notional, max_quantity, price_collar_pct) for ``symbol``, overrides applied."""
        override = self.per_symbol.get(symbol)
        if override is None:
            return self.max_notional, self.max_quantity, self.price_collar_pct
        return (
            override.max_notional if override.max_notional is not None else self.max_notional,
            override.max_quantity if override.max_quantity is not None else self.max_quantity,
            override.price_collar_pct if override.price_collar_pct is not None else self.price_collar_pct,
        )


def _symbols(name: str, value: object) -> FrozenSet[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigTypeError(f"{name} must be a collection of str, got {value!r}")
    items = frozenset(value)
    for item in items:
        check_symbol(name, item)
    return items


def check_symbol(name: str, value: object) -> str:
    """Return ``value`` if it is a non-empty str without surrounding whitespace.

    Raises ConfigTypeError for a non-str, ConfigError otherwise: ``" SPY"`` would slip past a
    restricted ``"SPY"``.
    """
    if not isinstance(value, str):
        raise ConfigTypeError(f"{name} must hold str symbols, got {value!r}")
    if not value or value != value.strip():
        raise ConfigError(f"{name}: a symbol must be non-empty, without surrounding whitespace, got {value!r}")
    return value


__all__ = [
    "ACCEPTED",
    "Order",
    "OrderDecision",
    "OrderLimits",
    "RejectReason",
    "Side",
    "SymbolLimits",
    "TradingState",
    "check_amount",
    "check_symbol",
]
