"""load_config: trading limits and pre-trade order limits from a TOML file.

::

    [trading]
    daily_loss_limit_pct = -2.0          # numbers or strings: both become Decimal exactly as written
    daily_loss_warning_pct = "-1.5"
    trading_day_timezone = "America/New_York"
    trading_day_reset_time = 17:00:00    # a TOML local time, or the string "17:00"

    [orders]
    max_notional = 250000
    restricted_symbols = ["GME"]

    [orders.per_symbol.TSLA]
    max_quantity = 100

Both tables are optional (absent means the defaults). Every problem, from a TOML syntax error to a
limit above its warning level, raises ConfigError (a ValueError) or ConfigTypeError (a TypeError)
whose message names the file, the table, the key and the value.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from decimal import Decimal
from typing import Any, Callable, Dict, Mapping, NamedTuple, Type, TypeVar, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.orders import OrderLimits, SymbolLimits


def _toml() -> Any:
    """The TOML reader: the standard library's from Python 3.11, tomli (the ``toml`` extra) before."""
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415

        return tomllib
    try:  # pragma: no cover - exercised on Python < 3.11 only
        import tomli  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        raise ImportError("reading TOML before Python 3.11 needs tomli: pip install 'circuit_breakers[toml]'") from None
    return tomli  # pragma: no cover


T = TypeVar("T")
Convert = Callable[[str, object], object]
"""Checks one value read from a file (or typed on a command line) and returns what the config takes."""


class LimitsFile(NamedTuple):
    """What :func:`load_config` returns: the trading breakers' limits and the pre-trade order limits."""

    trading: TradingBreakerConfig
    orders: OrderLimits


def _describe(value: object) -> str:
    shown = str(value) if isinstance(value, Decimal) else repr(value)
    kind = {Decimal: "number", bool: "boolean", int: "integer", str: "string", dict: "table", list: "array"}.get(
        type(value), type(value).__name__
    )
    return f"{shown} ({kind})"


def _decimal(key: str, value: object) -> object:
    # The config converts exactly; only booleans, tables and arrays are wrong here.
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ConfigTypeError(f"{key} must be a number or a numeric string, got {_describe(value)}")
    return value


def _integer(key: str, value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{key} must be an integer, got {_describe(value)}")
    return value


def _seconds(key: str, value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ConfigTypeError(f"{key} must be a number of seconds, got {_describe(value)}")
    # Intervals are floats everywhere in the library (the monotonic clock is one).
    return float(value) if isinstance(value, Decimal) else value


def _boolean(key: str, value: object) -> object:
    if not isinstance(value, bool):
        raise ConfigTypeError(f"{key} must be true or false, got {_describe(value)}")
    return value


def _string(key: str, value: object) -> object:
    if not isinstance(value, str):
        raise ConfigTypeError(f"{key} must be a string, got {_describe(value)}")
    return value


_CLOCK_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2}))?")


def _time_of_day(key: str, value: object) -> object:
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ConfigError(f"{key} must be a local time of day without an offset, got {value.isoformat()}")
        return value
    if not isinstance(value, str):
        raise ConfigTypeError(f'{key} must be a local time (17:00:00) or a string "HH:MM", got {_describe(value)}')
    match = _CLOCK_TIME.fullmatch(value)
    try:
        if match is None:
            raise ValueError
        return dt.time(int(match[1]), int(match[2]), int(match[3] or 0))
    except ValueError:
        raise ConfigError(f'{key} must be a time of day "HH:MM" or "HH:MM:SS", got {value!r}') from None


def _symbols(key: str, value: object) -> object:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigTypeError(f"{key} must be an array of strings, got {_describe(value)}")
    return frozenset(value)


def _not_in_files(key: str, value: object) -> object:
    raise ConfigError(
        f"{key} cannot be given in a file (got {_describe(value)}): it holds Python exception types; "
        f"set it in code, e.g. dataclasses.replace(config, {key}=(OSError, httpx.TransportError))"
    )


TRADING_FIELDS: Mapping[str, Convert] = {
    "daily_loss_limit_pct": _decimal,
    "daily_loss_warning_pct": _decimal,
    "max_drawdown_pct": _decimal,
    "drawdown_warning_pct": _decimal,
    "max_position_pct": _decimal,
    "position_warning_pct": _decimal,
    "volatility_std_threshold": _decimal,
    "volatility_lookback_days": _integer,
    "max_orders_per_minute": _integer,
    "max_orders_per_hour": _integer,
    "connection_failure_threshold": _integer,
    "connection_timeout_seconds": _seconds,
    "check_interval_seconds": _seconds,
    "cooldown_seconds": _seconds,
    "auto_recovery": _boolean,
    "require_manual_reset": _boolean,
    "trading_day_timezone": _string,
    "trading_day_reset_time": _time_of_day,
    "connection_errors": _not_in_files,
    "stale_after_seconds": _seconds,
    "volatility_min_samples": _integer,
    "reset_max_attempts": _integer,
    "reset_lockout_seconds": _seconds,
}
"""How each TradingBreakerConfig field is read from a file: the check for a TOML value of that key."""

_SYMBOL_FIELDS: Mapping[str, Convert] = {
    "max_notional": _decimal,
    "max_quantity": _decimal,
    "price_collar_pct": _decimal,
    "price_collar_bps": _decimal,
}
_ORDER_FIELDS: Mapping[str, Convert] = {
    **_SYMBOL_FIELDS,
    "duplicate_window_seconds": _seconds,
    "restricted_symbols": _symbols,
    "max_gross_exposure": _decimal,
    "max_messages_per_minute": _integer,
    "reducing_breakers": _symbols,
}


def parse_value(text: str) -> object:
    """A setting typed on a command line, read as a TOML value would be: ``-1.5`` a Decimal, ``10`` an
    int, ``true`` a bool, ``17:00:00`` a time; anything else is the string itself. Check the result
    with the field's entry in :data:`TRADING_FIELDS`."""
    toml = _toml()
    try:
        document = toml.loads(f"value = {text}", parse_float=Decimal)
    except toml.TOMLDecodeError:
        return text
    return document["value"] if set(document) == {"value"} else text


def _build(cls: Type[T], fields: Mapping[str, Convert], table: object, where: str, **extra: object) -> T:
    """Check ``table`` key by key, then construct ``cls``; every error is re-raised naming ``where``."""
    if not isinstance(table, dict):
        raise ConfigTypeError(f"{where} must be a table, got {_describe(table)}")
    values: Dict[str, object] = {}
    try:
        for key, value in table.items():
            convert = fields.get(key)
            if convert is None:
                known = ", ".join(sorted(fields))
                raise ConfigError(f"unknown key {key} = {_describe(value)}; known keys: {known}")
            values[key] = convert(key, value)
        return cls(**values, **extra)
    except (ConfigError, ConfigTypeError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _per_symbol(table: object, source: str) -> Dict[str, SymbolLimits]:
    if not isinstance(table, dict):
        raise ConfigTypeError(
            f"{source} [orders]: per_symbol must be sub-tables [orders.per_symbol.SYMBOL], got {_describe(table)}"
        )
    return {
        symbol: _build(SymbolLimits, _SYMBOL_FIELDS, limits, f"{source} [orders.per_symbol.{symbol}]")
        for symbol, limits in table.items()
    }


def parse_config(document: Mapping[str, Any], source: str) -> LimitsFile:
    """Build the limits from an already parsed TOML document; errors name ``source`` (the file).

    Raises ConfigError / ConfigTypeError as :func:`load_config` does.
    """
    unknown = sorted(set(document) - {"trading", "orders"})
    if unknown:
        raise ConfigError(f"{source}: unknown table or key {unknown[0]!r}; a limits file has [trading] and [orders]")
    trading = _build(TradingBreakerConfig, TRADING_FIELDS, document.get("trading", {}), f"{source} [trading]")
    orders_table = document.get("orders", {})
    extra: Dict[str, object] = {}
    if isinstance(orders_table, dict) and "per_symbol" in orders_table:
        orders_table = dict(orders_table)
        extra["per_symbol"] = _per_symbol(orders_table.pop("per_symbol"), source)
    orders = _build(OrderLimits, _ORDER_FIELDS, orders_table, f"{source} [orders]", **extra)
    return LimitsFile(trading, orders)


def load_config(path: Union[str, os.PathLike[str]]) -> LimitsFile:
    """Read trading and order limits from the TOML file at ``path``; return them as ``(trading, orders)``.

    Money and percent values are Decimal exactly as written (``1.5`` and ``"1.5"`` both give
    ``Decimal("1.5")``). Raises ConfigError when the file cannot be read or is not TOML, for
    unknown tables and keys and for bad values, and ConfigTypeError for values of the wrong type;
    each message names the file, the table, the key and the value. Blocks while the file is read.
    Before Python 3.11 it needs tomli (``pip install 'circuit_breakers[toml]'``; ImportError without).
    """
    source = os.fspath(path)
    toml = _toml()
    try:
        with open(source, "rb") as stream:
            document = toml.load(stream, parse_float=Decimal)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the limits file: {exc.strerror or exc}") from exc
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return parse_config(document, source)
