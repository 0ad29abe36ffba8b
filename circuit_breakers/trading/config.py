"""TradingBreakerConfig: the limits of the six trading breakers, validated at construction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from circuit_breakers.config import (
    ExceptionMatcher,
    check_bool,
    check_int,
    check_matchers,
    check_number,
    to_decimal,
)
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.outage import is_outage

_DECIMAL_FIELDS = (
    "daily_loss_limit_pct",
    "daily_loss_warning_pct",
    "max_drawdown_pct",
    "drawdown_warning_pct",
    "max_position_pct",
    "position_warning_pct",
    "volatility_std_threshold",
)


@dataclass(frozen=True)
class TradingBreakerConfig:
    """Limits of the trading breakers. Percentages are Decimal percent: ``Decimal("-2.0")`` is -2 %.

    Decimal fields accept Decimal, int and numeric str (converted exactly) and reject floats, NaN
    and infinities. Cross-field rules: loss and drawdown limits are negative and each warning level
    is less severe than its limit (``-1.5`` warns before ``-2.0`` halts); position limits lie in
    (0, 100] with the warning below the limit; ``max_orders_per_hour >= max_orders_per_minute``.

    Beyond the original API:

    - ``trading_day_timezone`` / ``trading_day_reset_time``: when the trading day (and with it the
      daily-loss and volatility halts) rolls over; default midnight in New York.
    - ``connection_errors``: exceptions leaving ``trade_guard`` that count as connection failures
      (types or predicates). The default, :func:`~circuit_breakers.is_outage`, counts timeouts,
      transport errors and HTTP 5xx, 408 and 429 (requests, httpx, alpaca-py, ccxt, python-binance)
      and not a refused order (any other 4xx); the library's own refusals never count.
    - ``stale_after_seconds``: while monitoring, trading blocks when the last good provider reading
      is older than this (default ``3 * check_interval_seconds + connection_timeout_seconds``).
    - ``volatility_min_samples``: completed daily returns needed before the volatility rule applies.
    - ``reset_max_attempts`` / ``reset_lockout_seconds``: wrong kill-switch keys in a row before
      further attempts are refused, and for how long (0 attempts disables the lockout).
    """

    daily_loss_limit_pct: Decimal = Decimal("-2.0")
    daily_loss_warning_pct: Decimal = Decimal("-1.5")
    max_drawdown_pct: Decimal = Decimal("-10.0")
    drawdown_warning_pct: Decimal = Decimal("-7.0")
    max_position_pct: Decimal = Decimal("20.0")
    position_warning_pct: Decimal = Decimal("15.0")
    volatility_std_threshold: Decimal = Decimal("3.0")
    volatility_lookback_days: int = 20
    max_orders_per_minute: int = 10
    max_orders_per_hour: int = 100
    connection_failure_threshold: int = 3
    connection_timeout_seconds: float = 30
    check_interval_seconds: float = 1.0
    cooldown_seconds: float = 300
    auto_recovery: bool = False
    require_manual_reset: bool = True
    trading_day_timezone: str = "America/New_York"
    trading_day_reset_time: dt.time = dt.time(0, 0)
    connection_errors: Tuple[ExceptionMatcher, ...] = (is_outage,)
    stale_after_seconds: Optional[float] = None
    volatility_min_samples: int = 5
    reset_max_attempts: int = 5
    reset_lockout_seconds: float = 300

    def __post_init__(self) -> None:
        for name in _DECIMAL_FIELDS:
            object.__setattr__(self, name, to_decimal(name, getattr(self, name)))
        for limit, warning in (
            ("daily_loss_limit_pct", "daily_loss_warning_pct"),
            ("max_drawdown_pct", "drawdown_warning_pct"),
        ):
            limit_value, warning_value = getattr(self, limit), getattr(self, warning)
            if limit_value >= 0:
                raise ConfigError(f"{limit} must be negative, got {limit_value}")
            if not limit_value < warning_value < 0:
                raise ConfigError(
                    f"{warning} must lie between {limit} ({limit_value}) and 0 to warn before the limit, "
                    f"got {warning_value}"
                )
        if not 0 < self.max_position_pct <= 100:
            raise ConfigError(f"max_position_pct must be in (0, 100], got {self.max_position_pct}")
        if not 0 < self.position_warning_pct < self.max_position_pct:
            raise ConfigError(
                f"position_warning_pct must be in (0, max_position_pct={self.max_position_pct}), "
                f"got {self.position_warning_pct}"
            )
        if self.volatility_std_threshold <= 0:
            raise ConfigError(f"volatility_std_threshold must be > 0, got {self.volatility_std_threshold}")
        check_int("volatility_lookback_days", self.volatility_lookback_days, 2)
        check_int("volatility_min_samples", self.volatility_min_samples, 2)
        if self.volatility_min_samples > self.volatility_lookback_days:
            raise ConfigError(
                f"volatility_min_samples must be <= volatility_lookback_days ({self.volatility_lookback_days}), "
                f"got {self.volatility_min_samples}"
            )
        check_int("max_orders_per_minute", self.max_orders_per_minute, 1)
        check_int("max_orders_per_hour", self.max_orders_per_hour, 1)
        if self.max_orders_per_hour < self.max_orders_per_minute:
            raise ConfigError(
                f"max_orders_per_hour must be >= max_orders_per_minute ({self.max_orders_per_minute}), "
                f"got {self.max_orders_per_hour}"
            )
        check_int("connection_failure_threshold", self.connection_failure_threshold, 1)
        check_number("connection_timeout_seconds", self.connection_timeout_seconds)
        # The monitor waits this long between polls: a wait longer than a day is a mistake (and one past
        # the platform's longest timeout would fail only when the thread first waits).
        check_number("check_interval_seconds", self.check_interval_seconds, maximum=86_400.0)
        check_number("cooldown_seconds", self.cooldown_seconds, inclusive=True)
        if self.stale_after_seconds is not None:
            check_number("stale_after_seconds", self.stale_after_seconds)
        check_bool("auto_recovery", self.auto_recovery)
        check_bool("require_manual_reset", self.require_manual_reset)
        check_int("reset_max_attempts", self.reset_max_attempts, 0)
        check_number("reset_lockout_seconds", self.reset_lockout_seconds)
        if not isinstance(self.trading_day_timezone, str):
            raise ConfigTypeError(f"trading_day_timezone must be an IANA zone name, got {self.trading_day_timezone!r}")
        try:
            ZoneInfo(self.trading_day_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"trading_day_timezone is not a known zone: {self.trading_day_timezone!r}") from None
        if not isinstance(self.trading_day_reset_time, dt.time) or self.trading_day_reset_time.tzinfo is not None:
            raise ConfigTypeError(
                f"trading_day_reset_time must be a naive datetime.time, got {self.trading_day_reset_time!r}"
            )
        object.__setattr__(self, "connection_errors", check_matchers("connection_errors", self.connection_errors))

    @property
    def zone(self) -> ZoneInfo:
        """The trading day's time zone."""
        return ZoneInfo(self.trading_day_timezone)

    @property
    def stale_after(self) -> float:
        """Seconds after which the last good reading is too old to trade on."""
        if self.stale_after_seconds is not None:
            return float(self.stale_after_seconds)
        return 3 * float(self.check_interval_seconds) + float(self.connection_timeout_seconds)

    def day_start(self, day: dt.date) -> dt.datetime:
        """The instant (UTC) at which the trading day ``day`` begins, at the reset time in the zone."""
        return dt.datetime.combine(day, self.trading_day_reset_time, tzinfo=self.zone).astimezone(dt.timezone.utc)

    def trading_day(self, now: dt.datetime) -> dt.date:
        """The trading day that the wall time ``now`` (timezone-aware) belongs to."""
        local = now.astimezone(self.zone)
        reset = self.trading_day_reset_time
        since_midnight = dt.timedelta(hours=local.hour, minutes=local.minute, seconds=local.second)
        boundary = dt.timedelta(hours=reset.hour, minutes=reset.minute, seconds=reset.second)
        return local.date() if since_midnight >= boundary else local.date() - dt.timedelta(days=1)
