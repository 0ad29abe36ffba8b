"""The value types shared by every layer: breaker states and types, and the pre-trade decision.

A leaf: it imports nothing of the package, so that :mod:`circuit_breakers.errors` can name what its
exceptions carry (a breaker's state, an order's decision) without importing the layers above it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional


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


class RejectReason(str, enum.Enum):
    """Why an order was refused."""

    TRADING_HALTED = "trading_halted"
    REDUCE_ONLY = "reduce_only"
    RESTRICTED = "restricted"
    MAX_QUANTITY = "max_quantity"
    NO_REFERENCE_PRICE = "no_reference_price"
    PRICE_COLLAR = "price_collar"
    MAX_NOTIONAL = "max_notional"
    DUPLICATE = "duplicate"
    EXPOSURE = "exposure"
    CONCENTRATION = "concentration"
    RATE_LIMIT = "rate_limit"
    MESSAGE_RATE = "message_rate"
    TOO_MANY_PENDING = "too_many_pending"


@dataclass(frozen=True)
class OrderDecision:
    """The answer of a pre-trade check: ``accepted``, and if not, a ``reason`` and a ``message``."""

    accepted: bool
    reason: Optional[RejectReason] = None
    message: str = "accepted"

    def __bool__(self) -> bool:
        return self.accepted
