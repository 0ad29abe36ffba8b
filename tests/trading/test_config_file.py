"""load_config: TOML limits files, exact Decimals, and errors naming file, table, key and value."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from circuit_breakers import (
    ConfigError,
    ConfigTypeError,
    LimitsFile,
    OrderLimits,
    SymbolLimits,
    TradingBreakerConfig,
    load_config,
)
from circuit_breakers.trading.config_file import TRADING_FIELDS, parse_value

FULL = """
[trading]
daily_loss_limit_pct = -1.5
daily_loss_warning_pct = "-1.1"
max_drawdown_pct = -8
drawdown_warning_pct = -6.25
max_position_pct = 25.0
position_warning_pct = "18.5"
volatility_std_threshold = 2.5
volatility_lookback_days = 30
volatility_min_samples = 10
max_orders_per_minute = 20
max_orders_per_hour = 500
connection_failure_threshold = 4
connection_timeout_seconds = 12.5
check_interval_seconds = 2
cooldown_seconds = 600
auto_recovery = true
require_manual_reset = false
trading_day_timezone = "Europe/London"
trading_day_reset_time = 17:30:00
stale_after_seconds = 90
reset_max_attempts = 3
reset_lockout_seconds = 120

[orders]
max_notional = "250000.10"
max_quantity = 5000
price_collar_pct = 2.5
duplicate_window_seconds = 30
restricted_symbols = ["GME", "AMC"]
max_gross_exposure = 1e6
max_messages_per_minute = 120
reducing_breakers = ["daily_loss"]

[orders.per_symbol.TSLA]
max_quantity = 100
price_collar_bps = 50
"""


def write(tmp_path: Path, text: str, name: str = "limits.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_field_is_read_with_its_type(tmp_path: Path) -> None:
    trading, orders = load_config(write(tmp_path, FULL))

    assert trading.daily_loss_limit_pct == Decimal("-1.5")
    assert str(trading.daily_loss_limit_pct) == "-1.5"  # not the binary float's expansion
    assert trading.daily_loss_warning_pct == Decimal("-1.1")
    assert trading.max_drawdown_pct == Decimal(-8)
    assert trading.drawdown_warning_pct == Decimal("-6.25")
    assert trading.position_warning_pct == Decimal("18.5")
    assert trading.volatility_std_threshold == Decimal("2.5")
    assert (trading.volatility_lookback_days, trading.volatility_min_samples) == (30, 10)
    assert (trading.max_orders_per_minute, trading.max_orders_per_hour) == (20, 500)
    assert trading.connection_timeout_seconds == 12.5
    assert type(trading.connection_timeout_seconds) is float  # intervals are floats, never Decimal
    assert trading.cooldown_seconds == 600
    assert (trading.auto_recovery, trading.require_manual_reset) == (True, False)
    assert trading.trading_day_timezone == "Europe/London"
    assert trading.trading_day_reset_time == dt.time(17, 30)
    assert (trading.stale_after_seconds, trading.reset_max_attempts, trading.reset_lockout_seconds) == (90, 3, 120)

    assert orders.max_notional == Decimal("250000.10")
    assert orders.max_quantity == Decimal(5000)
    assert orders.price_collar_pct == Decimal("2.5")
    assert orders.duplicate_window_seconds == 30
    assert orders.restricted_symbols == frozenset({"GME", "AMC"})
    assert orders.max_gross_exposure == Decimal("1e6")
    assert orders.max_messages_per_minute == 120
    assert orders.reducing_breakers == frozenset({"daily_loss"})
    assert orders.per_symbol["TSLA"] == SymbolLimits(max_quantity=Decimal(100), price_collar_bps=Decimal(50))
    assert orders.per_symbol["TSLA"].price_collar_pct == Decimal("0.5")


def test_a_float_becomes_the_decimal_written_not_the_binary_value(tmp_path: Path) -> None:
    trading, _ = load_config(write(tmp_path, "[trading]\ndaily_loss_limit_pct = -2.1\ndaily_loss_warning_pct = -0.1\n"))
    assert trading.daily_loss_limit_pct == Decimal("-2.1")
    assert trading.daily_loss_warning_pct == Decimal("-0.1")
    assert Decimal(float("-0.1")) != Decimal("-0.1")  # what parse_float=Decimal avoids


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    limits = load_config(write(tmp_path, "# nothing set\n"))
    assert isinstance(limits, LimitsFile)
    assert limits == (TradingBreakerConfig(), OrderLimits())
    assert limits.trading == TradingBreakerConfig()


def test_a_reset_time_may_be_a_string(tmp_path: Path) -> None:
    trading, _ = load_config(write(tmp_path, '[trading]\ntrading_day_reset_time = "09:15"\n'))
    assert trading.trading_day_reset_time == dt.time(9, 15)


def test_the_field_table_covers_every_config_field() -> None:
    assert set(TRADING_FIELDS) == {field.name for field in dataclasses.fields(TradingBreakerConfig)}


@pytest.mark.parametrize(
    ("text", "error", "fragments"),
    [
        ("[trading]\ndaily_loss_limit = -2\n", ConfigError, ["[trading]", "unknown key daily_loss_limit", "-2"]),
        ('[trading]\nmax_orders_per_minute = "10"\n', ConfigTypeError, ["max_orders_per_minute", "'10'", "integer"]),
        ("[trading]\nmax_orders_per_minute = 10.0\n", ConfigTypeError, ["max_orders_per_minute", "10.0"]),
        ("[trading]\ndaily_loss_limit_pct = true\n", ConfigTypeError, ["daily_loss_limit_pct", "True"]),
        ('[trading]\ndaily_loss_limit_pct = "two"\n', ConfigError, ["daily_loss_limit_pct", "'two'"]),
        ("[trading]\ndaily_loss_limit_pct = 2\n", ConfigError, ["daily_loss_limit_pct must be negative", "2"]),
        (
            "[trading]\ndaily_loss_limit_pct = -1\n",
            ConfigError,
            ["daily_loss_warning_pct", "daily_loss_limit_pct (-1)", "-1.5"],
        ),
        ('[trading]\nauto_recovery = "yes"\n', ConfigTypeError, ["auto_recovery", "'yes'"]),
        ('[trading]\ntrading_day_timezone = "Mars/Olympus"\n', ConfigError, ["trading_day_timezone", "Mars/Olympus"]),
        ('[trading]\ntrading_day_reset_time = "25:00"\n', ConfigError, ["trading_day_reset_time", "'25:00'"]),
        ("[trading]\ntrading_day_reset_time = 1700\n", ConfigTypeError, ["trading_day_reset_time", "1700"]),
        ('[trading]\ncooldown_seconds = "300"\n', ConfigTypeError, ["cooldown_seconds", "'300'"]),
        (
            '[trading]\nconnection_errors = ["OSError"]\n',
            ConfigError,
            ["connection_errors cannot be given in a file", "OSError"],
        ),
        ("[orders]\nmax_notional = -5\n", ConfigError, ["[orders]", "max_notional", "-5"]),
        ('[orders]\nrestricted_symbols = "GME"\n', ConfigTypeError, ["[orders]", "restricted_symbols", "'GME'"]),
        ('[orders]\nreducing_breakers = ["kill"]\n', ConfigError, ["reducing_breakers", "kill"]),
        (
            "[orders.per_symbol.TSLA]\nmax_qty = 5\n",
            ConfigError,
            ["[orders.per_symbol.TSLA]", "unknown key max_qty", "5"],
        ),
        ("[orders]\nper_symbol = 5\n", ConfigTypeError, ["[orders]", "per_symbol", "5"]),
        ("[risk]\nlimit = 1\n", ConfigError, ["unknown table", "'risk'"]),
        ("trading = 5\n", ConfigTypeError, ["[trading] must be a table", "5"]),
        ("[trading\n", ConfigError, ["not valid TOML", "line 1"]),
    ],
)
def test_errors_name_the_file_table_key_and_value(tmp_path: Path, text: str, error: type, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(error) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the limits file"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1.5", Decimal("-1.5")),
        ("10", 10),
        ("true", True),
        ("17:00:00", dt.time(17)),
        ("America/Chicago", "America/Chicago"),
        ('"quoted"', "quoted"),
        ("1\nx = 2", "1\nx = 2"),  # one value only: anything more stays text
    ],
)
def test_parse_value_reads_command_line_text_as_toml(text: str, expected: object) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)
