"""Circuit breakers for synchronous, threaded trading systems.

Public names only; each lives in the module named for its concept.
"""

from circuit_breakers.backoff import Backoff, ExponentialBackoff, FixedBackoff
from circuit_breakers.breaker import BreakerMetrics, CircuitBreaker, Protected
from circuit_breakers.clock import Clock, ManualClock, SystemClock
from circuit_breakers.config import CircuitBreakerConfig
from circuit_breakers.decorators import circuit_breaker, rate_limited
from circuit_breakers.errors import (
    CircuitBreakerError,
    CircuitOpenException,
    ConfigError,
    ConfigTypeError,
    DuplicateBreakerError,
    KillSwitchError,
    OrderRejected,
    RateLimitExceeded,
    StateStoreError,
    TradingHalted,
    UnknownBreakerError,
    UnknownOrderError,
)
from circuit_breakers.ratelimit import Limit, RateLimited, RateLimiter
from circuit_breakers.registry import CircuitBreakerManager, default_manager
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.guard import TradeGuard
from circuit_breakers.trading.orders import (
    Order,
    OrderDecision,
    OrderLimits,
    RejectReason,
    Side,
    SymbolLimits,
    TradingState,
)
from circuit_breakers.trading.provider import PortfolioProvider
from circuit_breakers.trading.status import TradingStatus
from circuit_breakers.types import CircuitState, CircuitType

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "BreakerMetrics",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitBreakerManager",
    "CircuitOpenException",
    "CircuitState",
    "CircuitType",
    "Clock",
    "ConfigError",
    "ConfigTypeError",
    "DuplicateBreakerError",
    "ExponentialBackoff",
    "FixedBackoff",
    "KillSwitchError",
    "Limit",
    "ManualClock",
    "Order",
    "OrderDecision",
    "OrderLimits",
    "OrderRejected",
    "PortfolioProvider",
    "Protected",
    "RateLimitExceeded",
    "RateLimited",
    "RateLimiter",
    "RejectReason",
    "Side",
    "StateStoreError",
    "SymbolLimits",
    "SystemClock",
    "TradeGuard",
    "TradingBreakerConfig",
    "TradingCircuitBreakers",
    "TradingHalted",
    "TradingState",
    "TradingStatus",
    "UnknownBreakerError",
    "UnknownOrderError",
    "__version__",
    "circuit_breaker",
    "default_manager",
    "rate_limited",
]
