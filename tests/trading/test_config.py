"""TradingBreakerConfig: seed defaults, exact Decimal coercion, cross-field rules and the trading day."""

from __future__ import annotations

import dataclasses
import datetime as dt
from datetime import timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuit_breakers import ConfigError, ConfigTypeError, TradingBreakerConfig

DECIMAL_FIELDS = (
    "daily_loss_limit_pct",
    "daily_loss_warning_pct",
    "max_drawdown_pct",
    "drawdown_warning_pct",
    "max_position_pct",
    "position_warning_pct",
    "volatility_std_threshold",
)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=timezone.utc)


# --- defaults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("daily_loss_limit_pct", Decimal("-2.0")),
        ("daily_loss_warning_pct", Decimal("-1.5")),
        ("max_drawdown_pct", Decimal("-10.0")),
        ("drawdown_warning_pct", Decimal("-7.0")),
        ("max_position_pct", Decimal("20.0")),
        ("position_warning_pct", Decimal("15.0")),
        ("volatility_std_threshold", Decimal("3.0")),
        ("volatility_lookback_days", 20),
        ("max_orders_per_minute", 10),
        ("max_orders_per_hour", 100),
        ("connection_failure_threshold", 3),
        ("connection_timeout_seconds", 30),
        ("check_interval_seconds", 1.0),
        ("cooldown_seconds", 300),
        ("auto_recovery", False),
        ("require_manual_reset", True),
        ("trading_day_timezone", "America/New_York"),
        ("trading_day_reset_time", dt.time(0, 0)),
    ],
)
def test_seed_default(field: str, expected: Any) -> None:
    value = getattr(TradingBreakerConfig(), field)
    assert value == expected
    assert type(value) is type(expected)


def test_decimal_defaults_keep_their_written_precision() -> None:
    config = TradingBreakerConfig()
    assert str(config.daily_loss_limit_pct) == "-2.0"
    assert str(config.max_drawdown_pct) == "-10.0"


def test_config_is_frozen() -> None:
    config = TradingBreakerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_orders_per_minute = 5  # type: ignore[misc]


# --- Decimal coercion -----------------------------------------------------------------------------


def test_int_is_converted_exactly_to_decimal() -> None:
    config = TradingBreakerConfig(max_position_pct=25, position_warning_pct=10)
    assert config.max_position_pct == Decimal(25)
    assert isinstance(config.max_position_pct, Decimal)


def test_numeric_str_is_converted_exactly_to_decimal() -> None:
    config = TradingBreakerConfig(daily_loss_limit_pct="-2.35", daily_loss_warning_pct="-0.1")
    assert config.daily_loss_limit_pct == Decimal("-2.35")
    assert config.daily_loss_warning_pct == Decimal("-0.1")
    assert isinstance(config.daily_loss_warning_pct, Decimal)


@given(
    limit=st.decimals(min_value=-50, max_value=Decimal("-0.02"), places=2),
    gap=st.decimals(min_value=Decimal("0.01"), max_value=10, places=2),
)
def test_numeric_strings_round_trip_exactly(limit: Decimal, gap: Decimal) -> None:
    warning = min(limit + gap, Decimal("-0.01"))
    config = TradingBreakerConfig(daily_loss_limit_pct=str(limit), daily_loss_warning_pct=str(warning))
    assert config.daily_loss_limit_pct == limit
    assert str(config.daily_loss_limit_pct) == str(limit)
    assert config.daily_loss_warning_pct == warning


@pytest.mark.parametrize("field", DECIMAL_FIELDS)
def test_float_is_rejected_naming_the_field(field: str) -> None:
    value = float(getattr(TradingBreakerConfig(), field))
    with pytest.raises(ConfigTypeError, match=field):
        TradingBreakerConfig(**{field: value})


@pytest.mark.parametrize("field", DECIMAL_FIELDS)
def test_bool_is_rejected_naming_the_field(field: str) -> None:
    with pytest.raises(ConfigTypeError, match=field):
        TradingBreakerConfig(**{field: True})


@pytest.mark.parametrize(
    "value",
    [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"), "NaN", "-inf"],
    ids=repr,
)
def test_non_finite_decimal_is_rejected_naming_the_field(value: Any) -> None:
    with pytest.raises(ConfigError, match="daily_loss_limit_pct"):
        TradingBreakerConfig(daily_loss_limit_pct=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_non_finite_float_is_rejected(value: float) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match="max_drawdown_pct"):
        TradingBreakerConfig(max_drawdown_pct=value)


def test_non_numeric_str_is_rejected_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="max_position_pct"):
        TradingBreakerConfig(max_position_pct="twenty")


@pytest.mark.parametrize(
    "field",
    ["max_orders_per_minute", "max_orders_per_hour", "connection_failure_threshold", "volatility_lookback_days"],
)
@pytest.mark.parametrize("value", [10.0, True, "10"], ids=repr)
def test_int_fields_reject_other_types(field: str, value: Any) -> None:
    with pytest.raises(ConfigTypeError, match=field):
        TradingBreakerConfig(**{field: value})


@pytest.mark.parametrize("field", ["auto_recovery", "require_manual_reset"])
def test_bool_fields_reject_ints(field: str) -> None:
    with pytest.raises(ConfigTypeError, match=field):
        TradingBreakerConfig(**{field: 1})


# --- cross-field rules ----------------------------------------------------------------------------


def test_daily_warning_must_be_less_severe_than_the_limit() -> None:
    with pytest.raises(ConfigError, match="daily_loss_warning_pct"):
        TradingBreakerConfig(daily_loss_limit_pct=Decimal("-2.0"), daily_loss_warning_pct=Decimal("-2.5"))


def test_daily_warning_equal_to_the_limit_is_rejected() -> None:
    with pytest.raises(ConfigError, match="daily_loss_warning_pct"):
        TradingBreakerConfig(daily_loss_limit_pct=Decimal("-2.0"), daily_loss_warning_pct=Decimal("-2.0"))


def test_drawdown_warning_must_be_less_severe_than_the_limit() -> None:
    with pytest.raises(ConfigError, match="drawdown_warning_pct"):
        TradingBreakerConfig(max_drawdown_pct=Decimal("-10"), drawdown_warning_pct=Decimal("-12"))


@pytest.mark.parametrize("limit", [Decimal(0), Decimal("2.0")])
def test_daily_loss_limit_must_be_negative(limit: Decimal) -> None:
    with pytest.raises(ConfigError, match="daily_loss_limit_pct"):
        TradingBreakerConfig(daily_loss_limit_pct=limit)


@pytest.mark.parametrize("limit", [Decimal(0), Decimal("10.0")])
def test_max_drawdown_must_be_negative(limit: Decimal) -> None:
    with pytest.raises(ConfigError, match="max_drawdown_pct"):
        TradingBreakerConfig(max_drawdown_pct=limit)


def test_positive_warning_level_is_rejected() -> None:
    with pytest.raises(ConfigError, match="daily_loss_warning_pct"):
        TradingBreakerConfig(daily_loss_warning_pct=Decimal("0.5"))


@pytest.mark.parametrize("limit", [Decimal(0), Decimal(-5), Decimal("100.01")])
def test_max_position_must_lie_in_zero_to_hundred(limit: Decimal) -> None:
    with pytest.raises(ConfigError, match="max_position_pct"):
        TradingBreakerConfig(max_position_pct=limit, position_warning_pct=Decimal("0.001"))


def test_max_position_of_exactly_hundred_is_allowed() -> None:
    assert TradingBreakerConfig(max_position_pct=Decimal(100)).max_position_pct == 100


@pytest.mark.parametrize("warning", [Decimal("20.0"), Decimal(25), Decimal(0)])
def test_position_warning_must_lie_below_the_limit(warning: Decimal) -> None:
    with pytest.raises(ConfigError, match="position_warning_pct"):
        TradingBreakerConfig(max_position_pct=Decimal("20.0"), position_warning_pct=warning)


@pytest.mark.parametrize("field", ["max_orders_per_minute", "max_orders_per_hour"])
def test_order_limits_must_be_at_least_one(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TradingBreakerConfig(**{field: 0})


def test_per_hour_must_be_at_least_per_minute() -> None:
    with pytest.raises(ConfigError, match="max_orders_per_hour"):
        TradingBreakerConfig(max_orders_per_minute=10, max_orders_per_hour=9)


def test_per_hour_equal_to_per_minute_is_allowed() -> None:
    config = TradingBreakerConfig(max_orders_per_minute=10, max_orders_per_hour=10)
    assert config.max_orders_per_hour == config.max_orders_per_minute == 10


def test_unknown_timezone_is_rejected() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus_Mons"):
        TradingBreakerConfig(trading_day_timezone="Mars/Olympus_Mons")


def test_aware_reset_time_is_rejected() -> None:
    with pytest.raises(ConfigTypeError, match="trading_day_reset_time"):
        TradingBreakerConfig(trading_day_reset_time=dt.time(17, 0, tzinfo=timezone.utc))


def test_default_staleness_bound() -> None:
    config = TradingBreakerConfig(check_interval_seconds=2, connection_timeout_seconds=30)
    assert config.stale_after == 3 * 2 + 30


def test_explicit_staleness_bound() -> None:
    assert TradingBreakerConfig(stale_after_seconds=7).stale_after == 7.0


# --- trading day ----------------------------------------------------------------------------------


def test_trading_day_is_the_new_york_date() -> None:
    config = TradingBreakerConfig()
    # 2026-01-06 04:59:59 UTC is 23:59:59 EST on the 5th; a second later it is midnight on the 6th.
    assert config.trading_day(utc(2026, 1, 6, 4, 59, 59)) == dt.date(2026, 1, 5)
    assert config.trading_day(utc(2026, 1, 6, 5, 0, 0)) == dt.date(2026, 1, 6)


def test_trading_day_accepts_non_utc_aware_times() -> None:
    tokyo = timezone(dt.timedelta(hours=9))
    # 2026-01-06 13:30 in Tokyo is 2026-01-05 23:30 in New York.
    assert TradingBreakerConfig().trading_day(dt.datetime(2026, 1, 6, 13, 30, tzinfo=tokyo)) == dt.date(2026, 1, 5)


def test_trading_day_after_spring_forward() -> None:
    config = TradingBreakerConfig()
    # Clocks go forward on 2026-03-08: midnight on the 9th is 04:00 UTC (EDT), not 05:00 (EST).
    assert config.trading_day(utc(2026, 3, 8, 5, 0)) == dt.date(2026, 3, 8)
    assert config.trading_day(utc(2026, 3, 9, 3, 59, 59)) == dt.date(2026, 3, 8)
    assert config.trading_day(utc(2026, 3, 9, 4, 0, 0)) == dt.date(2026, 3, 9)
    assert config.trading_day(utc(2026, 3, 9, 4, 30)) == dt.date(2026, 3, 9)


def test_trading_day_after_fall_back() -> None:
    config = TradingBreakerConfig()
    # Clocks go back on 2026-11-01: midnight on the 1st is 04:00 UTC (EDT), on the 2nd 05:00 UTC (EST).
    assert config.trading_day(utc(2026, 11, 1, 3, 59, 59)) == dt.date(2026, 10, 31)
    assert config.trading_day(utc(2026, 11, 1, 4, 0)) == dt.date(2026, 11, 1)
    assert config.trading_day(utc(2026, 11, 1, 6, 30)) == dt.date(2026, 11, 1)  # the repeated 01:30 EST
    assert config.trading_day(utc(2026, 11, 2, 4, 30)) == dt.date(2026, 11, 1)
    assert config.trading_day(utc(2026, 11, 2, 5, 0)) == dt.date(2026, 11, 2)


def test_custom_reset_time_moves_the_day_boundary() -> None:
    config = TradingBreakerConfig(trading_day_reset_time=dt.time(17, 0))
    # 16:59:59 and 17:00:00 EST on Monday 2026-01-05 (21:59:59 and 22:00 UTC) are different trading days.
    before = config.trading_day(utc(2026, 1, 5, 21, 59, 59))
    at = config.trading_day(utc(2026, 1, 5, 22, 0, 0))
    assert before != at
    assert at - before == dt.timedelta(days=1)
    # From Monday 17:00 to Tuesday 16:59:59 it is one trading day, crossing midnight.
    assert config.trading_day(utc(2026, 1, 6, 5, 30)) == at
    assert config.trading_day(utc(2026, 1, 6, 21, 59, 59)) == at
    assert config.trading_day(utc(2026, 1, 6, 22, 0)) == at + dt.timedelta(days=1)


def test_custom_reset_time_follows_dst() -> None:
    config = TradingBreakerConfig(trading_day_reset_time=dt.time(17, 0))
    # After spring forward, 17:00 in New York is 21:00 UTC (EDT) instead of 22:00 (EST).
    before = config.trading_day(utc(2026, 3, 9, 20, 59, 59))
    after = config.trading_day(utc(2026, 3, 9, 21, 0, 0))
    assert after - before == dt.timedelta(days=1)
    assert config.trading_day(utc(2026, 3, 9, 21, 30)) == after


def test_other_trading_day_timezone() -> None:
    config = TradingBreakerConfig(trading_day_timezone="Europe/London")
    assert config.trading_day(utc(2026, 1, 5, 23, 59, 59)) == dt.date(2026, 1, 5)
    assert config.trading_day(utc(2026, 1, 6, 0, 0)) == dt.date(2026, 1, 6)
