"""TradingCircuitBreakers: the six trading breakers over a PortfolioProvider, and the trading API.

A facade. The safety state (latches, faults, the kill switch, pending writes) lives in one
:class:`~circuit_breakers.trading.safety.SafetyCore`; this class reads the provider, judges the
readings with the pure rules (:mod:`~circuit_breakers.trading.rules`), and turns verdicts into the
core's transitions. Data flow: read the provider (no lock held) -> judge and update under the
facade's lock, then the core's -> fire callbacks after every lock is released. ``can_trade()`` is a
lock-free read of what the core derives; it never calls the provider.

The breakers in :attr:`TradingCircuitBreakers.manager` (``daily_loss``, ``max_drawdown``,
``volatility``) mirror the latches for status views; opening or closing those by hand releases
nothing, and every ``check_now()`` puts them back in line. ``connection`` is a real breaker fed by
``trade_guard`` and ``record_connection_*``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from decimal import Decimal
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar, Union

from typing_extensions import ParamSpec, Self

from circuit_breakers.breaker_base import ensure_sync
from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import CircuitBreakerConfig, check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError, KillSwitchError, StateStoreError, UnknownBreakerError
from circuit_breakers.events import Callbacks, KillHandlers, Pending, fire
from circuit_breakers.forks import on_fork_in_child, renew_locks
from circuit_breakers.ratelimit import Limit, Permits, RateLimiter
from circuit_breakers.registry import CircuitBreakerManager
from circuit_breakers.stores.base import Store, Subscription
from circuit_breakers.stores.memory import MemoryStore
from circuit_breakers.stores.sqlite import SqliteStore
from circuit_breakers.trading import rules
from circuit_breakers.trading.audit import AuditLog, AuditSink
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.gate import PreTradeGate
from circuit_breakers.trading.guard import TradeGuard
from circuit_breakers.trading.killswitch import ResetGuard, secret_bytes
from circuit_breakers.trading.latches import KILL_SWITCH
from circuit_breakers.trading.monitor import Monitor
from circuit_breakers.trading.orders import Order, OrderDecision, OrderLimits, TradingState, check_amount
from circuit_breakers.trading.provider import (
    PortfolioProvider,
    Reading,
    checked_decimal,
    missing_methods,
    take_reading,
)
from circuit_breakers.trading.rules import Level, Verdict
from circuit_breakers.trading.safety import Events, SafetyCore, StoreLockout
from circuit_breakers.trading.status import TradingStatus, build_details, heartbeat, process_id
from circuit_breakers.types import CircuitState, CircuitType

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

BREAKER_NAMES = ("daily_loss", "max_drawdown", "position_concentration", "volatility", "rate_limit", "connection")
_MIRRORED = {
    "daily_loss": CircuitType.DAILY_LOSS,
    "max_drawdown": CircuitType.MAX_DRAWDOWN,
    "volatility": CircuitType.VOLATILITY,
}
_ACTIVE = (TradingState.ACTIVE, "")
_AUTOMATIC = "circuit_breakers"


def _connection_config(config: TradingBreakerConfig) -> CircuitBreakerConfig:
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


def _open_store(
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


def _order_limiter(store: Store, config: TradingBreakerConfig, clock: Clock) -> Permits:
    """The order-rate windows: shared by every process on Redis, this process's own otherwise."""
    limits = (Limit(config.max_orders_per_minute, 60), Limit(config.max_orders_per_hour, 3600))
    if store.kind == "redis":
        from circuit_breakers.redis.ratelimit import RedisRateLimiter  # noqa: PLC0415 - redis-py only when used

        return RedisRateLimiter(store, *limits, name="rate_limit")  # type: ignore[arg-type]
    return RateLimiter(*limits, name="rate_limit", clock=clock)


def _sync_if_alive(owner: Callable[[], Optional[TradingCircuitBreakers]]) -> bool:
    """The store listener's callback: False once the breakers are gone (the listener then ends)."""
    breakers = owner()
    if breakers is None:
        return False
    breakers._sync()
    return True


class TradingCircuitBreakers:
    """Daily loss, max drawdown (kill switch), concentration, volatility, order rate and connection breakers.

    Every method is thread-safe. Only ``check_now()``, ``start_monitoring()``,
    ``check_position_concentration()``, ``check_order()`` and ``trade_guard()`` call the provider
    (and block while it does); ``can_trade()`` and ``get_blocking_reasons()`` never do.

    Where the state lives: in memory by default; with ``state_path``, in a SQLite file that every
    process on the host giving the same path shares (the kill switch, the day halts, the
    high-water mark, the reset key's hash and the wrong-key count survive restarts; engages and
    resets are audited to ``<state_path>.audit.jsonl``); with ``store=RedisStore(...)``, in Redis
    for processes on several hosts. ``reset_key`` (str or bytes) is kept only as a salted scrypt
    hash, stored with the state: the first process stores it, a later one with a different key is
    refused (ConfigError). Without any key the kill switch cannot be reset while
    ``require_manual_reset`` is on. A state that cannot be read engages the kill switch.

    Use it as a context manager (``with TradingCircuitBreakers(...) as breakers:``) or call
    :meth:`close` to stop its threads; an instance that is dropped stops them too.
    """

    def __init__(
        self,
        provider: PortfolioProvider,
        config: Optional[TradingBreakerConfig] = None,
        *,
        reset_key: Union[str, bytes, None] = None,
        state_path: Union[str, os.PathLike[str], None] = None,
        clock: Optional[Clock] = None,
        order_limits: Optional[OrderLimits] = None,
        store: Optional[Store] = None,
    ) -> None:
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
        secret = secret_bytes(reset_key)
        self.provider = provider
        self.config = config
        self._clock = clock
        self._mono = clock.monotonic
        self._stale_after = config.stale_after
        store, audit = _open_store(state_path, store, clock)

        self._on_kill = KillHandlers()
        self._on_trip: Callbacks[[str, str]] = Callbacks("trading trip")
        self._on_warning: Callbacks[[str, str]] = Callbacks("trading warning")
        self._on_recovery: Callbacks[[str]] = Callbacks("trading recovery")
        self.manager = CircuitBreakerManager(clock=clock)
        self._mirrors = {name: self.manager.create_circuit_breaker(name, kind) for name, kind in _MIRRORED.items()}
        self._connection = self.manager.create_circuit_breaker(
            "connection", CircuitType.CONNECTION_FAILURE, _connection_config(config)
        )
        self._connection.register_trip_callback(
            lambda name, _type: self._on_trip.dispatch(name, self._connection_reason())
        )
        self._connection.register_recovery_callback(lambda name, _type: self._on_recovery.dispatch(name))
        self._core = SafetyCore(
            store, audit, clock, config, Events(self._on_trip, self._on_recovery, self._on_kill, self._mirror)
        )
        self._guard = ResetGuard(
            None,
            clock=clock,
            max_attempts=config.reset_max_attempts,
            lockout_seconds=config.reset_lockout_seconds,
            record=StoreLockout(self._core),
        )
        self._limiter = _order_limiter(store, config, clock)
        self._gate = PreTradeGate(order_limits, self._limiter, clock=clock)
        self._monitor = Monitor(self, config.check_interval_seconds, name=f"circuit_breakers-monitor-{id(self):x}")

        self._init_evaluation()
        self._secret = secret  # kept only until the store has been asked for its key
        self._subscription: Optional[Subscription] = None
        self._process_id = process_id()
        self._closed = self._constructed = self._key_bound = False
        try:
            self._sync()
        except BaseException:
            store.close()
            raise
        self._constructed = True
        self._subscribe()
        on_fork_in_child(self, TradingCircuitBreakers._after_fork_in_child)
        self._finalizer = weakref.finalize(self, _release, self._subscription, store, self._monitor)

    def _init_evaluation(self) -> None:
        # _lock guards the evaluation state below; the core's lock is only ever taken inside it, and the
        # mirrors' and the connection breaker's locks only inside the core's.
        self._lock = threading.Lock()
        self._verdicts: Dict[str, Verdict] = {}
        # at or past a warning level, by breaker (and symbol: "position_concentration:SPY") -> message
        self._warnings: Dict[str, str] = {}
        self._reading: Optional[Reading] = None
        self._bad_readings = 0
        self._last_good: Optional[float] = None
        self._monitoring = False
        self._drawdowns: Dict[str, Decimal] = {}
        self._rebase_pending = False  # the kill switch was reset before any reading

    # --- the store ------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Adopt what the store holds and send what waits; binds the reset key on the first good read.

        Blocks on the store. Raises ConfigError only at construction, for a reset key that does not
        match the stored one; later, a mismatch blocks trading instead.
        """
        pending: Pending = []
        self._core.sync(pending)
        if not self._key_bound:
            with self._core.lock:
                try:
                    self._key_bound = self._core.attach_key(self._secret, pending)
                except ConfigError as exc:
                    if not self._constructed:
                        raise
                    logger.error("%s; trading is blocked", exc)
                    self._core.set_fault("reset_key", str(exc), pending)  # for good: this process has the wrong key
                    self._key_bound = True
                if self._key_bound:
                    self._secret = None
                self._guard.bind(self._core.key)
        fire(pending)

    def _subscribe(self) -> None:
        owner = weakref.ref(self)
        self._subscription = self._core.store.subscribe(lambda: _sync_if_alive(owner))

    def _mirror(self, name: str, engaged: bool, pending: Pending) -> None:
        mirror = self._mirrors.get(name)
        if mirror is not None:
            mirror._move(CircuitState.OPEN if engaged else CircuitState.CLOSED, pending, forced=engaged)

    def close(self) -> None:
        """Stop the monitor and the store's listener, withdraw the heartbeat, close the store. Idempotent.

        The instance may not be used afterwards (the store is closed).
        """
        if not self._closed:
            self._closed = True
            self.stop_monitoring()
            self._beat(None)
            if self._subscription is not None:
                self._subscription.close()  # here, unlike in the finalizer, waiting is safe
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        """In a forked child: free every lock, reopen the store, restart the listener and the monitor.

        Until its own monitor has polled, the child cannot trade (fault ``monitor``).
        """
        renew_locks(self)
        self._process_id = process_id()
        self._core.after_fork_in_child()
        self._monitor.forget_after_fork()
        if self._closed:
            return
        self._subscribe()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, self._subscription, self._core.store, self._monitor)
        if self._monitoring:
            pending: Pending = []
            with self._core.lock:
                self._core.set_fault("monitor", f"restarting in forked child (pid {os.getpid()})", pending)
            self._monitor.start(first_poll_in=0.0)

    # --- monitoring -----------------------------------------------------------------------------

    def start_monitoring(self) -> None:
        """Take a first reading now, then poll every ``check_interval_seconds`` on a daemon thread.

        Blocks for the first reading. A second call while running does nothing.
        """
        if self._monitor.alive:
            return
        pending: Pending = []
        with self._lock:
            self._monitoring = True
            with self._core.lock:
                self._core.clear_fault("monitor", pending)
        fire(pending)
        self.check_now()
        self._monitor.start()

    def stop_monitoring(self, timeout: float = 2.0) -> bool:
        """Stop the monitor thread; True if it ended within ``timeout`` seconds (see Monitor.stop).

        Raises ConfigTypeError / ConfigError for a bad timeout, before stopping anything.
        """
        timeout = check_number("timeout", timeout, inclusive=True, maximum=86400.0)
        pending: Pending = []
        with self._lock:
            self._monitoring = False
            with self._core.lock:
                self._core.clear_fault("monitor", pending)
        fire(pending)
        return self._monitor.stop(timeout)

    def _poll(self) -> None:
        """One poll of the monitor thread: watch the listener, check, lift a monitor fault, and publish
        this process's heartbeat for the ops tools."""
        subscription = self._subscription
        pending: Pending = []
        if subscription is not None and not subscription.alive and not self._closed:
            with self._core.lock:
                why = f"the listener of {self._core.store.describe()} stopped; restarting it"
                self._core.set_fault("listener", why, pending)
            self._subscribe()
        status = self.check_now()
        with self._core.lock:
            if self._subscription is None or self._subscription.alive:
                self._core.clear_fault("listener", pending)
            self._core.clear_fault("monitor", pending)
        fire(pending)
        self._beat(status)

    def _beat(self, status: Optional[TradingStatus]) -> None:
        """Publish (None: withdraw) this process's heartbeat in the store's ``procs`` table. Status only:
        a heartbeat that cannot be written is logged, and blocks nothing."""
        try:
            self._core.store.put("procs", self._process_id, None if status is None else heartbeat(self, status))
        except StateStoreError as exc:
            logger.debug("heartbeat not written: %s", exc)

    def _poll_failed(self, error: BaseException) -> None:
        pending: Pending = []
        with self._core.lock:
            self._core.set_fault("monitor", f"monitor poll raised {error!r}", pending)
        fire(pending)

    def _monitor_exited(self, error: Optional[BaseException]) -> None:
        pending: Pending = []
        with self._lock:
            monitoring = self._monitoring
            if monitoring:
                with self._core.lock:
                    self._core.set_fault("monitor", f"monitor thread died: {error!r}; restarting it", pending)
        fire(pending)
        if monitoring:
            self._monitor.start(first_poll_in=0.0)

    # --- evaluation ---------------------------------------------------------------------------

    def check_now(self) -> TradingStatus:
        """Read the provider once, apply every rule, and return the status.

        Blocks while the provider answers; runs on the caller's thread (the monitor calls the
        same code). A provider that raises or answers garbage is logged and counted; after
        ``connection_failure_threshold`` bad readings in a row trading halts until a good one.
        It also re-reads the state store and retries what could not be written.
        """
        self._sync()
        try:
            reading: Optional[Reading] = take_reading(self.provider, self.config.volatility_lookback_days)
            error = ""
        except Exception as exc:
            reading, error = None, f"{type(exc).__name__}: {exc}"
            logger.warning("bad provider reading: %s", error)
        pending: Pending = []
        with self._lock:
            core = self._core
            with core.lock:
                core.apply_time_rules(self._cleared, pending)  # yesterday's halt lifts before today is judged
                if reading is None:
                    self._bad_readings += 1
                    threshold = self.config.connection_failure_threshold
                    if self._bad_readings >= threshold:
                        core.set_fault(
                            "provider",
                            f"{self._bad_readings} bad readings in a row (threshold {threshold}); last: {error}",
                            pending,
                        )
                else:
                    self._bad_readings = 0
                    self._last_good = self._mono()
                    core.clear_fault("provider", pending)
                    self._evaluate(reading, pending)
                core.apply_time_rules(self._cleared, pending)
                for name, mirror in self._mirrors.items():  # undo any hand-made change to a mirror
                    engaged = name in core.held()
                    mirror._move(CircuitState.OPEN if engaged else CircuitState.CLOSED, pending, forced=engaged)
        fire(pending)
        return self.get_status()

    def _cleared(self, name: str) -> bool:
        """Whether a reading since the halt (or its adoption) no longer trips ``name``."""
        verdict = self._verdicts.get(name)
        return verdict is not None and verdict.level is not Level.TRIP

    def _evaluate(self, reading: Reading, pending: Pending) -> None:
        """Judge a good reading (both locks held)."""
        core = self._core
        self._reading = reading
        if self._rebase_pending:
            try:
                core.set_high_water(reading.total_value, min(reading.max_drawdown_pct, Decimal(0)), pending)
                self._rebase_pending = False
            except StateStoreError as exc:  # judging against the old mark would engage the switch again
                core.set_fault("state", f"cannot re-base the drawdown after a reset: {exc}", pending)
                return
        core.raise_high_water(reading.total_value, pending)
        if core.baseline < 0 and reading.max_drawdown_pct >= 0:
            core.clear_baseline(pending)  # the provider saw a new peak
        own = rules.drawdown_from_peak(reading.total_value, core.high_water or reading.total_value)
        theirs = rules.rebased_drawdown(reading.max_drawdown_pct, core.baseline)
        self._drawdowns = {"own": own, "provider": theirs, "effective": min(own, theirs)}
        config = self.config
        verdicts = {
            "daily_loss": rules.daily_loss(reading.daily_pnl_pct, config),
            "max_drawdown": rules.drawdown(min(own, theirs), config),
            "volatility": rules.volatility(reading.daily_pnl_pct, reading.daily_returns, config),
        }
        self._verdicts.update(verdicts)
        for name, verdict in verdicts.items():
            if name != "volatility":  # it has no warning level
                self._warn(name, verdict, pending)
            if verdict.level is Level.TRIP:
                core.engage(name, verdict.message, _AUTOMATIC, pending)

    def _warn(self, name: str, verdict: Verdict, pending: Pending, *, symbol: Optional[str] = None) -> None:
        """Fire a warning once per crossing of the warning level (per symbol for concentration);
        forget it when the figure recovers. Facade lock held."""
        key = name if symbol is None else f"{name}:{symbol}"
        if verdict.level >= Level.WARN:
            if key not in self._warnings:
                said = rules.as_warning(name, verdict, self.config)  # the level crossed, even if past the limit
                message = said if symbol is None else f"{symbol}: {said}"
                pending.append((self._on_warning, (name, message)))
            self._warnings[key] = verdict.message
        else:
            self._warnings.pop(key, None)

    def _warning_names(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(key.split(":", 1)[0] for key in self._warnings))

    # --- trading API --------------------------------------------------------------------------

    def can_trade(self) -> bool:
        """Whether trading may go ahead now. Never calls the provider; never blocks on I/O.

        False while the kill switch, a daily-loss or volatility halt, or an open connection
        breaker holds, while the provider fails, the state cannot be read or written, the audit
        trail cannot be written, or (while monitoring) the last good reading is older than the
        staleness bound.
        """
        core = self._core
        if core.attention or self._connection._period.state is CircuitState.OPEN:
            if core.certain:
                return False  # only a reading, a write or a person lifts these, never time: no need to look
            bounds = core.day_bounds  # one atomic read; no lock needed
            if bounds:
                now, mono = self._clock.now(), self._mono()
                for wall, day, auto in bounds:
                    if (now < wall or mono < day) and mono < auto:
                        return False
            return not self.get_blocking_reasons()
        if self._monitoring:
            last = self._last_good
            if last is None or self._mono() - last > self._stale_after:
                return False
        return True

    def get_blocking_reasons(self) -> List[str]:
        """One line for each thing that blocks trading now, each starting with the breaker's name."""
        return [f"{name}: {text}" for name, text in self._current_blocks()]

    def _current_blocks(self) -> List[Tuple[str, str]]:
        connection = self._connection_block()
        pending: Pending = []
        with self._core.lock:
            self._core.apply_time_rules(self._cleared, pending)
            blocks = self._blocks(self._mono(), connection)
        fire(pending)
        return blocks

    def _blocks(self, mono: float, connection: Optional[str]) -> List[Tuple[str, str]]:
        """(breaker name, why) for everything that blocks trading now. Core lock held."""
        blocks = self._core.blocks()
        if connection is not None:
            blocks.insert(len(self._core.held()), ("connection", connection))
        if self._monitoring and self._core.fault("monitor") is None:
            last = self._last_good
            if last is None:
                blocks.append(("monitor", "no good provider reading yet"))
            elif mono - last > self._stale_after:
                blocks.append(("monitor", f"last good reading {mono - last:.1f}s ago (limit {self._stale_after:g}s)"))
        return blocks

    def _trading_state(self) -> Tuple[TradingState, str]:
        """The trading state and, unless ACTIVE, why (only the breaker names when REDUCING)."""
        if self.can_trade():  # nothing blocks: ACTIVE, found without the lock
            return _ACTIVE
        blocks = self._current_blocks()
        state = self._classify(blocks)
        if state is TradingState.REDUCING:  # the names say enough: "reduce-only (daily_loss)"
            return state, ", ".join(name for name, _ in blocks)
        return state, "; ".join(f"{name}: {text}" for name, text in blocks)

    def _classify(self, blocks: List[Tuple[str, str]]) -> TradingState:
        if not blocks:
            return TradingState.ACTIVE
        if {name for name, _ in blocks}.issubset(self._gate.limits.reducing_breakers):
            return TradingState.REDUCING
        return TradingState.HALTED

    @property
    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING (only risk-reducing orders pass) or HALTED. Never calls the provider."""
        return self._trading_state()[0]

    def _connection_block(self) -> Optional[str]:
        """Why the connection breaker blocks, or None. Call with no lock held: reading the breaker may
        fire its callbacks."""
        return self._connection_reason() if self._connection.state is CircuitState.OPEN else None

    def _connection_reason(self) -> str:
        """Why the connection breaker is open: the failures that tripped it (they leave the window as it
        opens, so they are told from the threshold) or the failed trial call, the last error, the retry."""
        status = self._connection.get_status()
        retry = status["seconds_until_retry"]
        threshold = self.config.connection_failure_threshold
        if status["state"] == CircuitState.CLOSED.value:
            what = f"{status['failures_in_window']} failures in the last minute (threshold {threshold})"
        elif status["consecutive_trips"] > 1:
            what = f"a trial call failed (trip {status['consecutive_trips']} in a row)"
        else:
            what = f"{threshold} failures in the last minute (threshold {threshold})"
        return f"{what}; last: {status['last_failure_message']}" + (f"; retry in {retry:.1f}s" if retry else "")

    def record_order(self) -> bool:
        """Count one order if it fits both the per-minute and per-hour limits; False (not counted) if not.

        A throttle, not a halt: it never blocks ``can_trade()``, and frees up as the windows slide.
        """
        return bool(self._limiter.try_acquire())

    def check_position_concentration(self, symbol: str, proposed_value: Decimal) -> bool:
        """Whether adding ``proposed_value`` to ``symbol`` keeps it within ``max_position_pct``.

        Calls the provider (blocks while it answers). Returns False (fail closed) when the total
        value is zero or negative or the provider fails. Fires a warning above the warning level.
        Raises ConfigTypeError for a float or non-numeric value.
        """
        verdict = self._judge_concentration(symbol, proposed_value)
        return verdict.level is not Level.TRIP

    def _judge_concentration(self, symbol: str, proposed_value: Decimal) -> Verdict:
        """The verdict on adding ``proposed_value`` to ``symbol``, remembered for status and warnings."""
        if not isinstance(symbol, str) or not symbol:
            raise ConfigTypeError(f"symbol must be a non-empty str, got {symbol!r}")
        verdict = self._concentration(symbol, check_amount("proposed_value", proposed_value, signed=True))
        pending: Pending = []
        with self._lock:
            self._verdicts["position_concentration"] = verdict
            self._warn("position_concentration", verdict, pending, symbol=symbol)
        fire(pending)
        return verdict

    def _concentration(self, symbol: str, value: Decimal) -> Verdict:
        """The verdict alone, with no side effect (for check_order, which only looks)."""
        try:
            verdict = rules.concentration(
                checked_decimal("get_position_concentration", self.provider.get_position_concentration(symbol)),
                value,
                checked_decimal("get_total_value", self.provider.get_total_value()),
                self.config,
            )
        except Exception as exc:
            logger.warning("concentration check for %s failed closed: %r", symbol, exc)
            verdict = Verdict(Level.TRIP, None, f"provider failed: {type(exc).__name__}: {exc}")
        return verdict

    def record_connection_failure(self, error: Union[BaseException, str, None] = None) -> None:
        """Count a broker connection failure (an exception or a message); enough of them halt trading.

        Raises ConfigTypeError, counting nothing, for anything else.
        """
        if error is not None and not isinstance(error, (BaseException, str)):
            raise ConfigTypeError(f"error must be an exception, a str or None, got {error!r}")
        self._connection.record_failure(error)

    def record_connection_success(self) -> None:
        """Count a successful broker call: it closes a half-open connection breaker, as a trial would.

        Ignored while the breaker is open (its open timeout decides when it is tried again).
        """
        connection = self._connection
        if connection.state is not CircuitState.OPEN:
            ticket = connection._admit()
            if ticket is not None:
                connection._succeeded(ticket)

    def record_cash_flow(self, amount: Decimal) -> None:
        """Move the high-water mark by a deposit (+) or withdrawal (-) so it is not read as P&L.

        Call it when the cash moves; the monitor may take one reading in between. Written to the
        store before it applies: raises StateStoreError (nothing moved) if it cannot be, and
        ConfigTypeError for floats.
        """
        delta = check_amount("amount", amount, signed=True)
        pending: Pending = []
        with self._lock, self._core.lock:
            self._core.move_high_water(delta, pending)
        fire(pending)

    def trade_guard(self, symbol: Union[str, Order, None] = None, value: Optional[Decimal] = None) -> TradeGuard:
        """A ``with`` block that may trade only if trading is allowed now.

        Raises TradingHalted (with the reasons) on entry when blocked. With ``symbol`` and
        ``value`` it also checks concentration and counts the order against the rate limit, all
        or nothing. Given an :class:`Order` instead, it runs every pre-trade check and, if all pass,
        records the order (rate windows, duplicate memory, pending exposure) atomically; a refused
        order raises OrderRejected (a TradingHalted) carrying the decision and records nothing.
        Connection errors (``config.connection_errors``) leaving the block count as connection
        failures; a clean exit counts as a connection success. Calls the provider for
        order-specific figures; blocks while it answers.
        """
        return TradeGuard(self, symbol, value)

    # --- pre-trade order checks ---------------------------------------------------------------

    def check_order(self, order: Order) -> OrderDecision:
        """Run every pre-trade check on ``order`` and return the decision; records nothing, warns nobody.

        Never raises for a refused order (ConfigTypeError for something that is not an Order).
        Calls the provider for order-specific figures; blocks while it answers.
        """
        return self._decide(order, record=False)

    def _decide(self, order: Order, *, record: bool) -> OrderDecision:
        if not isinstance(order, Order):
            raise ConfigTypeError(f"expected an Order, got {order!r}")
        state, _ = self._trading_state()
        concentration = self._judge_concentration if record else self._concentration
        facts = self._gate.read_facts(order, self.provider, state, concentration)
        return self._gate.decide(order, facts, self._trading_state, record=record)

    def record_cancel(self) -> bool:
        """Count a cancel request against the message limit; False (not counted) when it is reached."""
        return self._gate.record_message()

    def record_modify(self) -> bool:
        """Count a modify request against the message limit; False (not counted) when it is reached."""
        return self._gate.record_message()

    def order_filled(self, client_order_id: str, quantity: Decimal) -> Decimal:
        """Release the pending exposure of a (partial) fill; return the quantity still working.

        A filled order stays in the duplicate memory (the same order again within the window is the
        duplicate the check exists for). Raises UnknownOrderError (a KeyError) for an id that is not
        pending, ConfigError for a quantity <= 0 or above what works.
        """
        return self._gate.filled(client_order_id, quantity)

    def order_cancelled(self, client_order_id: str) -> None:
        """Release the pending exposure of a cancelled order and forget it (a resend is not a duplicate).

        Raises UnknownOrderError (a KeyError) for an id that is not pending.
        """
        self._gate.cancelled(client_order_id)

    def order_rejected(self, client_order_id: str) -> None:
        """The broker rejected an order sent through ``trade_guard``: release and forget it, as a cancel.

        For an order whose send failed with an unknown outcome (shown in
        ``get_status().details["orders"]["unknown_orders"]``) once the application found out.
        Raises UnknownOrderError (a KeyError) for an id that is not pending.
        """
        self._gate.cancelled(client_order_id)

    def restrict(self, *symbols: str) -> None:
        """Put symbols on the restricted list: every order in them is refused from now on."""
        self._gate.restrict(symbols)

    def unrestrict(self, *symbols: str) -> None:
        """Take symbols off the restricted list."""
        self._gate.unrestrict(symbols)

    def register_kill_handler(self, handler: Callable[[str], object]) -> None:
        """Call ``handler(reason)`` once each time the kill switch engages, e.g. to cancel working orders.

        Runs synchronously on the thread that engaged it (or heard of it from the store), after
        every lock is released; one that raises, even ``SystemExit``, is logged and the others
        still run. Each outcome is in ``get_status()``.
        """
        self._on_kill.add(handler)

    def guarded(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorator: run ``func`` inside :meth:`trade_guard` (no order counting)."""
        ensure_sync(func)

        @functools.wraps(func)
        def guarded_call(*args: P.args, **kwargs: P.kwargs) -> R:
            with TradeGuard(self, None, None):
                return func(*args, **kwargs)

        return guarded_call

    # --- the kill switch and resets -------------------------------------------------------------

    @property
    def kill_switch_active(self) -> bool:
        """Whether the kill switch is engaged."""
        return self._core.kill_switch_engaged

    def engage_kill_switch(self, reason: object, *, actor: object = None) -> None:
        """Engage the kill switch by hand for every process sharing the state; only a keyed reset releases it.

        Never refused and never half done: any ``reason`` (and ``actor``) is recorded as its
        ``str()``. The switch holds at once; the kill handlers and trip callbacks run before this
        returns; the record reaches the store, and the audit trail, as soon as they can be written
        (trading stays blocked until then).
        """
        pending: Pending = []
        with self._core.lock:
            self._core.engage_by_hand(reason, "manual" if actor is None else actor, pending)
        fire(pending)

    def reset_kill_switch(self, auth_key: Union[str, bytes], *, actor: Optional[str] = None) -> bool:
        """Release the kill switch, for every process sharing the state, if ``auth_key`` is right;
        return whether it was right.

        Re-bases the drawdown: from now on it is measured from the current value, so a desk that
        is still under water is not killed again at once. A right key while the kill switch is not
        engaged changes nothing (no re-base: that would hide a drawdown). Wrong keys are logged
        (never the key), counted with the state, and after ``reset_max_attempts`` in a row lock
        further attempts out. Raises KillSwitchError when no reset key is configured or while
        locked out, StateStoreError (nothing released) when the release cannot be written, and
        ConfigTypeError for an ``actor`` that is not a str. Every refusal is audited too, with why,
        never with the key. Blocks for one scrypt hash and the store's writes.
        """
        if actor is not None and not isinstance(actor, str):
            raise ConfigTypeError(f"actor must be a str or None, got {actor!r}")
        self._sync()
        try:
            accepted = self._guard.check(auth_key)
        except (KillSwitchError, StateStoreError) as exc:
            self._audit_refusal(str(exc), actor)
            raise
        if not accepted:
            locked_for = self._guard.status()["locked_out_for"]
            self._audit_refusal(
                f"wrong key; resets locked out for {locked_for:.1f}s" if locked_for else "wrong key", actor
            )
            return False
        pending: Pending = []
        failure: Optional[StateStoreError] = None
        try:
            with self._lock, self._core.lock:
                core = self._core
                if not core.kill_switch_engaged:
                    logger.info("reset_kill_switch: the kill switch is not engaged; nothing to release")
                    return True
                core.repair(pending)  # an unreadable store is read again, or started afresh, before any write
                reading = self._reading
                rebase = None if reading is None else (reading.total_value, min(reading.max_drawdown_pct, Decimal(0)))
                if core.keyed_release(rebase, actor, pending) and reading is None:
                    self._rebase_pending = True  # no reading since a restart: re-base on the first one
        except StateStoreError as exc:
            failure = exc
        finally:
            fire(pending)
        if failure is not None:
            self._audit_refusal(f"the release cannot be written: {failure}", actor)
            raise failure
        return True

    def _audit_refusal(self, reason: str, actor: Optional[str]) -> None:
        """Audit a refused reset; the refusal stays the answer even if the trail cannot be written."""
        pending: Pending = []
        with self._core.lock:
            self._core.audit_event("kill_switch_reset_refused", reason, actor, pending)
        fire(pending)

    def reset_breaker(self, name: str) -> bool:
        """Reset one breaker by name; True if it reset something.

        The kill switch (``max_drawdown``) refuses with KillSwitchError (audited) while
        ``require_manual_reset`` is on; unknown names raise UnknownBreakerError (a KeyError).
        Resetting ``rate_limit`` on a shared store that cannot be reached, or a day halt whose
        release cannot be written, raises StateStoreError and changes nothing.
        """
        if not isinstance(name, str):
            raise ConfigTypeError(f"breaker name must be a str, got {name!r}")
        if name not in BREAKER_NAMES:
            raise UnknownBreakerError(name, BREAKER_NAMES)
        if name == "rate_limit":
            had_orders = any(limit["calls_in_window"] for limit in self._limiter.status()["limits"])
            self._limiter.reset()
            return bool(had_orders)
        if name == "connection":
            was_closed = self._connection.is_closed
            self._connection.reset()
            return not was_closed
        pending: Pending = []
        refused = False
        try:
            with self._lock, self._core.lock:
                changed, refused = self._reset_latch(name, pending)
        finally:
            fire(pending)  # a fault the refusal set has its trip callbacks too
        if refused:
            raise KillSwitchError("the kill switch needs reset_kill_switch(key) (require_manual_reset is on)")
        return changed

    def _reset_latch(self, name: str, pending: Pending) -> Tuple[bool, bool]:
        """reset_breaker for a latch or a warning: (changed, refused). Both locks held."""
        core = self._core
        if name == "position_concentration":
            keys = [key for key in self._warnings if key.split(":", 1)[0] == name]
            for key in keys:
                del self._warnings[key]
            return bool(keys), False
        if name == KILL_SWITCH:
            # Decided under the core's lock: an engage on another thread cannot slip in between.
            if not core.kill_switch_engaged:
                return False, False
            if self.config.require_manual_reset:
                why = "reset_breaker: require_manual_reset is on"
                core.audit_event("kill_switch_reset_refused", why, None, pending)
                return False, True
            return core.release_kill_switch(None, pending, by="reset_breaker"), False
        changed = core.release_day_halt(name, pending)
        if not changed and name in core.held():
            raise StateStoreError(f"cannot lift {name}: the store did not take the release")
        return changed, False

    def reset_all(self) -> None:
        """Reset every breaker except the kill switch."""
        for name in BREAKER_NAMES:
            if name != KILL_SWITCH:
                self.reset_breaker(name)

    # --- callbacks ------------------------------------------------------------------------------

    def register_trip_callback(self, callback: Callable[[str, str], object]) -> None:
        """Call ``callback(name, reason)`` when a breaker halts trading."""
        self._on_trip.add(callback)

    def register_warning_callback(self, callback: Callable[[str, str], object]) -> None:
        """Call ``callback(name, message)`` once each time a figure crosses its warning level."""
        self._on_warning.add(callback)

    def register_recovery_callback(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(name)`` when a halt lifts."""
        self._on_recovery.add(callback)

    # --- status ---------------------------------------------------------------------------------

    def get_status(self) -> TradingStatus:
        """A consistent snapshot of every breaker, with figures, limits and last trips."""
        connection_block = self._connection_block()
        pending: Pending = []
        with self._lock, self._core.lock:
            core = self._core
            mono = self._mono()
            core.apply_time_rules(self._cleared, pending)
            blocks = self._blocks(mono, connection_block)
            details = build_details(
                self.config,
                held=core.held(),
                last=dict(core.last),
                verdicts=self._verdicts,
                warned=self._warning_names(),
            )
            details["max_drawdown"].update(
                own_high_water_mark=core.high_water,
                own_drawdown_pct=self._drawdowns.get("own"),
                provider_drawdown_pct=self._drawdowns.get("provider"),
                drawdown_baseline_pct=core.baseline,
            )
            details["state"] = core.health()
            kill_switch = core.kill_switch_engaged
            warnings = self._warning_names()
            last_good = self._last_good
            monitoring = self._monitoring
        fire(pending)
        details["max_drawdown"]["reset"] = self._guard.status()
        reasons = [f"{name}: {text}" for name, text in blocks]
        try:
            limiter: Optional[List[Dict[str, Any]]] = self._limiter.status()["limits"]
            details["rate_limit"] = {"limits": limiter, "error": None}
        except StateStoreError as exc:  # a shared limiter whose store is down: record_order() refuses
            limiter = None
            details["rate_limit"] = {"limits": None, "error": str(exc)}
        details["connection"] = self._connection.get_status()
        details["orders"] = self._gate.status()
        details["max_drawdown"]["kill_handlers"] = self._on_kill.outcomes()
        return TradingStatus(
            trading_state=self._classify(blocks),
            can_trade=not reasons,
            blocking_breakers=tuple(dict.fromkeys(name for name, _ in blocks)),
            warning_breakers=warnings,
            reasons=tuple(reasons),
            kill_switch_active=kill_switch,
            orders_last_minute=None if limiter is None else int(limiter[0]["calls_in_window"]),
            orders_last_hour=None if limiter is None else int(limiter[1]["calls_in_window"]),
            monitoring=monitoring,
            monitor_alive=self._monitor.alive,
            last_reading_age=None if last_good is None else mono - last_good,
            details=details,
        )

    def __repr__(self) -> str:
        state = "blocked" if self._core.attention else "ok"
        return f"<TradingCircuitBreakers {state} kill_switch={'on' if self.kill_switch_active else 'off'}>"


def _release(subscription: Optional[Subscription], store: Store, monitor: Monitor) -> None:
    """What an instance leaves behind when closed or collected: its threads and the store's connections.

    It never waits: run by the garbage collector, it may be inside redis-py holding the very lock the
    listener waits for. The listener and the monitor end on their own at their next wake-up, which
    their stop events make immediate.
    """
    monitor.stop(timeout=0.0)
    if subscription is not None:
        subscription.close(wait=False)
    store.close()


__all__ = ["BREAKER_NAMES", "TradingCircuitBreakers"]
