"""CircuitBreakerConfig: defaults, validation of every field, replace() and immutability."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal

import pytest

from circuit_breakers import (
    CircuitBreakerConfig,
    CircuitBreakerError,
    ConfigError,
    ConfigTypeError,
)

DEFAULTS = [
    ("failure_threshold", 5),
    ("failure_rate_threshold", 0.5),
    ("success_threshold", 3),
    ("failure_window_seconds", 60),
    ("open_timeout_seconds", 60),
    ("half_open_timeout_seconds", 30),
    ("exponential_backoff", True),
    ("max_backoff_seconds", 300),
    ("backoff_multiplier", 2.0),
    ("daily_loss_limit_pct", Decimal("-2.0")),
    ("max_drawdown_pct", Decimal("-10.0")),
    ("position_limit", Decimal("0.20")),
    ("minimum_calls", 10),
    ("half_open_max_calls", 1),
    ("failure_exceptions", (Exception,)),
    ("excluded_exceptions", ()),
]


@pytest.mark.parametrize(("field", "expected"), DEFAULTS)
def test_default_value(field: str, expected: object) -> None:
    value = getattr(CircuitBreakerConfig(), field)
    assert value == expected
    if isinstance(expected, (bool, Decimal, tuple)):
        assert type(value) is type(expected)


def test_defaults_cover_every_field() -> None:
    assert {f.name for f in dataclasses.fields(CircuitBreakerConfig)} == {name for name, _ in DEFAULTS}


BAD_VALUES = [
    # integer thresholds
    ("failure_threshold", 0, ConfigError),
    ("failure_threshold", -1, ConfigError),
    ("success_threshold", 0, ConfigError),
    ("minimum_calls", 0, ConfigError),
    ("half_open_max_calls", 0, ConfigError),
    ("failure_threshold", True, ConfigTypeError),
    ("success_threshold", False, ConfigTypeError),
    ("minimum_calls", True, ConfigTypeError),
    ("half_open_max_calls", True, ConfigTypeError),
    ("failure_threshold", 5.0, ConfigTypeError),
    ("success_threshold", 3.0, ConfigTypeError),
    ("minimum_calls", 10.5, ConfigTypeError),
    ("half_open_max_calls", 1.0, ConfigTypeError),
    ("failure_threshold", "5", ConfigTypeError),
    ("failure_threshold", Decimal("5"), ConfigTypeError),
    # failure rate
    ("failure_rate_threshold", 0, ConfigError),
    ("failure_rate_threshold", 0.0, ConfigError),
    ("failure_rate_threshold", -0.5, ConfigError),
    ("failure_rate_threshold", 1.0001, ConfigError),
    ("failure_rate_threshold", 2, ConfigError),
    ("failure_rate_threshold", math.nan, ConfigError),
    ("failure_rate_threshold", math.inf, ConfigError),
    ("failure_rate_threshold", True, ConfigTypeError),
    ("failure_rate_threshold", "0.5", ConfigTypeError),
    # timeouts
    ("failure_window_seconds", 0, ConfigError),
    ("failure_window_seconds", -1, ConfigError),
    ("failure_window_seconds", math.inf, ConfigError),
    ("failure_window_seconds", math.nan, ConfigError),
    ("failure_window_seconds", "60", ConfigTypeError),
    ("open_timeout_seconds", 0, ConfigError),
    ("open_timeout_seconds", -0.5, ConfigError),
    ("open_timeout_seconds", math.inf, ConfigError),
    ("open_timeout_seconds", math.nan, ConfigError),
    ("open_timeout_seconds", True, ConfigTypeError),
    ("half_open_timeout_seconds", 0, ConfigError),
    ("half_open_timeout_seconds", -30, ConfigError),
    ("half_open_timeout_seconds", math.inf, ConfigError),
    ("half_open_timeout_seconds", math.nan, ConfigError),
    ("half_open_timeout_seconds", None, ConfigTypeError),
    # backoff
    ("exponential_backoff", 1, ConfigTypeError),
    ("exponential_backoff", "yes", ConfigTypeError),
    ("exponential_backoff", None, ConfigTypeError),
    ("backoff_multiplier", 0.99, ConfigError),
    ("backoff_multiplier", 0, ConfigError),
    ("backoff_multiplier", -2.0, ConfigError),
    ("backoff_multiplier", math.nan, ConfigError),
    ("backoff_multiplier", math.inf, ConfigError),
    ("backoff_multiplier", "2", ConfigTypeError),
    ("max_backoff_seconds", 59.9, ConfigError),  # below the default open timeout of 60
    ("max_backoff_seconds", 0, ConfigError),
    ("max_backoff_seconds", math.inf, ConfigError),
    ("max_backoff_seconds", math.nan, ConfigError),
    ("max_backoff_seconds", True, ConfigTypeError),
    # money and percentages
    ("position_limit", 0.2, ConfigTypeError),
    ("daily_loss_limit_pct", -2.0, ConfigTypeError),
    ("max_drawdown_pct", -10.0, ConfigTypeError),
    ("position_limit", True, ConfigTypeError),
    ("position_limit", None, ConfigTypeError),
    ("position_limit", "abc", ConfigError),
    ("daily_loss_limit_pct", Decimal("NaN"), ConfigError),
    ("max_drawdown_pct", Decimal("-Infinity"), ConfigError),
    ("position_limit", "inf", ConfigError),
    # exception matchers
    ("failure_exceptions", (int,), ConfigTypeError),
    ("failure_exceptions", ("x",), ConfigTypeError),
    ("failure_exceptions", "ValueError", ConfigTypeError),
    ("failure_exceptions", ValueError, ConfigTypeError),
    ("failure_exceptions", (ValueError, None), ConfigTypeError),
    ("failure_exceptions", 42, ConfigTypeError),
    ("excluded_exceptions", (int,), ConfigTypeError),
    ("excluded_exceptions", ("x",), ConfigTypeError),
    ("excluded_exceptions", "x", ConfigTypeError),
    ("excluded_exceptions", b"x", ConfigTypeError),
    ("excluded_exceptions", (object,), ConfigTypeError),
]


@pytest.mark.parametrize(("field", "value", "error"), BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_bad_value_raises_and_names_field(field: str, value: object, error: type) -> None:
    with pytest.raises(error) as info:
        CircuitBreakerConfig(**{field: value})
    assert field in str(info.value)


@pytest.mark.parametrize(("error", "builtin"), [(ConfigError, ValueError), (ConfigTypeError, TypeError)])
def test_config_errors_are_builtin_errors_and_library_errors(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)
    assert issubclass(error, CircuitBreakerError)


def test_max_backoff_given_below_a_given_open_timeout_is_rejected() -> None:
    with pytest.raises(ConfigError, match="max_backoff_seconds"):
        CircuitBreakerConfig(open_timeout_seconds=400, max_backoff_seconds=300)


def test_an_unset_max_backoff_follows_a_long_open_timeout() -> None:
    assert CircuitBreakerConfig(open_timeout_seconds=600).max_backoff_seconds == 600
    assert CircuitBreakerConfig(open_timeout_seconds=10).max_backoff_seconds == 300
    assert CircuitBreakerConfig() == CircuitBreakerConfig(max_backoff_seconds=300)


def test_max_backoff_equal_to_open_timeout_is_allowed() -> None:
    config = CircuitBreakerConfig(open_timeout_seconds=10, max_backoff_seconds=10)
    assert config.max_backoff_seconds == 10


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_rate_threshold", 1.0),
        ("failure_rate_threshold", 1),
        ("failure_rate_threshold", 0.01),
        ("backoff_multiplier", 1.0),
        ("failure_threshold", 1),
        ("success_threshold", 1),
        ("minimum_calls", 1),
        ("half_open_max_calls", 1),
        ("open_timeout_seconds", 0.001),
        ("exponential_backoff", False),
    ],
)
def test_boundary_value_is_accepted(field: str, value: object) -> None:
    assert getattr(CircuitBreakerConfig(**{field: value}), field) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(Decimal("0.25"), Decimal("0.25")), ("0.1", Decimal("0.1")), (1, Decimal(1)), ("-3.5", Decimal("-3.5"))],
)
def test_decimal_fields_convert_int_and_str_exactly(value: object, expected: Decimal) -> None:
    config = CircuitBreakerConfig(position_limit=value)  # type: ignore[arg-type]
    assert isinstance(config.position_limit, Decimal)
    assert config.position_limit == expected


def test_matcher_list_is_stored_as_tuple() -> None:
    config = CircuitBreakerConfig(failure_exceptions=[ConnectionError, TimeoutError])  # type: ignore[arg-type]
    assert config.failure_exceptions == (ConnectionError, TimeoutError)


def test_predicate_matchers_are_accepted() -> None:
    def is_server_error(exc: BaseException) -> bool:
        return getattr(exc, "status", 0) >= 500

    config = CircuitBreakerConfig(failure_exceptions=(is_server_error, OSError), excluded_exceptions=(KeyError,))
    assert config.failure_exceptions == (is_server_error, OSError)
    assert config.excluded_exceptions == (KeyError,)


def test_replace_returns_changed_copy() -> None:
    original = CircuitBreakerConfig()
    changed = original.replace(failure_threshold=7)
    assert changed.failure_threshold == 7
    assert original.failure_threshold == 5


def test_replace_validates_new_values() -> None:
    with pytest.raises(ConfigError, match="failure_threshold"):
        CircuitBreakerConfig().replace(failure_threshold=0)


def test_replace_with_unknown_field_raises_config_type_error() -> None:
    with pytest.raises(ConfigTypeError, match="no_such_field"):
        CircuitBreakerConfig().replace(no_such_field=1)


def test_config_is_frozen() -> None:
    config = CircuitBreakerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.failure_threshold = 3  # type: ignore[misc]
    assert config.failure_threshold == 5


def test_equal_settings_give_equal_configs() -> None:
    assert CircuitBreakerConfig(failure_threshold=2) == CircuitBreakerConfig(failure_threshold=2)
    assert CircuitBreakerConfig(failure_threshold=2) != CircuitBreakerConfig(failure_threshold=3)
