"""TradingStatus: a frozen snapshot of the trading breakers, with a JSON-ready ``to_dict()``."""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple
from typing import Mapping as TypingMapping

from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.latches import Held, Latch
from circuit_breakers.trading.orders import TradingState
from circuit_breakers.trading.rules import Verdict


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


def build_details(
    config: TradingBreakerConfig,
    *,
    held: TypingMapping[str, Held],
    last: TypingMapping[str, Latch],
    verdicts: TypingMapping[str, Verdict],
    warned: Tuple[str, ...],
) -> Dict[str, Dict[str, Any]]:
    """Each judged breaker's state, figure, limit, warning level and last trip (who, when, why)."""
    limits: Dict[str, Tuple[Any, Any]] = {
        "daily_loss": (config.daily_loss_limit_pct, config.daily_loss_warning_pct),
        "max_drawdown": (config.max_drawdown_pct, config.drawdown_warning_pct),
        "volatility": (config.volatility_std_threshold, None),
        "position_concentration": (config.max_position_pct, config.position_warning_pct),
    }
    details: Dict[str, Dict[str, Any]] = {}
    for name, (limit, warning) in limits.items():
        verdict = verdicts.get(name)
        latch = last.get(name)
        tripped = name in held
        details[name] = {
            "state": "tripped" if tripped else ("warning" if name in warned else "ok"),
            "tripped": tripped,
            "warning": name in warned,
            "value": None if verdict is None else verdict.value,
            "message": None if verdict is None else verdict.message,
            "limit": limit,
            "warning_level": warning,
            "last_trip_time": None if latch is None else latch.since,
            "last_trip_reason": None if latch is None else latch.reason,
            "last_trip_actor": None if latch is None else latch.actor,
            "trading_day": None if latch is None else latch.trading_day,
        }
    return details


def process_id() -> str:
    """This process's name among those sharing a store: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def heartbeat(config: TradingBreakerConfig, status: TradingStatus) -> str:
    """A process's heartbeat record: who, when, and what it sees (for ``circuit-breakers status``)."""
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "check_interval_seconds": float(config.check_interval_seconds),
        "stale_after_seconds": 3 * float(config.check_interval_seconds) + 5,
        "trading_state": status.trading_state.value,
        "kill_switch_active": status.kill_switch_active,
        "reasons": list(status.reasons),
        "orders_last_minute": status.orders_last_minute,
        "orders_last_hour": status.orders_last_hour,
        "monitor_alive": status.monitor_alive,
    }
    return json.dumps(record, sort_keys=True, ensure_ascii=False)
