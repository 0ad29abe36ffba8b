"""TradingStatus: a frozen snapshot of the trading breakers, with a JSON-ready ``to_dict()``."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Optional, Tuple

from circuit_breakers.trading.orders import TradingState


def jsonable(value: Any) -> Any:
    """Decimals and enums as strings, datetimes and dates in ISO format, tuples as lists, recursively."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class TradingStatus:
    """Where the trading breakers stand.

    ``trading_state`` is ACTIVE, REDUCING (only risk-reducing orders pass) or HALTED.
    ``blocking_breakers`` name what halts trading now (including the fail-closed conditions
    ``provider``, ``monitor`` and ``state``); ``reasons`` give one line each; ``details`` holds
    each breaker's figures, limits and last trip. ``orders_last_minute`` and ``orders_last_hour``
    are None while a shared store cannot say (its error is in ``details["rate_limit"]["error"]``).
    """

    can_trade: bool
    trading_state: TradingState
    blocking_breakers: Tuple[str, ...]
    warning_breakers: Tuple[str, ...]
    reasons: Tuple[str, ...]
    kill_switch_active: bool
    orders_last_minute: Optional[int]
    orders_last_hour: Optional[int]
    monitoring: bool
    monitor_alive: bool
    last_reading_age: Optional[float]
    details: Mapping[str, Mapping[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable data: Decimals as strings, times in ISO format."""
        result: dict[str, Any] = jsonable({f.name: getattr(self, f.name) for f in fields(self)})
        return result
