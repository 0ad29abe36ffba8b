"""Frozen, validated configuration, and the coercion rules for numbers and money in one place.

Every check runs at construction and raises :class:`~circuit_breakers.errors.ConfigError` (a
``ValueError``) or :class:`~circuit_breakers.errors.ConfigTypeError` (a ``TypeError``) whose message
names the field, the rule and the value. A config object that exists is a valid one.

Money and percentages are :class:`~decimal.Decimal`. :func:`to_decimal` converts ``int`` and
numeric ``str`` exactly and rejects ``float`` (``0.1`` is not one tenth), ``bool``, NaN and
infinities: convert floats yourself, deliberately, with ``Decimal(str(x))``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional, Tuple, Type, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError

logger = logging.getLogger(__name__)

ExceptionMatcher = Union[Type[BaseException], Callable[[BaseException], bool]]
"""An exception type, or a predicate ``(exc) -> bool`` for errors told apart by content."""


def to_decimal(name: str, value: object) -> Decimal:
    """Return ``value`` as a finite Decimal, converting ``int`` and numeric ``str`` exactly.

    Raises ConfigTypeError for floats, bools and other types; ConfigError for NaN, infinities and
    strings that are not numbers.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        hint = " (pass Decimal('...') or a str: floats are not exact)" if isinstance(value, float) else ""
        raise ConfigTypeError(f"{name} must be a Decimal, int or numeric str, got {value!r}{hint}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not result.is_finite():
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return result


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) >= ``minimum``; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_number(
    name: str, value: object, *, minimum: float = 0.0, inclusive: bool = False, maximum: Optional[float] = None
) -> float:
    """Return ``value`` as a float if it is a finite real number above ``minimum``; raise otherwise.

    Used for seconds and ratios, where binary floating point is exact enough. ``inclusive`` allows
    ``value == minimum``; ``maximum``, if given, is the largest value allowed (a wait longer than
    the platform's longest timeout would fail only when the thread first waits).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ConfigTypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (OverflowError, ValueError):  # 10**400, Decimal("sNaN")
        raise ConfigError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if number < minimum or (number == minimum and not inclusive):
        rule = ">=" if inclusive else ">"
        raise ConfigError(f"{name} must be {rule} {minimum:g}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be <= {maximum:g}, got {value!r}")
    return number


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool; raise ConfigTypeError otherwise."""
    if not isinstance(value, bool):
        raise ConfigTypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_callable(name: str, value: object) -> None:
    """Raise ConfigTypeError unless ``value`` is callable."""
    if not callable(value):
        raise ConfigTypeError(f"{name} must be callable, got {value!r}")


def check_matchers(name: str, value: object) -> Tuple[ExceptionMatcher, ...]:
    """Return ``value`` as a tuple of exception types and predicates; raise on anything else."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigTypeError(f"{name} must be a tuple of exception types or predicates, got {value!r}")
    items = tuple(value)
    for item in items:
        is_type = isinstance(item, type) and issubclass(item, BaseException)
        if not is_type and (isinstance(item, type) or not callable(item)):
            raise ConfigTypeError(f"{name} items must be exception types or predicates, got {item!r}")
    return items


def compile_matchers(items: Tuple[ExceptionMatcher, ...], *, on_error: bool) -> Callable[[BaseException], bool]:
    """Build a fast ``(exc) -> bool`` from matchers; a predicate that raises is logged and yields ``on_error``."""
    types = tuple(item for item in items if isinstance(item, type))
    predicates = tuple(item for item in items if not isinstance(item, type))
    if not predicates:
        return lambda exc: isinstance(exc, types)

    def matches(exc: BaseException) -> bool:
        if isinstance(exc, types):
            return True
        for predicate in predicates:
            try:
                if predicate(exc):
                    return True
            except Exception:
                logger.exception("exception predicate %r raised; treating %r as matched=%s", predicate, exc, on_error)
                return on_error
        return False

    return matches


_DEFAULT_MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Settings of a :class:`~circuit_breakers.CircuitBreaker`; every field is checked here.

    Tripping: within the last ``failure_window_seconds``, ``failure_threshold`` failures, or a
    failure rate of at least ``failure_rate_threshold`` once ``minimum_calls`` calls were seen.
    Recovery: after the open timeout, up to ``half_open_max_calls`` concurrent trial calls;
    ``success_threshold`` successes close it, any failure re-opens it, and a half-open state that
    has not decided within ``half_open_timeout_seconds`` re-opens. The k-th consecutive trip stays
    open ``min(open_timeout_seconds * backoff_multiplier ** (k - 1), max_backoff_seconds)``;
    ``max_backoff_seconds`` left unset is 300, or the open timeout when that is longer (only a cap
    given below a given open timeout is an error).

    ``failure_exceptions`` say which exceptions are failures; ``excluded_exceptions`` (checked
    first) pass through counting as neither failure nor success. An exception matching neither also
    counts as neither, and so does any ``BaseException`` that is not an ``Exception``, and so do the
    library's own refusals (:data:`circuit_breakers.outage.REFUSALS`) whatever these settings say.
    For a broker call, ``failure_exceptions=(is_outage,)`` counts outages and not refused requests.

    ``daily_loss_limit_pct``, ``max_drawdown_pct`` and ``position_limit`` are kept for
    compatibility with the original API; the generic breaker does not read them (trading limits
    live in :class:`~circuit_breakers.TradingBreakerConfig`).

    >>> CircuitBreakerConfig(failure_threshold=3, open_timeout_seconds=30).failure_threshold
    3
    """

    failure_threshold: int = 5
    failure_rate_threshold: float = 0.5
    success_threshold: int = 3
    failure_window_seconds: float = 60
    open_timeout_seconds: float = 60
    half_open_timeout_seconds: float = 30
    exponential_backoff: bool = True
    max_backoff_seconds: Optional[float] = None
    backoff_multiplier: float = 2.0
    daily_loss_limit_pct: Decimal = Decimal("-2.0")
    max_drawdown_pct: Decimal = Decimal("-10.0")
    position_limit: Decimal = Decimal("0.20")
    minimum_calls: int = 10
    half_open_max_calls: int = 1
    failure_exceptions: Tuple[ExceptionMatcher, ...] = (Exception,)
    excluded_exceptions: Tuple[ExceptionMatcher, ...] = field(default=())

    def __post_init__(self) -> None:
        check_int("failure_threshold", self.failure_threshold, 1)
        check_int("success_threshold", self.success_threshold, 1)
        check_int("minimum_calls", self.minimum_calls, 1)
        check_int("half_open_max_calls", self.half_open_max_calls, 1)
        if check_number("failure_rate_threshold", self.failure_rate_threshold) > 1:
            raise ConfigError(f"failure_rate_threshold must be in (0, 1], got {self.failure_rate_threshold!r}")
        check_bool("exponential_backoff", self.exponential_backoff)
        # Seconds and ratios are stored as floats, whatever number type they were given as.
        if self.max_backoff_seconds is None:  # unset: 300 s, or the open timeout if that is longer
            timeout = check_number("open_timeout_seconds", self.open_timeout_seconds)
            object.__setattr__(self, "max_backoff_seconds", max(_DEFAULT_MAX_BACKOFF, timeout))
        for name in (
            "failure_rate_threshold",
            "failure_window_seconds",
            "open_timeout_seconds",
            "half_open_timeout_seconds",
            "max_backoff_seconds",
        ):
            object.__setattr__(self, name, check_number(name, getattr(self, name)))
        multiplier = check_number("backoff_multiplier", self.backoff_multiplier, minimum=1.0, inclusive=True)
        object.__setattr__(self, "backoff_multiplier", multiplier)
        if self.backoff_cap < self.open_timeout_seconds:  # both given, and they contradict
            raise ConfigError(
                f"max_backoff_seconds must be >= open_timeout_seconds ({self.open_timeout_seconds!r}), "
                f"got {self.max_backoff_seconds!r}"
            )
        for name in ("daily_loss_limit_pct", "max_drawdown_pct", "position_limit"):
            object.__setattr__(self, name, to_decimal(name, getattr(self, name)))
        for name in ("failure_exceptions", "excluded_exceptions"):
            object.__setattr__(self, name, check_matchers(name, getattr(self, name)))

    @property
    def backoff_cap(self) -> float:
        """``max_backoff_seconds`` as set after validation (never None)."""
        return float(self.max_backoff_seconds or 0.0)

    def replace(self, **changes: Any) -> CircuitBreakerConfig:
        """Return a copy with ``changes`` applied (and validated); unknown names raise ConfigTypeError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigTypeError(f"CircuitBreakerConfig has no field(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)
