"""The enums shared by every module: breaker states and breaker types."""

from __future__ import annotations

import enum


class CircuitState(str, enum.Enum):
    """The three states of a breaker; values are the lower-case names used in status dicts."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitType(str, enum.Enum):
    """What a breaker protects; informational, carried in status and exceptions."""

    CONNECTION_FAILURE = "connection_failure"
    DAILY_LOSS = "daily_loss"
    MAX_DRAWDOWN = "max_drawdown"
    POSITION_CONCENTRATION = "position_concentration"
    VOLATILITY = "volatility"
    RATE_LIMIT = "rate_limit"
    GENERIC = "generic"
