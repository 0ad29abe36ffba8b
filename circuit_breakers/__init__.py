"""Circuit breakers, a kill switch and order-rate limits for synchronous, threaded trading systems.

Every call blocks and is thread-safe; money is ``decimal.Decimal``; intervals use the monotonic
clock. Nothing is printed unless the application configures logging.

Quick start::

    from circuit_breakers import CircuitBreaker, CircuitOpenException, TradingCircuitBreakers

    breaker = CircuitBreaker("broker_api")
    try:
        positions = breaker.call(broker.get_positions)   # counts outages, opens after too many
    except CircuitOpenException as exc:
        positions = {}                                   # exc.retry_after: when to try again

    breakers = TradingCircuitBreakers(portfolio, reset_key="change-me", state_path="desk.db")
    breakers.start_monitoring()                          # a daemon thread polls the portfolio
    with breakers.trade_guard(order):                    # every pre-trade check, all or nothing
        broker.place_order(order)                        # raises TradingHalted / OrderRejected

The public names, by concept (all importable from ``circuit_breakers``):

- One breaker around any call: ``CircuitBreaker``, ``CircuitBreakerConfig``, ``CircuitState``,
  ``CircuitType``, ``Breaker`` (their base), ``BreakerMetrics``, ``circuit_breaker`` (decorator),
  ``CircuitBreakerManager`` / ``default_manager`` (the registry), ``is_outage`` (what counts as a
  failure by default), ``ExponentialBackoff`` / ``FixedBackoff`` / ``Backoff``.
- Rate limits: ``RateLimiter``, ``Limit``, ``rate_limited`` (decorator).
- The trading desk: ``TradingCircuitBreakers``, ``TradingBreakerConfig``, ``PortfolioProvider``
  (what you implement), ``TradingStatus``, ``TradeGuard``, ``load_config`` / ``LimitsFile``.
- Pre-trade checks: ``Order``, ``Side``, ``OrderLimits``, ``SymbolLimits``, ``OrderDecision``,
  ``RejectReason``, ``TradingState``.
- Errors: ``CircuitBreakerError`` and below it ``CircuitOpenException``, ``RateLimitExceeded``,
  ``TradingHalted`` (``OrderRejected``), ``KillSwitchError``, ``StateStoreError``,
  ``ConfigError`` (a ValueError), ``ConfigTypeError`` (a TypeError), ``DuplicateBreakerError``,
  ``UnknownBreakerError``, ``UnknownOrderError``.
- Time: ``Clock``, ``SystemClock``, ``ManualClock`` (for tests and replays).
- Typing: ``Wrapped`` (``Protected``, ``RateLimited``): what the decorators return.
- Shared by several hosts (extra ``redis``, loaded on first use): ``RedisStore``,
  ``RedisCircuitBreaker``, ``RedisRateLimiter``. On one host: ``state_path=`` (SQLite).

Subpackages: ``circuit_breakers.stores`` (where trading state lives), ``circuit_breakers.redis``,
``circuit_breakers.ops`` (command line, Prometheus metrics, status page), ``circuit_breakers.replay``
(a desk's history through the real breakers). The command line is ``circuit-breakers`` (or
``python -m circuit_breakers``); ``--help`` lists its commands.
"""

import importlib as _importlib
import logging as _logging
import typing as _typing

from circuit_breakers.backoff import Backoff, ExponentialBackoff, FixedBackoff
from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.breaker_base import Breaker, BreakerMetrics
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
from circuit_breakers.outage import is_outage
from circuit_breakers.ratelimit import Limit, RateLimiter
from circuit_breakers.registry import CircuitBreakerManager, default_manager
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.config_file import LimitsFile, load_config
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
from circuit_breakers.wrapped import Protected, RateLimited, Wrapped

if _typing.TYPE_CHECKING:
    from circuit_breakers.redis import RedisCircuitBreaker as RedisCircuitBreaker
    from circuit_breakers.redis import RedisRateLimiter as RedisRateLimiter
    from circuit_breakers.redis import RedisStore as RedisStore

__version__ = "0.2.0"

# Nothing is printed unless the application configures logging (no last-resort output to stderr).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

# Redis-backed names load on first use, so that the package never imports redis-py unless asked.
# They stay out of __all__: ``from circuit_breakers import *`` must work without the extra.
_REDIS_NAMES = {
    "RedisCircuitBreaker": "circuit_breakers.redis",
    "RedisRateLimiter": "circuit_breakers.redis",
    "RedisStore": "circuit_breakers.redis",
}


def __getattr__(name: str) -> object:
    module = _REDIS_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(_importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(
            f"circuit_breakers.{name} needs redis-py: pip install 'circuit_breakers[redis]' ({exc})"
        ) from exc


__all__ = [
    "Backoff",
    "Breaker",
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
    "LimitsFile",
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
    "Wrapped",
    "__version__",
    "circuit_breaker",
    "default_manager",
    "is_outage",
    "load_config",
    "rate_limited",
]
