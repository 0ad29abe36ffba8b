"""The trading rules as pure functions: figures and limits in, a Verdict out. No clock, no lock, no I/O."""

from __future__ import annotations

import decimal
import enum
import functools
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Callable, NamedTuple, Optional, Tuple, TypeVar

from circuit_breakers.trading.config import TradingBreakerConfig

_HUNDRED = Decimal(100)
_PLACES = Decimal("0.0001")
_ABSURD_PCT = Decimal("1e20")  # a share this large trips whatever the limit
_CENTS = Decimal("0.01")
CONTEXT = decimal.Context(
    prec=28,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
"""The context the rules compute in, whatever the calling thread's (a precision of 3, or Inexact
trapped, would otherwise make a reading fail instead of engaging what it should)."""

T = TypeVar("T")
_EMAX, _EMIN = CONTEXT.Emax, CONTEXT.Emin
_INEXACT, _ROUNDED, _HALF_EVEN = decimal.Inexact, decimal.Rounded, decimal.ROUND_HALF_EVEN


def usual_context() -> bool:
    """Whether the calling thread's decimal context computes as :data:`CONTEXT` does: the same
    precision, rounding and exponent range, and neither Inexact nor Rounded trapped (with figures
    bounded as readings and orders are, no other signal can arise). The usual case, looked at in a
    few tenths of a microsecond; where it is not, callers switch to CONTEXT (about 1 us)."""
    context = decimal.getcontext()
    traps = context.traps
    return (
        context.prec == 28
        and context.rounding == _HALF_EVEN
        and context.Emax >= _EMAX
        and context.Emin <= _EMIN
        and not traps[_INEXACT]
        and not traps[_ROUNDED]
    )


def computed(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)``, in :data:`CONTEXT` unless the calling thread's context computes alike."""
    if usual_context():
        return func(*args)
    with decimal.localcontext(CONTEXT):
        return func(*args)


def shown(percent: Decimal) -> Decimal:
    """A percentage as messages show it: two decimal places (the figure judged keeps all of them)."""
    return percent.quantize(_CENTS)


def as_warning(name: str, verdict: Verdict, config: TradingBreakerConfig) -> str:
    """What a warning says when the figure went straight past the limit: the warning level it crossed."""
    if verdict.level is not Level.TRIP or verdict.value is None:
        return verdict.message
    value = shown(verdict.value)
    if name == "daily_loss":
        return f"P&L {value}% <= warning {shown(config.daily_loss_warning_pct)}%"
    if name == "max_drawdown":
        return f"drawdown {value}% <= warning {shown(config.drawdown_warning_pct)}%"
    if name == "position_concentration":
        return f"position {value}% > warning {shown(config.position_warning_pct)}%"
    return verdict.message


def _worse_down(value: Decimal) -> Decimal:
    """Round a computed loss figure to 4 places, towards the more negative (the safe side)."""
    return value.quantize(_PLACES, rounding=ROUND_FLOOR)


class Level(enum.IntEnum):
    """How bad a figure is."""

    OK = 0
    WARN = 1
    TRIP = 2


class Verdict(NamedTuple):
    """A rule's answer: the level, the figure it judged, and a message naming value and limit.

    A NamedTuple rather than a frozen dataclass: one is made for every order checked, and it is
    the cheapest immutable record CPython builds.
    """

    level: Level
    value: Optional[Decimal]
    message: str


def daily_loss(pnl_pct: Decimal, config: TradingBreakerConfig) -> Verdict:
    """Trip at or below the daily loss limit; warn at or below the warning level."""
    if pnl_pct <= config.daily_loss_limit_pct:
        return Verdict(Level.TRIP, pnl_pct, f"P&L {shown(pnl_pct)}% <= limit {shown(config.daily_loss_limit_pct)}%")
    if pnl_pct <= config.daily_loss_warning_pct:
        return Verdict(Level.WARN, pnl_pct, f"P&L {shown(pnl_pct)}% <= warning {shown(config.daily_loss_warning_pct)}%")
    return Verdict(Level.OK, pnl_pct, f"P&L {shown(pnl_pct)}%")


def drawdown(drawdown_pct: Decimal, config: TradingBreakerConfig) -> Verdict:
    """Trip (engage the kill switch) at or below the drawdown limit; warn at or below the warning level."""
    if drawdown_pct <= config.max_drawdown_pct:
        message = f"drawdown {shown(drawdown_pct)}% <= limit {shown(config.max_drawdown_pct)}%"
        return Verdict(Level.TRIP, drawdown_pct, message)
    if drawdown_pct <= config.drawdown_warning_pct:
        message = f"drawdown {shown(drawdown_pct)}% <= warning {shown(config.drawdown_warning_pct)}%"
        return Verdict(Level.WARN, drawdown_pct, message)
    return Verdict(Level.OK, drawdown_pct, f"drawdown {shown(drawdown_pct)}%")


def drawdown_from_peak(value: Decimal, peak: Decimal) -> Decimal:
    """Percent below ``peak`` (0 at or above it, and when there is no positive peak yet)."""
    if peak <= 0 or value >= peak:
        return Decimal(0)
    return _worse_down((value / peak - 1) * _HUNDRED)


def rebased_drawdown(drawdown_pct: Decimal, baseline_pct: Decimal) -> Decimal:
    """A drawdown re-measured from the point where it stood at ``baseline_pct`` (both percent, <= 0)."""
    if not -_HUNDRED < baseline_pct < 0:
        return drawdown_pct
    return min(_worse_down(((_HUNDRED + drawdown_pct) / (_HUNDRED + baseline_pct) - 1) * _HUNDRED), Decimal(0))


@functools.lru_cache(maxsize=8)
def _moments(samples: Tuple[Decimal, ...]) -> Tuple[Decimal, Decimal]:
    """Mean and sample standard deviation of at least two samples. Remembered for the last few
    sample tuples: the returns change once a day, the readings come every few seconds. Computed in a
    context of its own, so that what is remembered does not depend on the calling thread's."""
    with decimal.localcontext(CONTEXT):
        mean = sum(samples, Decimal(0)) / len(samples)
        variance = sum(((x - mean) ** 2 for x in samples), Decimal(0)) / (len(samples) - 1)
        return +mean, variance.sqrt()


def volatility(today_pct: Decimal, returns: Optional[Sequence[Decimal]], config: TradingBreakerConfig) -> Verdict:
    """Trip when today's return lies more than the threshold in sample standard deviations from the mean.

    Returns OK with a message saying why when it cannot judge: no returns method, too few samples,
    or zero variance.
    """
    if returns is None:
        return Verdict(Level.OK, None, "not evaluated: provider has no get_daily_returns()")
    samples = tuple(returns)[-config.volatility_lookback_days :]
    if len(samples) < config.volatility_min_samples:
        return Verdict(
            Level.OK, None, f"not evaluated: {len(samples)} daily returns, need {config.volatility_min_samples}"
        )
    mean, deviation = _moments(samples)
    if deviation == 0:
        return Verdict(Level.OK, None, "not evaluated: zero variance in daily returns")
    z = ((today_pct - mean) / deviation).quantize(_PLACES)
    z_display = z.quantize(Decimal("0.01"))
    if abs(z) > config.volatility_std_threshold:
        return Verdict(
            Level.TRIP,
            z,
            f"today {shown(today_pct)}% is {z_display} std devs from the mean "
            f"(limit {shown(config.volatility_std_threshold)})",
        )
    return Verdict(Level.OK, z, f"today {shown(today_pct)}% is {z_display} std devs from the mean")


def concentration(
    current_pct: Decimal, proposed_value: Decimal, total_value: Decimal, config: TradingBreakerConfig
) -> Verdict:
    """Judge the position share (by absolute size) after adding ``proposed_value`` (negative for a sale).

    A total value <= 0 always trips.
    """
    if total_value <= 0:
        return Verdict(Level.TRIP, None, f"total value {total_value} <= 0: cannot judge concentration")
    share = current_pct + proposed_value / total_value * _HUNDRED
    if share.copy_abs() >= _ABSURD_PCT:  # quantizing it would overflow the context's precision
        return Verdict(Level.TRIP, share.copy_abs(), f"position {share:.2E}% > limit {shown(config.max_position_pct)}%")
    after = share.quantize(_PLACES, rounding=ROUND_CEILING)
    display = after.quantize(_CENTS)
    after = abs(after)  # a short position concentrates risk as much as a long one
    if after > config.max_position_pct:
        return Verdict(Level.TRIP, after, f"position {display}% > limit {shown(config.max_position_pct)}%")
    if after > config.position_warning_pct:
        return Verdict(Level.WARN, after, f"position {display}% > warning {shown(config.position_warning_pct)}%")
    return Verdict(Level.OK, after, f"position {display}%")
