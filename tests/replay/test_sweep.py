"""sweep(): one replay per value; warning levels follow their limit; bad values are named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from circuit_breakers import ConfigError, ConfigTypeError, TradingBreakerConfig
from circuit_breakers.replay import replay
from circuit_breakers.replay.sweep import sweep, sweep_configs
from tests.replay.histories import daily

# Daily falls of 1.2 %, 2.5 % and 3.5 %, then a recovery.
ROWS = daily(dt.date(2024, 3, 4), [100000, 98800, 96330, 92958, 94000, 95000])


def test_one_replay_per_value_matches_a_replay_with_that_config() -> None:
    result = sweep(ROWS, "daily_loss_limit_pct", [Decimal(-1), Decimal(-2), Decimal(-3), Decimal(-4)])

    assert [point.result.summary.trips.get("daily_loss", 0) for point in result.points] == [3, 2, 1, 0]
    for point in result.points:
        alone = replay(ROWS, point.config)
        assert alone.summary == point.result.summary
    assert [point.config.daily_loss_warning_pct for point in result.points] == [
        Decimal("-0.75"),
        Decimal("-1.5"),
        Decimal("-2.25"),
        Decimal("-3"),
    ]
    assert result.note is not None
    assert "daily_loss_warning_pct follows the limit at 0.75 x daily_loss_limit_pct" in result.note


def test_the_table_has_a_row_per_value_and_one_without_breakers() -> None:
    result = sweep(ROWS, "daily_loss_limit_pct", ["-1", "-3"])
    header, first, second, history, *_ = result.table()
    assert header.split() == [
        "daily_loss_limit_pct", "trips", "days", "halted", "final", "equity", "with", "breakers",
        "max", "drawdown", "with", "breakers",
    ]  # fmt: skip
    assert first.split()[:3] == ["-1", "3", "3"]
    assert second.split()[:3] == ["-3", "1", "1"]
    assert history.split() == ["no", "breakers", "95,000.00", "-7.0420%"]
    runs = result.to_dict()["runs"]
    assert [run["value"] for run in runs] == ["-1", "-3"]
    assert runs[0]["trips"] == {"daily_loss": 3}


def test_other_settings_are_swept_as_they_are() -> None:
    configs, note = sweep_configs(TradingBreakerConfig(), "volatility_lookback_days", [5, 10])
    assert [config.volatility_lookback_days for _, config in configs] == [5, 10]
    assert note is None


@pytest.mark.parametrize(
    ("param", "values", "error", "match"),
    [
        ("daily_loss_limit", [-1], ConfigError, "param 'daily_loss_limit' is not a TradingBreakerConfig setting"),
        ("daily_loss_warning_pct", [Decimal(-3)], ConfigError, "daily_loss_warning_pct = -3: daily_loss_warning_pct"),
        ("volatility_lookback_days", [20, 1], ConfigError, "volatility_lookback_days = 1: "),
        ("max_orders_per_minute", ["many"], ConfigTypeError, "max_orders_per_minute = many: "),
        ("daily_loss_limit_pct", ["2"], ConfigError, "daily_loss_limit_pct = 2: daily_loss_limit_pct must be negative"),
        ("connection_errors", ["OSError"], ConfigError, "cannot be given in a file"),
        ("daily_loss_limit_pct", [], ConfigError, "no values"),
    ],
)
def test_bad_settings_and_values_are_named(param: str, values: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sweep(ROWS, param, values)
