"""How a desk is assembled: its settings checked, its parts made from them and wired to each other.

:func:`wire` makes every part of a :class:`~circuit_breakers.trading.breakers.TradingCircuitBreakers`
(the safety core in its store, the breakers, the gate, and the parts that work over them) and hands
them back as :class:`Parts`; the facade keeps them and answers for them. The helpers say where the
state lives and is audited, which order-rate windows apply, and how the connection breaker behaves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import CircuitBreakerConfig
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.events import Callbacks, KillHandlers, Pending
from circuit_breakers.ratelimit import Limit, Permits, RateLimiter
from circuit_breakers.registry import CircuitBreakerManager
from circuit_breakers.stores.base import Store
from circuit_breakers.stores.memory import MemoryStore
from circuit_breakers.stores.sqlite import SqliteStore
from circuit_breakers.trading.audit import AuditLog, AuditSink
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.evaluation import Evaluation
from circuit_breakers.trading.gate import PreTradeGate
from circuit_breakers.trading.killswitch import ResetGuard
from circuit_breakers.trading.lifecycle import Lifecycle
from circuit_breakers.trading.monitor import Monitor
from circuit_breakers.trading.order_flow import OrderFlow
from circuit_breakers.trading.orders import OrderLimits
from circuit_breakers.trading.provider import PortfolioProvider, missing_methods
from circuit_breakers.trading.reset_records import StoreLockout
from circuit_breakers.trading.resets import Resets
from circuit_breakers.trading.safety import Events, SafetyCore
from circuit_breakers.trading.standing import Standing
from circuit_breakers.types import CircuitState, CircuitType

BREAKER_NAMES = ("daily_loss", "max_drawdown", "position_concentration", "volatility", "rate_limit", "connection")
_MIRRORED = {
    "daily_loss": CircuitType.DAILY_LOSS,
    "max_drawdown": CircuitType.MAX_DRAWDOWN,
    "volatility": CircuitType.VOLATILITY,
}


def checked_settings(
    provider: object, config: object, clock: object, order_limits: object
) -> Tuple[TradingBreakerConfig, Clock, OrderLimits]:
    """The config, clock and order limits a desk runs with (defaults for None); ConfigTypeError naming the
    argument for a provider that lacks a method or an argument of the wrong type."""
    missing = missing_methods(provider)
    if missing:
        raise ConfigTypeError(
            f"provider must implement PortfolioProvider: {type(provider).__name__} has no {', '.join(missing)}"
        )
    if config is None:
        config = TradingBreakerConfig()
    elif not isinstance(config, TradingBreakerConfig):
        raise ConfigTypeError(f"config must be a TradingBreakerConfig, got {config!r}")
    if clock is None:
        clock = SYSTEM_CLOCK
    elif not isinstance(clock, Clock):
        raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
    if order_limits is None:
        order_limits = OrderLimits()
    elif not isinstance(order_limits, OrderLimits):
        raise ConfigTypeError(f"order_limits must be OrderLimits, got {order_limits!r}")
    return config, clock, order_limits


@dataclass(frozen=True)
class Parts:
    """The parts of one desk, wired to each other."""

    manager: CircuitBreakerManager
    connection: CircuitBreaker
    on_trip: Callbacks[[str, str]]
    on_warning: Callbacks[[str, str]]
    on_recovery: Callbacks[[str]]
    on_kill: KillHandlers
    core: SafetyCore
    reset_guard: ResetGuard
    limiter: Permits
    gate: PreTradeGate
    evaluation: Evaluation
    standing: Standing
    orders: OrderFlow
    lifecycle: Lifecycle
    resets: Resets


def wire(
    provider: PortfolioProvider,
    config: TradingBreakerConfig,
    clock: Clock,
    order_limits: OrderLimits,
    *,
    store: Store,
    audit: AuditLog,
    secret: Optional[bytes],
    monitor: Monitor,
    can_trade: Callable[[], bool],
    blocking_reasons: Callable[[], List[str]],
) -> Parts:
    """Make a desk's parts over ``store`` and ``audit``; ``can_trade`` and ``blocking_reasons`` are the
    desk's own (its lock-free answer first), ``monitor`` its monitor thread. Reads nothing yet."""
    on_kill = KillHandlers()
    on_trip: Callbacks[[str, str]] = Callbacks("trading trip")
    on_warning: Callbacks[[str, str]] = Callbacks("trading warning")
    on_recovery: Callbacks[[str]] = Callbacks("trading recovery")
    manager = CircuitBreakerManager(clock=clock)
    mirrors = {name: manager.create_circuit_breaker(name, kind) for name, kind in _MIRRORED.items()}
    connection = manager.create_circuit_breaker("connection", CircuitType.CONNECTION_FAILURE, connection_config(config))

    def mirror(name: str, engaged: bool, pending: Pending) -> None:
        breaker = mirrors.get(name)
        if breaker is not None:
            breaker._move(CircuitState.OPEN if engaged else CircuitState.CLOSED, pending, forced=engaged)

    core = SafetyCore(store, audit, clock, config, Events(on_trip, on_recovery, on_kill, mirror))
    reset_guard = ResetGuard(
        None,
        clock=clock,
        max_attempts=config.reset_max_attempts,
        lockout_seconds=config.reset_lockout_seconds,
        record=StoreLockout(core),
    )
    limiter = order_limiter(store, config, clock)
    gate = PreTradeGate(order_limits, limiter, clock=clock)
    evaluation = Evaluation(provider, config, core, mirrors, on_warning, monotonic=clock.monotonic)
    standing = Standing(
        core=core,
        evaluation=evaluation,
        connection=connection,
        gate=gate,
        limiter=limiter,
        reset_guard=reset_guard,
        on_kill=on_kill,
        monitor=monitor,
        config=config,
        monotonic=clock.monotonic,
        can_trade=can_trade,
    )
    connection.register_trip_callback(lambda name, _type: on_trip.dispatch(name, standing.connection_reason()))
    connection.register_recovery_callback(lambda name, _type: on_recovery.dispatch(name))
    orders = OrderFlow(
        provider=provider,
        gate=gate,
        standing=standing,
        evaluation=evaluation,
        limiter=limiter,
        connection=connection,
        can_trade=can_trade,
        blocking_reasons=blocking_reasons,
    )
    lifecycle = Lifecycle(
        core=core, evaluation=evaluation, reset_guard=reset_guard, monitor=monitor, config=config, secret=secret
    )
    resets = Resets(
        core=core,
        evaluation=evaluation,
        reset_guard=reset_guard,
        limiter=limiter,
        connection=connection,
        config=config,
        breaker_names=BREAKER_NAMES,
        sync=lifecycle.sync,
    )
    return Parts(
        manager,
        connection,
        on_trip,
        on_warning,
        on_recovery,
        on_kill,
        core,
        reset_guard,
        limiter,
        gate,
        evaluation,
        standing,
        orders,
        lifecycle,
        resets,
    )


def connection_config(config: TradingBreakerConfig) -> CircuitBreakerConfig:
    """The connection breaker: N failures in a minute open it for the connection timeout, doubling
    on each consecutive trip up to the cooldown; one successful call closes it."""
    return CircuitBreakerConfig(
        failure_threshold=config.connection_failure_threshold,
        failure_rate_threshold=1.0,
        failure_window_seconds=60,
        open_timeout_seconds=config.connection_timeout_seconds,
        max_backoff_seconds=max(config.cooldown_seconds, config.connection_timeout_seconds),
        success_threshold=1,
        failure_exceptions=config.connection_errors,
    )


def open_store(
    path: Union[str, os.PathLike[str], None], store: Optional[Store], clock: Clock
) -> Tuple[Store, AuditLog]:
    """Where the state lives (memory, a shared SQLite file, Redis) and where engages are audited.

    Raises StateStoreError at once when a state path cannot hold a state file.
    """
    if store is not None:
        if path is not None:
            raise ConfigError("give state_path or store, not both")
        if not isinstance(store, Store):
            raise ConfigTypeError(f"store must be a Store (MemoryStore, SqliteStore, RedisStore), got {store!r}")
        return store, AuditLog(audit_target(store), clock=clock)
    if path is None:
        return MemoryStore(), AuditLog(None, clock=clock)
    return SqliteStore(path), AuditLog(os.fspath(path) + ".audit.jsonl", clock=clock)


def audit_target(store: Store) -> Union[str, AuditSink, None]:
    """Where a store's audit trail lives: beside a SQLite file, in a Redis namespace, nowhere for memory."""
    if isinstance(store, SqliteStore):
        return store.path + ".audit.jsonl"
    if store.kind == "redis":
        from circuit_breakers.redis.audit import RedisAuditSink  # noqa: PLC0415 - redis-py only when used

        return RedisAuditSink(store)  # type: ignore[arg-type]
    return None


def order_limiter(store: Store, config: TradingBreakerConfig, clock: Clock) -> Permits:
    """The order-rate windows: shared by every process on Redis, this process's own otherwise."""
    limits = (Limit(config.max_orders_per_minute, 60), Limit(config.max_orders_per_hour, 3600))
    if store.kind == "redis":
        from circuit_breakers.redis.ratelimit import RedisRateLimiter  # noqa: PLC0415 - redis-py only when used

        return RedisRateLimiter(store, *limits, name="rate_limit")  # type: ignore[arg-type]
    return RateLimiter(*limits, name="rate_limit", clock=clock)
