"""The PortfolioProvider protocol, and the checked reading the monitor takes from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional, Protocol, Tuple, runtime_checkable


@runtime_checkable
class PortfolioProvider(Protocol):
    """Where the trading breakers read the portfolio. Every method is synchronous and may block.

    Percentages are Decimal percent (``Decimal("-1.2")`` is -1.2 %). The five methods below are
    required. Optional methods, looked up by name (leave out what your broker cannot tell):

    - ``get_daily_returns() -> Sequence[Decimal]``: completed daily returns in percent, oldest
      first, today excluded; feeds the volatility breaker (without it, volatility is not judged).
    - ``get_reference_price(symbol) -> Decimal``: the price a collar and a market order are valued
      at (without it, market orders and collared symbols are refused).
    - ``get_position_quantity(symbol) -> Decimal``: signed position (long > 0); needed to tell a
      reducing order while REDUCING (without it, every order is refused then).
    - ``get_gross_exposure() -> Decimal``: needed with ``OrderLimits.max_gross_exposure``.
    - ``get_working_quantity(symbol, side) -> Decimal``: what the broker still works on a symbol
      and side; lets reduce-only count orders sent without a ``client_order_id``.
    """

    def get_total_value(self) -> Decimal: ...

    def get_daily_pnl(self) -> Decimal: ...

    def get_daily_pnl_pct(self) -> Decimal: ...

    def get_max_drawdown(self) -> Decimal: ...

    def get_position_concentration(self, symbol: str) -> Decimal: ...


REQUIRED_METHODS = (
    "get_total_value",
    "get_daily_pnl",
    "get_daily_pnl_pct",
    "get_max_drawdown",
    "get_position_concentration",
)


def missing_methods(provider: object) -> Tuple[str, ...]:
    """The required PortfolioProvider methods ``provider`` lacks (or has but cannot call)."""
    return tuple(name for name in REQUIRED_METHODS if not callable(getattr(provider, name, None)))


_HUGE = 21  # exponents: no desk's money or percentage comes near 1e21, and arithmetic beyond overflows
_TINY = 40  # a non-zero figure below 1e-40 is no amount either; divided by, it overflows


class BadReading(Exception):
    """A provider answered with something that is not a usable number."""


def checked_decimal(what: str, value: object) -> Decimal:
    """Return ``value`` if it is a finite Decimal or an int (converted exactly); raise BadReading otherwise.

    Floats are refused: a provider that returns floats has already lost cents.
    """
    if type(value) is Decimal and value.is_finite() and -_TINY < value.adjusted() < _HUGE:  # the common case
        return value
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise BadReading(f"{what} returned {value!r} ({type(value).__name__}), expected Decimal")
    result = Decimal(value)
    if not result.is_finite():
        raise BadReading(f"{what} returned {value!r}, expected a finite Decimal")
    if result and not -_TINY < result.adjusted() < _HUGE:
        raise BadReading(f"{what} returned {value!r}, out of range (below 1e21 in size, above 1e-40 unless zero)")
    return result


@dataclass(frozen=True)
class Reading:
    """One checked snapshot of the provider."""

    total_value: Decimal
    daily_pnl: Decimal
    daily_pnl_pct: Decimal
    max_drawdown_pct: Decimal
    daily_returns: Optional[Tuple[Decimal, ...]]


class ReturnsSeen:
    """The last returns tuple a provider gave, with its checked tail, so that the same tuple (returns
    change once a day, readings come every few seconds) is not checked again. Only a tuple is
    remembered: it and the Decimals in it cannot change. The pair is one attribute, replaced whole,
    so threads reading at once never pair one tuple with another's check."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: Optional[Tuple[Tuple[object, ...], Tuple[Decimal, ...]]] = None


def take_reading(provider: PortfolioProvider, lookback: int, seen: Optional[ReturnsSeen] = None) -> Reading:
    """Read and check every figure the rules need. Blocks on the provider; raises what it raises or BadReading.

    ``seen``: where to remember the last returns tuple checked (see :class:`ReturnsSeen`).
    """
    returns: Optional[Tuple[Decimal, ...]] = None
    get_returns = getattr(provider, "get_daily_returns", None)
    if get_returns is not None:
        raw = get_returns()
        last = None if seen is None else seen.last
        if last is not None and raw is last[0]:
            returns = last[1]
        else:
            if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
                raise BadReading(f"get_daily_returns returned {raw!r}, expected a sequence of Decimal")
            returns = tuple(checked_decimal("get_daily_returns", item) for item in raw[-lookback:])
            if seen is not None and type(raw) is tuple:
                seen.last = (raw, returns)
    return Reading(
        total_value=checked_decimal("get_total_value", provider.get_total_value()),
        daily_pnl=checked_decimal("get_daily_pnl", provider.get_daily_pnl()),
        daily_pnl_pct=checked_decimal("get_daily_pnl_pct", provider.get_daily_pnl_pct()),
        max_drawdown_pct=checked_decimal("get_max_drawdown", provider.get_max_drawdown()),
        daily_returns=returns,
    )
