"""TradingCircuitBreakers: the six trading breakers over a PortfolioProvider, and the trading API.

Data flow: read the provider (no lock held) -> judge the reading with the pure rules and update
latches under the facade's lock -> fire callbacks after the lock is released. ``can_trade()`` is
a lock-free read of flags the evaluation maintains; it never calls the provider.

The facade's own latches are the truth. The breakers in :attr:`TradingCircuitBreakers.manager`
(``daily_loss``, ``max_drawdown``, ``volatility``, ``connection``) mirror them for status views;
opening or closing those by hand does not release a halt, and every ``check_now()`` (so every
poll of the monitor) puts them back in line with the latches (``connection`` is the exception: it
is a real breaker fed by ``trade_guard`` and ``record_connection_*``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import threading
import weakref
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from typing_extensions import ParamSpec

from circuit_breakers.breaker import ensure_sync
from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import CircuitBreakerConfig, to_decimal
from circuit_breakers.errors import (
    ConfigError,
    ConfigTypeError,
    KillSwitchError,
    StateStoreError,
    UnknownBreakerError,
)
from circuit_breakers.events import Callbacks, KillHandlers, Pending, fire
from circuit_breakers.ratelimit import Limit
from circuit_breakers.registry import CircuitBreakerManager
from circuit_breakers.stores.file import FileStore
from circuit_breakers.stores.memory import MemoryStore
from circuit_breakers.stores.shared import DocumentState, SharedState
from circuit_breakers.trading import rules
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.gate import PreTradeGate
from circuit_breakers.trading.guard import TradeGuard
from circuit_breakers.trading.killswitch import AuditLog, ResetGuard, ResetKey
from circuit_breakers.trading.monitor import Monitor
from circuit_breakers.trading.orders import Order, OrderDecision, OrderLimits, TradingState
from circuit_breakers.trading.provider import PortfolioProvider, Reading, checked_decimal, take_reading
from circuit_breakers.trading.rules import Level, Verdict
from circuit_breakers.trading.status import TradingStatus
from circuit_breakers.types import CircuitState, CircuitType

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

BREAKER_NAMES = ("daily_loss", "max_drawdown", "position_concentration", "volatility", "rate_limit", "connection")
_LATCHES = {
    "daily_loss": CircuitType.DAILY_LOSS,
    "max_drawdown": CircuitType.MAX_DRAWDOWN,
    "volatility": CircuitType.VOLATILITY,
}
_DAY_HALTS = ("daily_loss", "volatility")  # lift when the trading day rolls over
_ONE_DAY = dt.timedelta(days=1)
_DST_MARGIN = dt.timedelta(hours=2)
_NEVER = float("inf")
_ACTIVE = (TradingState.ACTIVE, "")


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


class _Trip:
    """A latched halt: why, when, and on which trading day."""

    __slots__ = ("at", "at_mono", "day", "reason", "holds_before")

    def __init__(self, reason: str, at: dt.datetime, at_mono: float, day: dt.date) -> None:
        self.reason, self.at, self.at_mono, self.day = reason, at, at_mono, day
        # For can_trade()'s lock-free path: (wall, monotonic) times before which a day halt holds
        # for certain; set by the owner, who knows the config. The default promises nothing.
        self.holds_before: Tuple[dt.datetime, float] = (at, at_mono)

    def record(self) -> Dict[str, Any]:
        """The latch as the store keeps it."""
        return {"reason": self.reason, "since": self.at.isoformat(), "trading_day": self.day.isoformat()}


def _parse_snapshot(snapshot: Dict[str, Dict[str, Any]], where: str) -> Tuple[Dict[str, _Trip], Dict[str, Decimal]]:
    """The latches and numeric values of a store snapshot; StateStoreError naming ``where`` if any is unreadable."""
    try:
        latches = {
            name: _Trip(
                str(record["reason"]),
                dt.datetime.fromisoformat(record["since"]),
                0.0,
                dt.date.fromisoformat(record["trading_day"]),
            )
            for name, record in snapshot["latches"].items()
            if name in _LATCHES
        }
        values: Dict[str, Decimal] = {
            key: to_decimal(key, snapshot["values"][key])
            for key in ("high_water_mark", "drawdown_baseline_pct")
            if key in snapshot["values"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise StateStoreError(f"{where}: stored state is unreadable: {type(exc).__name__}: {exc}") from exc
    return latches, values


def _sync_if_alive(owner: Callable[[], Optional[TradingCircuitBreakers]]) -> None:
    breakers = owner()
    if breakers is not None:
        breakers._sync()


def _state_and_audit(
    path: Union[str, os.PathLike[str], None], store: Optional[SharedState], clock: Clock
) -> Tuple[SharedState, AuditLog]:
    """Where the state lives (memory, a file, or a shared store) and where engages are audited.

    Raises StateStoreError at once when a state path cannot be written.
    """
    if store is not None:
        if path is not None:
            raise ConfigError("give state_path or store, not both")
        if not isinstance(store, SharedState):
            raise ConfigTypeError(f"store must be a SharedState such as RedisStore, got {store!r}")
        return store, AuditLog(None, clock=clock)
    if path is None:
        return DocumentState(MemoryStore()), AuditLog(None, clock=clock)
    file_store = FileStore(path)
    file_store.check_writable()
    return DocumentState(file_store), AuditLog(os.fspath(path) + ".audit.jsonl", clock=clock)


def _shared_reset_key(state: SharedState, secret: Union[str, bytes, None]) -> Optional[ResetKey]:
    """The desk's reset key: the first process to arrive stores its hash; later ones must match it."""
    mine = ResetKey(secret) if secret is not None else None
    stored = state.update_value(
        "reset_key", lambda old: old if old is not None or mine is None else json.dumps(mine.to_dict())
    )
    if stored is None:
        return None
    shared = ResetKey.from_dict(json.loads(stored))
    if secret is not None and not shared.verify(secret):
        raise ConfigError(f"reset_key does not match the reset key already stored in {state.describe()}")
    return shared


class TradingCircuitBreakers:
    """Daily loss, max drawdown (kill switch), concentration, volatility, order rate and connection breakers.

    Every method is thread-safe. Only ``check_now()``, ``start_monitoring()`` and
    ``check_position_concentration()`` call the provider (and block while it does); ``can_trade()``
    and ``get_blocking_reasons()`` never do.

    ``reset_key`` (str or bytes) is kept only as a salted scrypt hash; without it the kill switch
    cannot be reset when ``require_manual_reset`` is on. With ``state_path`` the kill switch, the
    day halts and the high-water mark survive restarts (atomic JSON file; an audit trail of engages
    and resets is appended to ``<state_path>.audit.jsonl``); a state file that cannot be read
    engages the kill switch.
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
        store: Optional[SharedState] = None,
    ) -> None:
        if not isinstance(provider, PortfolioProvider):
            raise ConfigTypeError(f"provider must implement PortfolioProvider, got {provider!r}")
        if config is None:
            config = TradingBreakerConfig()
        elif not isinstance(config, TradingBreakerConfig):
            raise ConfigTypeError(f"config must be a TradingBreakerConfig, got {config!r}")
        self.provider = provider
        self.config = config
        self._clock = SYSTEM_CLOCK if clock is None else clock
        self._mono = self._clock.monotonic
        self._stale_after = config.stale_after
        self._state, self._audit = _state_and_audit(state_path, store, self._clock)
        self._guard = ResetGuard(
            _shared_reset_key(self._state, reset_key)
            if self._state.shared
            else (ResetKey(reset_key) if reset_key is not None else None),
            clock=self._clock,
            max_attempts=config.reset_max_attempts,
            lockout_seconds=config.reset_lockout_seconds,
        )

        self.manager = CircuitBreakerManager(clock=self._clock)
        self._mirrors = {name: self.manager.create_circuit_breaker(name, kind) for name, kind in _LATCHES.items()}
        self._connection = self.manager.create_circuit_breaker(
            "connection", CircuitType.CONNECTION_FAILURE, _connection_config(config)
        )
        self._limiter = self._state.rate_limiter(
            Limit(config.max_orders_per_minute, 60),
            Limit(config.max_orders_per_hour, 3600),
            name="rate_limit",
            clock=self._clock,
        )
        if order_limits is None:
            order_limits = OrderLimits()
        elif not isinstance(order_limits, OrderLimits):
            raise ConfigTypeError(f"order_limits must be OrderLimits, got {order_limits!r}")
        self._gate = PreTradeGate(order_limits, self._limiter, clock=self._clock)
        self._on_kill = KillHandlers()
        self._on_trip: Callbacks[[str, str]] = Callbacks("trading trip")
        self._on_warning: Callbacks[[str, str]] = Callbacks("trading warning")
        self._on_recovery: Callbacks[[str]] = Callbacks("trading recovery")
        self._connection.register_trip_callback(
            lambda name, _type: self._on_trip.dispatch(name, self._connection_reason())
        )
        self._connection.register_recovery_callback(lambda name, _type: self._on_recovery.dispatch(name))
        self._monitor = Monitor(self, config.check_interval_seconds, name=f"circuit_breakers-monitor-{id(self):x}")

        # _lock guards everything below; the mirrors' and the connection breaker's locks are only
        # ever taken inside it, never the other way round.
        self._lock = threading.Lock()
        self._trips: Dict[str, _Trip] = {}  # latched halts: daily_loss, max_drawdown (kill switch), volatility
        self._last_trips: Dict[str, _Trip] = {}  # most recent trip of each breaker, for status
        self._faults: Dict[str, str] = {}  # fail-closed conditions: provider, monitor, state
        # at or past a warning level, by breaker (and symbol: "position_concentration:SPY") -> message
        self._warnings: Dict[str, str] = {}
        self._verdicts: Dict[str, Verdict] = {}
        self._reading: Optional[Reading] = None
        self._bad_readings = 0
        self._last_good: Optional[float] = None
        self._monitoring = False
        self._high_water: Optional[Decimal] = None
        self._baseline = Decimal(0)  # provider drawdown at the last kill-switch reset
        self._drawdowns: Dict[str, Decimal] = {}
        self._attention = False  # any latch or fault: can_trade() takes the slow path
        self._rebase_pending = False  # the kill switch was reset before any reading
        self._writes = 0  # local changes sent to the store; a sync that raced one is dropped
        self._unsent: Dict[str, Optional[Dict[str, Any]]] = {}  # latch writes that failed: record, or None to drop
        self._attach_store()

    def _attach_store(self) -> None:
        """Adopt what the store holds, then listen for other processes' changes."""
        self._sync()
        if isinstance(self._state, DocumentState):
            with self._lock:
                if "state" in self._faults:  # a state file that cannot be read may have held an engaged switch
                    reason = f"state unreadable: {self._faults['state']}"
                    self._engage(reason, self._mono(), self._clock.now(), [], actor="circuit_breakers")
                else:  # a new state path gets its file now, so a bad path shows at once
                    self._write(lambda state: state.flush() if isinstance(state, DocumentState) else None)
        owner = weakref.ref(self)
        self._unsubscribe = self._state.subscribe(lambda: _sync_if_alive(owner))

    # --- state kept in the store ------------------------------------------------------------

    def _write(self, operation: Callable[[SharedState], object]) -> bool:
        """Apply one change to the store; return whether it went through.

        A failure blocks trading. Only a good read (:meth:`_sync`) lifts that block: a write that
        succeeds shows the store answers, not that what it holds is readable. Called with the lock
        held: changes must reach the store in the order they were made.
        """
        self._writes += 1
        try:
            operation(self._state)
        except StateStoreError as exc:
            self._store_failed(exc)
            return False
        except (ArithmeticError, ValueError) as exc:  # an update that could not parse the stored value
            self._store_failed(StateStoreError(f"{self._state.describe()}: stored value unreadable: {exc!r}"))
            return False
        return True

    def _write_value(self, key: str, update: Callable[[Optional[str]], Optional[str]]) -> None:
        """Update a stored value (lock held); the store's answer wins, for values other processes share."""
        result: List[Optional[str]] = []
        self._write(lambda state: result.append(state.update_value(key, update)))
        if result:
            value = None if result[0] is None else to_decimal(key, result[0])
            if key == "high_water_mark":
                self._high_water = value
            else:
                self._baseline = Decimal(0) if value is None else value

    def _store_failed(self, exc: StateStoreError) -> None:
        """Lock held."""
        if "state" not in self._faults:
            logger.error("%s; trading is blocked until the state store answers", exc)
        self._faults["state"] = str(exc)
        self._attention = True

    def _record_audit(self, event: str, *, reason: Optional[str], actor: Optional[str]) -> None:
        """Append to the audit trail (lock held). A trail that cannot be written never stops the
        engage or reset it records: it is logged by AuditLog and blocks trading like a failed store."""
        try:
            self._audit.record(event, reason=reason, actor=actor)
        except StateStoreError as exc:
            self._store_failed(exc)

    def _put(self, name: str, record: Optional[Dict[str, Any]]) -> None:
        """Set (or, with None, drop) a latch in the store; remembered and retried if the store fails."""
        self._unsent[name] = record

        def send(state: SharedState) -> None:
            if record is None:
                state.drop_latch(name)
            else:
                state.put_latch(name, record)
            self._unsent.pop(name, None)

        self._write(send)

    def _sync(self) -> None:
        """Adopt the store's latches and values: other processes' engages and resets, or a restart's.

        Blocks on the store, with no lock held while it answers. A store that fails blocks trading
        until it answers again.
        """
        with self._lock:
            for name, record in list(self._unsent.items()):
                self._put(name, record)
            writes = self._writes
        try:
            latches, values = _parse_snapshot(self._state.snapshot(), self._state.describe())
        except StateStoreError as exc:
            with self._lock:
                self._store_failed(exc)
            return
        pending: Pending = []
        with self._lock:
            if self._writes != writes or self._unsent:
                return  # a local change raced this read, or could not be sent: the next sync decides
            mono, now = self._mono(), self._clock.now()
            for name in _LATCHES:
                trip = latches.get(name)
                if trip is not None and name not in self._trips:
                    self._latch(name, trip.reason, now, mono, pending, day=trip.day, at=trip.at, store=False)
                    self._verdicts.pop(name, None)  # auto recovery waits for a reading of our own
                    if name == "max_drawdown":
                        pending.append((self._on_kill, (trip.reason,)))
                        logger.warning("kill switch engaged (from %s): %s", self._state.describe(), trip.reason)
                elif trip is None and name in self._trips:
                    self._release(name, pending, store=False)
            self._high_water = values.get("high_water_mark", self._high_water)
            self._baseline = values.get("drawdown_baseline_pct", self._baseline)
            self._faults.pop("state", None)
            self._attention = bool(self._trips or self._faults)
        fire(pending)

    def close(self) -> None:
        """Stop the monitor thread and the store's listener. Idempotent."""
        self.stop_monitoring()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # --- latches (lock held) -------------------------------------------------------------------

    def _latch(
        self,
        name: str,
        reason: str,
        now: dt.datetime,
        mono: float,
        pending: Pending,
        *,
        day: Optional[dt.date] = None,
        at: Optional[dt.datetime] = None,
        store: bool = True,
    ) -> None:
        config = self.config
        trip = _Trip(reason, at or now, mono, day or config.trading_day(now))
        # The next trading day starts at day_start(day + 1); two hours earlier keeps this side of any
        # DST oddity of the reset time, where the exact rule (_apply_time_rules) decides instead.
        next_day = config.day_start(trip.day + _ONE_DAY) - _DST_MARGIN
        trip.holds_before = (next_day, mono + config.cooldown_seconds if config.auto_recovery else _NEVER)
        self._trips[name] = self._last_trips[name] = trip
        self._mirrors[name]._move(CircuitState.OPEN, pending, forced=True)
        self._attention = True
        pending.append((self._on_trip, (name, reason)))
        if store:
            self._put(name, trip.record())

    def _release(self, name: str, pending: Pending, *, store: bool = True) -> bool:
        if self._trips.pop(name, None) is None:
            return False
        self._mirrors[name]._move(CircuitState.CLOSED, pending)
        self._attention = bool(self._trips or self._faults)
        pending.append((self._on_recovery, (name,)))
        if store:
            self._put(name, None)
        return True

    def _engage(self, reason: str, mono: float, now: dt.datetime, pending: Pending, *, actor: str) -> None:
        if "max_drawdown" in self._trips:
            return
        self._latch("max_drawdown", reason, now, mono, pending)
        pending.append((self._on_kill, (reason,)))
        self._record_audit("kill_switch_engaged", reason=reason, actor=actor)

    def _warn(self, name: str, verdict: Verdict, pending: Pending, *, symbol: Optional[str] = None) -> None:
        """Fire a warning once per crossing of the warning level (per symbol for concentration);
        forget it when the figure recovers."""
        key = name if symbol is None else f"{name}:{symbol}"
        if verdict.level >= Level.WARN:
            if key not in self._warnings:
                message = verdict.message if symbol is None else f"{symbol}: {verdict.message}"
                pending.append((self._on_warning, (name, message)))
            self._warnings[key] = verdict.message
        else:
            self._warnings.pop(key, None)

    def _warning_names(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(key.split(":", 1)[0] for key in self._warnings))

    # --- evaluation ---------------------------------------------------------------------------

    def check_now(self) -> TradingStatus:
        """Read the provider once, apply every rule, and return the status.

        Blocks while the provider answers; runs on the caller's thread (the monitor calls the
        same code). A provider that raises or answers garbage is logged and counted; after
        ``connection_failure_threshold`` bad readings in a row trading halts until a good one.
        It also re-reads the state store (the polling fallback for shared stores).
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
            mono, now = self._mono(), self._clock.now()
            if reading is None:
                self._bad_readings += 1
                if self._bad_readings >= self.config.connection_failure_threshold:
                    if "provider" not in self._faults:
                        pending.append((self._on_trip, ("provider", error)))
                    self._faults["provider"] = (
                        f"{self._bad_readings} bad readings in a row "
                        f"(threshold {self.config.connection_failure_threshold}); last: {error}"
                    )
                    self._attention = True
            else:
                self._bad_readings = 0
                self._last_good = mono
                if self._faults.pop("provider", None) is not None:
                    pending.append((self._on_recovery, ("provider",)))
                self._attention = bool(self._trips or self._faults)
                self._evaluate(reading, mono, now, pending)
            self._apply_time_rules(mono, now, pending)
            for name, mirror in self._mirrors.items():  # undo any hand-made change to a mirror
                mirror._move(
                    CircuitState.OPEN if name in self._trips else CircuitState.CLOSED,
                    pending,
                    forced=name in self._trips,
                )
        fire(pending)
        return self.get_status()

    def _rebase(self, reading: Reading) -> None:
        """Measure drawdown from ``reading`` on: after a kill-switch reset. Lock held."""
        total, baseline = reading.total_value, min(reading.max_drawdown_pct, Decimal(0))
        self._write_value("high_water_mark", lambda old: str(total))
        self._write_value("drawdown_baseline_pct", lambda old: str(baseline) if baseline < 0 else None)
        self._rebase_pending = False

    def _evaluate(self, reading: Reading, mono: float, now: dt.datetime, pending: Pending) -> None:
        self._reading = reading
        if self._rebase_pending:
            self._rebase(reading)
        config = self.config
        total = reading.total_value
        if self._high_water is None or total > self._high_water:
            self._high_water = total
            self._write_value(
                "high_water_mark", lambda old: old if old is not None and Decimal(old) >= total else str(total)
            )
        if self._baseline < 0 and reading.max_drawdown_pct >= 0:
            self._baseline = Decimal(0)  # the provider saw a new peak
            self._write_value("drawdown_baseline_pct", lambda old: None)
        own = rules.drawdown_from_peak(reading.total_value, self._high_water)
        theirs = rules.rebased_drawdown(reading.max_drawdown_pct, self._baseline)
        self._drawdowns = {"own": own, "provider": theirs, "effective": min(own, theirs)}

        verdicts = {
            "daily_loss": rules.daily_loss(reading.daily_pnl_pct, config),
            "max_drawdown": rules.drawdown(min(own, theirs), config),
            "volatility": rules.volatility(reading.daily_pnl_pct, reading.daily_returns, config),
        }
        self._verdicts.update(verdicts)
        for name, verdict in verdicts.items():
            if name != "volatility":  # it has no warning level
                self._warn(name, verdict, pending)
            if verdict.level is Level.TRIP and name not in self._trips:
                if name == "max_drawdown":
                    self._engage(verdict.message, mono, now, pending, actor="circuit_breakers")
                else:
                    self._latch(name, verdict.message, now, mono, pending)

    def _apply_time_rules(self, mono: float, now: dt.datetime, pending: Pending) -> None:
        """Lift day halts on a new trading day, and (with auto_recovery) after the cooldown if cleared."""
        if not self._trips:
            return
        today = self.config.trading_day(now)
        for name in _DAY_HALTS:
            trip = self._trips.get(name)
            if trip is None:
                continue
            verdict = self._verdicts.get(name)  # None until a reading after a restart or adoption
            cleared = verdict is not None and verdict.level is not Level.TRIP
            cooled = self.config.auto_recovery and mono - trip.at_mono >= self.config.cooldown_seconds
            if today > trip.day or (cooled and cleared):  # a wall clock stepped back lifts nothing
                self._release(name, pending)

    # --- trading API --------------------------------------------------------------------------

    def can_trade(self) -> bool:
        """Whether trading may go ahead now. Never calls the provider; never blocks on I/O.

        False while the kill switch, a daily-loss or volatility halt, or an open connection
        breaker holds, while the provider fails, the state cannot be written, or (while
        monitoring) the last good reading is older than the staleness bound.
        """
        if self._attention or self._connection._period.state is CircuitState.OPEN:
            if self._faults or "max_drawdown" in self._trips:
                return False  # only a reading or a person lifts these, never time: no need to look
            trips = tuple(self._trips.values())  # one atomic copy; no lock needed to read it
            if trips:
                now, mono = self._clock.now(), self._mono()
                for trip in trips:
                    if now < trip.holds_before[0] and mono < trip.holds_before[1]:
                        return False
            return not self.get_blocking_reasons()
        if self._monitoring:
            last = self._last_good
            if last is None or self._mono() - last > self._stale_after:
                return False
        return True

    def get_blocking_reasons(self) -> List[str]:
        """One line for each thing that blocks trading now, each starting with the breaker's name."""
        connection = self._connection_block()
        pending: Pending = []
        with self._lock:
            mono = self._mono()
            self._apply_time_rules(mono, self._clock.now(), pending)
            blocks = self._blocks(mono, connection)
        fire(pending)
        return [f"{name}: {text}" for name, text in blocks]

    def _blocks(self, mono: float, connection: Optional[str]) -> List[Tuple[str, str]]:
        """(breaker name, why) for everything that blocks trading now. Lock held."""
        blocks = []
        if "max_drawdown" in self._trips:
            blocks.append(("max_drawdown", f"kill switch engaged: {self._trips['max_drawdown'].reason}"))
        blocks.extend((name, self._trips[name].reason) for name in _DAY_HALTS if name in self._trips)
        if connection is not None:
            blocks.append(("connection", connection))
        blocks.extend(self._faults.items())
        if self._monitoring and "monitor" not in self._faults:
            if self._last_good is None:
                blocks.append(("monitor", "no good provider reading yet"))
            elif mono - self._last_good > self._stale_after:
                age = mono - self._last_good
                blocks.append(("monitor", f"last good reading {age:.1f}s ago (limit {self._stale_after:g}s)"))
        return blocks

    def _trading_state(self) -> Tuple[TradingState, str]:
        """The trading state and, unless ACTIVE, why (only the breaker names when REDUCING)."""
        if self.can_trade():  # nothing blocks: ACTIVE, found without the lock
            return _ACTIVE
        connection = self._connection_block()
        pending: Pending = []
        with self._lock:
            mono = self._mono()
            self._apply_time_rules(mono, self._clock.now(), pending)
            blocks = self._blocks(mono, connection)
        fire(pending)
        state = self._classify(blocks)
        if state is TradingState.REDUCING:  # the names say enough: "reduce-only (daily_loss)"
            return state, ", ".join(name for name, _ in blocks)
        return state, "; ".join(f"{name}: {text}" for name, text in blocks)

    def _classify(self, blocks: List[Tuple[str, str]]) -> TradingState:
        if not blocks:
            return TradingState.ACTIVE
        if {name for name, _ in blocks} <= self._gate.limits.reducing_breakers:
            return TradingState.REDUCING
        return TradingState.HALTED

    @property
    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING (only risk-reducing orders pass) or HALTED. Never calls the provider."""
        return self._trading_state()[0]

    def _connection_block(self) -> Optional[str]:
        """Why the connection breaker blocks, or None. Call with the facade lock released: reading the
        breaker may fire its callbacks."""
        return self._connection_reason() if self._connection.state is CircuitState.OPEN else None

    def _connection_reason(self) -> str:
        status = self._connection.get_status()
        retry = status["seconds_until_retry"]
        return (
            f"{status['failed_requests']} failures (threshold {self.config.connection_failure_threshold}); "
            f"last: {status['last_failure_message']}" + (f"; retry in {retry:.1f}s" if retry else "")
        )

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
        verdict = self._concentration(symbol, to_decimal("proposed_value", proposed_value))
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
        """Count a broker connection failure (an exception or a message); enough of them halt trading."""
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
        """Move the library's high-water mark by a deposit (+) or withdrawal (-) so it is not read as P&L.

        Call it when the cash moves; the monitor may take one reading in between. Raises
        ConfigTypeError for floats.
        """
        delta = to_decimal("amount", amount)

        def moved(old: Optional[str]) -> Optional[str]:
            if old is None:
                return None
            mark = Decimal(old) + delta
            return str(mark) if mark > 0 else None

        with self._lock:
            if self._high_water is not None:
                self._high_water = self._high_water + delta if self._high_water + delta > 0 else None
                self._write_value("high_water_mark", moved)

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

        Raises UnknownOrderError (a KeyError) for an id that is not pending.
        """
        return self._gate.filled(client_order_id, quantity)

    def order_cancelled(self, client_order_id: str) -> None:
        """Release the pending exposure of a cancelled order; UnknownOrderError for an unknown id."""
        self._gate.cancelled(client_order_id)

    def restrict(self, *symbols: str) -> None:
        """Put symbols on the restricted list: every order in them is refused from now on."""
        self._gate.restrict(symbols)

    def unrestrict(self, *symbols: str) -> None:
        """Take symbols off the restricted list."""
        self._gate.unrestrict(symbols)

    def register_kill_handler(self, handler: Callable[[str], object]) -> None:
        """Call ``handler(reason)`` once each time the kill switch engages, e.g. to cancel working orders.

        Runs synchronously on the thread that engaged it, after every lock is released; one that
        raises is logged and the others still run. Each outcome is in ``get_status()``.
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

    # --- resets ---------------------------------------------------------------------------------

    @property
    def kill_switch_active(self) -> bool:
        """Whether the kill switch is engaged."""
        return "max_drawdown" in self._trips

    def engage_kill_switch(self, reason: str, *, actor: Optional[str] = None) -> None:
        """Engage the kill switch by hand; it stays engaged until :meth:`reset_kill_switch`."""
        pending: Pending = []
        with self._lock:
            self._engage(reason, self._mono(), self._clock.now(), pending, actor=actor or "manual")
        fire(pending)

    def reset_kill_switch(self, auth_key: Union[str, bytes], *, actor: Optional[str] = None) -> bool:
        """Release the kill switch if ``auth_key`` is right; return whether it was right.

        Re-bases the drawdown: from now on it is measured from the current value, so a desk that
        is still under water is not killed again at once. A right key while the kill switch is not
        engaged changes nothing (no re-base: that would hide a drawdown) and is not audited. Wrong
        keys are logged (never the key) and, after ``reset_max_attempts`` in a row, lock further
        attempts out. Raises
        KillSwitchError when no reset key is configured or while locked out. Every refusal is
        audited too, with why (wrong key, locked out, no key), never with the key.
        """
        try:
            accepted = self._guard.check(auth_key)
        except KillSwitchError as exc:
            self._audit_refusal(str(exc), actor)
            raise
        if not accepted:
            locked_for = self._guard.status()["locked_out_for"]
            self._audit_refusal(
                f"wrong key; resets locked out for {locked_for:.1f}s" if locked_for else "wrong key", actor
            )
            return False
        unreadable = False
        if "state" in self._faults:
            try:
                _parse_snapshot(self._state.snapshot(), self._state.describe())
            except StateStoreError:
                unreadable = True
        pending: Pending = []
        with self._lock:
            if not unreadable and "max_drawdown" not in self._trips:
                logger.info("reset_kill_switch: the kill switch is not engaged; nothing to release")
                return True
            if unreadable:  # with the key, the operator chooses to start from a fresh state
                self._unsent.clear()
                if self._write(lambda state: state.reset()):
                    self._faults.pop("state", None)
            if self._reading is not None:
                self._rebase(self._reading)
            else:  # no reading since a restart: re-base on the first one
                self._rebase_pending = True
            self._release("max_drawdown", pending)
            self._record_audit("kill_switch_reset", reason="reset with key", actor=actor)
        fire(pending)
        return True

    def _audit_refusal(self, reason: str, actor: Optional[str]) -> None:
        """Audit a refused reset; the refusal stays the answer even if the trail cannot be written."""
        with self._lock:
            self._record_audit("kill_switch_reset_refused", reason=reason, actor=actor)

    def reset_breaker(self, name: str) -> bool:
        """Reset one breaker by name; True if it reset something.

        The kill switch (``max_drawdown``) refuses with KillSwitchError while
        ``require_manual_reset`` is on; unknown names raise UnknownBreakerError (a KeyError).
        Resetting ``rate_limit`` on a shared store that cannot be reached raises StateStoreError
        and changes nothing.
        """
        if name not in BREAKER_NAMES:
            raise UnknownBreakerError(name, BREAKER_NAMES)
        if name == "max_drawdown" and self.config.require_manual_reset and self.kill_switch_active:
            raise KillSwitchError("the kill switch needs reset_kill_switch(key) (require_manual_reset is on)")
        if name == "rate_limit":
            had_orders = any(limit["calls_in_window"] for limit in self._limiter.status()["limits"])
            self._limiter.reset()
            return bool(had_orders)
        if name == "connection":
            was_closed = self._connection.is_closed
            self._connection.reset()
            return not was_closed
        pending: Pending = []
        with self._lock:
            if name == "position_concentration":
                keys = [key for key in self._warnings if key.split(":", 1)[0] == name]
                for key in keys:
                    del self._warnings[key]
                changed = bool(keys)
            else:
                changed = self._release(name, pending)
                if changed and name == "max_drawdown":
                    self._record_audit("kill_switch_reset", reason="reset_breaker", actor=None)
        fire(pending)
        return changed

    def reset_all(self) -> None:
        """Reset every breaker except the kill switch."""
        for name in BREAKER_NAMES:
            if name != "max_drawdown":
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

    # --- monitoring -----------------------------------------------------------------------------

    def start_monitoring(self) -> None:
        """Take a first reading now, then poll every ``check_interval_seconds`` on a daemon thread.

        Blocks for the first reading. A second call while running does nothing.
        """
        if self._monitor.alive:
            return
        with self._lock:
            self._monitoring = True
            self._faults.pop("monitor", None)
            self._attention = bool(self._trips or self._faults)
        self.check_now()
        self._monitor.start()

    def stop_monitoring(self, timeout: float = 2.0) -> bool:
        """Stop the monitor thread; True if it ended within ``timeout`` seconds (see Monitor.stop)."""
        with self._lock:
            self._monitoring = False
            self._faults.pop("monitor", None)
            self._attention = bool(self._trips or self._faults)
        return self._monitor.stop(timeout)

    def _monitor_exited(self, error: Optional[BaseException]) -> None:
        pending: Pending = []
        with self._lock:
            if self._monitoring:
                self._faults["monitor"] = f"monitor thread died: {error!r}"
                self._attention = True
                pending.append((self._on_trip, ("monitor", self._faults["monitor"])))
        fire(pending)

    # --- status ---------------------------------------------------------------------------------

    def get_status(self) -> TradingStatus:
        """A consistent snapshot of every breaker, with figures, limits and last trips."""
        connection_block = self._connection_block()
        pending: Pending = []
        with self._lock:
            mono = self._mono()
            self._apply_time_rules(mono, self._clock.now(), pending)
            blocks = self._blocks(mono, connection_block)
            details = self._details()
            kill_switch = "max_drawdown" in self._trips
            warnings = self._warning_names()
            last_good = self._last_good
            monitoring = self._monitoring
        fire(pending)
        reasons = [f"{name}: {text}" for name, text in blocks]
        try:
            limiter: Optional[List[Dict[str, Any]]] = self._limiter.status()["limits"]
            details["rate_limit"] = {"limits": limiter, "error": None}
        except StateStoreError as exc:  # a shared limiter whose store is down: record_order() refuses
            limiter = None
            details["rate_limit"] = {"limits": None, "error": str(exc)}
        connection = self._connection.get_status()
        details["connection"] = connection
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

    def _details(self) -> Dict[str, Dict[str, Any]]:
        config = self.config
        limits: Dict[str, Tuple[Any, Any]] = {
            "daily_loss": (config.daily_loss_limit_pct, config.daily_loss_warning_pct),
            "max_drawdown": (config.max_drawdown_pct, config.drawdown_warning_pct),
            "volatility": (config.volatility_std_threshold, None),
            "position_concentration": (config.max_position_pct, config.position_warning_pct),
        }
        details: Dict[str, Dict[str, Any]] = {}
        warned = self._warning_names()
        for name, (limit, warning) in limits.items():
            verdict = self._verdicts.get(name)
            last = self._last_trips.get(name)
            tripped = name in self._trips
            details[name] = {
                "state": "tripped" if tripped else ("warning" if name in warned else "ok"),
                "tripped": tripped,
                "warning": name in warned,
                "value": None if verdict is None else verdict.value,
                "message": None if verdict is None else verdict.message,
                "limit": limit,
                "warning_level": warning,
                "last_trip_time": None if last is None else last.at,
                "last_trip_reason": None if last is None else last.reason,
            }
        details["max_drawdown"].update(
            own_high_water_mark=self._high_water,
            own_drawdown_pct=self._drawdowns.get("own"),
            provider_drawdown_pct=self._drawdowns.get("provider"),
            drawdown_baseline_pct=self._baseline,
            reset=self._guard.status(),
        )
        return details

    def __repr__(self) -> str:
        state = "halted" if self._attention else "ok"
        return f"<TradingCircuitBreakers {state} kill_switch={'on' if self.kill_switch_active else 'off'}>"
