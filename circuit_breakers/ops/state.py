"""A desk's shared state seen from outside its trading processes: read it, halt it, release it.

:class:`DeskState` opens the store the trading processes share (the SQLite file of ``state_path``, or
a Redis namespace) and acts on it through the same safety core they use, so the rules are the ones
they follow: an engage is a latch record written (put if absent) and audited; a reset needs the key
whose hash is stored with the state and counts wrong keys toward the same lockout; nothing here
can release the kill switch without the key. Every process sharing the state hears of a change
within one monitor poll (at once on Redis).

The desk-level view (:meth:`DeskState.snapshot`) joins the latches in the store with the heartbeats
every process publishes at each monitor poll (``procs``); a process not heard from within its
``stale_after_seconds`` is shown as stale and no longer counts toward the desk's state.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.errors import ConfigError, CorruptStateError, KillSwitchError, StateStoreError
from circuit_breakers.events import Callbacks, KillHandlers, Pending, fire
from circuit_breakers.stores.base import Store, Tables
from circuit_breakers.stores.sqlite import SqliteStore
from circuit_breakers.trading.audit import AuditLog
from circuit_breakers.trading.breakers import audit_target
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.killswitch import ResetGuard, secret_bytes
from circuit_breakers.trading.latches import DAY_HALTS, KILL_SWITCH, LATCH_NAMES, Latch
from circuit_breakers.trading.orders import OrderLimits, TradingState
from circuit_breakers.trading.safety import Events, SafetyCore, StoreLockout
from circuit_breakers.trading.status import TradingStatus

_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True)
class Process:
    """One trading process sharing the state, as its last heartbeat told."""

    id: str
    host: Optional[str]
    pid: Optional[int]
    last_heartbeat: Optional[dt.datetime]
    age_seconds: Optional[float]
    stale: bool
    trading_state: Optional[str]
    kill_switch_active: Optional[bool]
    reasons: Tuple[str, ...]
    orders_last_minute: Optional[int] = None
    orders_last_hour: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "last_heartbeat": None if self.last_heartbeat is None else self.last_heartbeat.isoformat(),
            "age_seconds": self.age_seconds,
            "stale": self.stale,
            "trading_state": self.trading_state,
            "kill_switch_active": self.kill_switch_active,
            "reasons": list(self.reasons),
            "orders_last_minute": self.orders_last_minute,
            "orders_last_hour": self.orders_last_hour,
        }


@dataclass(frozen=True)
class Snapshot:
    """The desk as the store shows it: a TradingStatus of the desk, its processes, and the store's health."""

    status: TradingStatus
    processes: Tuple[Process, ...]
    store: Dict[str, Any]
    latches: Tuple[Dict[str, Any], ...] = field(default=())


def _process(key: str, text: str, now: dt.datetime) -> Process:
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not an object")
        at = dt.datetime.fromisoformat(str(record["at"]))
        age = max((now - at).total_seconds(), 0.0)
        stale = age > float(record.get("stale_after_seconds") or 10.0)
        reasons = tuple(str(reason) for reason in record.get("reasons") or ())
        return Process(
            key,
            str(record.get("host")),
            int(record["pid"]),
            at,
            age,
            stale,
            str(record.get("trading_state")),
            bool(record.get("kill_switch_active")),
            reasons,
            record.get("orders_last_minute"),
            record.get("orders_last_hour"),
        )
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        return Process(key, None, None, None, None, True, None, None, (f"unreadable heartbeat: {exc}",))


class DeskState:
    """The state a desk's processes share, opened on its store. Blocks on the store; thread-safe.

    ``config`` gives the order-rate limits shown beside the windows and the lockout settings (the
    defaults otherwise; pass the desk's config file with ``--config`` on the command line).
    """

    def __init__(
        self,
        store: Store,
        *,
        config: Optional[TradingBreakerConfig] = None,
        order_limits: Optional[OrderLimits] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        self.store = store
        self.config = TradingBreakerConfig() if config is None else config
        self.order_limits = OrderLimits() if order_limits is None else order_limits
        self._clock = SYSTEM_CLOCK if clock is None else clock
        self.audit = AuditLog(audit_target(store), clock=self._clock)
        events = Events(Callbacks("ops trip"), Callbacks("ops recovery"), KillHandlers(), lambda *args: None)
        self._core = SafetyCore(store, self.audit, self._clock, self.config, events, trading=False)
        self._guard = ResetGuard(
            None,
            clock=self._clock,
            max_attempts=self.config.reset_max_attempts,
            lockout_seconds=self.config.reset_lockout_seconds,
            record=StoreLockout(self._core),
        )

    @classmethod
    def open(
        cls,
        *,
        state_path: Union[str, os.PathLike[str], None] = None,
        redis_url: Optional[str] = None,
        namespace: Optional[str] = None,
        config: Optional[TradingBreakerConfig] = None,
        timeout: float = 2.0,
    ) -> DeskState:
        """Open the state at ``state_path`` (which must exist), or in Redis at ``redis_url`` / ``namespace``.

        Raises ConfigError for a missing or doubled location and a bad URL, FileNotFoundError for a
        state file that does not exist, and StateStoreError when the store cannot be opened.
        """
        if (state_path is None) == (redis_url is None):
            raise ConfigError("give a state path or a Redis URL (with a namespace), not both or neither")
        if state_path is not None:
            if not os.path.exists(os.fspath(state_path)):
                raise FileNotFoundError(f"no state file at {os.fspath(state_path)}")
            return cls(SqliteStore(state_path, timeout=timeout), config=config)
        from circuit_breakers.redis.client import connect  # noqa: PLC0415 - redis-py only when asked for
        from circuit_breakers.redis.store import RedisStore  # noqa: PLC0415

        if not namespace:
            raise ConfigError("a Redis state needs its namespace (--namespace)")
        return cls(RedisStore(connect(str(redis_url), timeout=timeout), namespace), config=config)

    # --- reading -----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The desk now: latches, the desk-level trading state, every process, the store's health.

        Raises StateStoreError (CorruptStateError for garbage) when the store cannot be read.
        """
        tables = self.store.read()
        now = self._clock.now()
        latches, reasons, blocking = self._latches(tables)
        processes = tuple(_process(key, text, now) for key, text in sorted(tables["procs"].items()))
        state = TradingState.ACTIVE
        if blocking:
            reducing = set(blocking).issubset(self.order_limits.reducing_breakers)
            state = TradingState.REDUCING if reducing else TradingState.HALTED
        for process in processes:
            if process.stale or process.trading_state is None:
                continue
            seen = TradingState(process.trading_state) if process.trading_state in _STATES else TradingState.HALTED
            if _SEVERITY[seen] > _SEVERITY[state]:
                state = seen
            if seen is not TradingState.ACTIVE:
                reasons.extend(f"{process.id}: {reason}" for reason in process.reasons if reason not in reasons)
        details: Dict[str, Any] = {name: self._latch_detail(name, latches) for name in LATCH_NAMES}
        details["rate_limit"] = self._rate_limit(tables, processes)
        live = [process.age_seconds for process in processes if not process.stale and process.age_seconds is not None]
        status = TradingStatus(
            can_trade=state is TradingState.ACTIVE,
            trading_state=state,
            blocking_breakers=tuple(dict.fromkeys(blocking)),
            warning_breakers=(),
            reasons=tuple(reasons),
            kill_switch_active=any(latch["name"] == KILL_SWITCH for latch in latches),
            orders_last_minute=None,
            orders_last_hour=None,
            monitoring=bool(live),
            monitor_alive=bool(live),
            last_reading_age=min(live) if live else None,
            details=details,
        )
        store = {"kind": self.store.kind, "where": self.store.describe(), "healthy": True, "error": None}
        return Snapshot(status, processes, store, tuple(latches))

    def _latches(self, tables: Tables) -> Tuple[List[Dict[str, Any]], List[str], List[str]]:
        latches: List[Dict[str, Any]] = []
        reasons: List[str] = []
        blocking: List[str] = []
        for name in LATCH_NAMES:
            text = tables["latches"].get(name)
            if text is None:
                continue
            try:
                latch = Latch.from_text(name, text)
                entry = {
                    "name": name,
                    "reason": latch.reason,
                    "since": latch.since.isoformat(),
                    "actor": latch.actor,
                    "trading_day": latch.trading_day.isoformat(),
                }
            except ValueError as exc:  # garbage: it may be an engaged kill switch, so it halts
                entry = {"name": name, "reason": f"unreadable record: {exc}", "since": None, "actor": None}
            latches.append(entry)
            blocking.append(name)
            prefix = "kill switch engaged: " if name == KILL_SWITCH else ""
            reasons.append(f"{name}: {prefix}{entry['reason']}")
        order = {name: index for index, name in enumerate((KILL_SWITCH, *DAY_HALTS))}
        latches.sort(key=lambda entry: order[entry["name"]])
        return latches, reasons, blocking

    @staticmethod
    def _latch_detail(name: str, latches: List[Dict[str, Any]]) -> Dict[str, Any]:
        entry = next((latch for latch in latches if latch["name"] == name), None)
        return {
            "tripped": entry is not None,
            "last_trip_reason": None if entry is None else entry["reason"],
            "last_trip_time": None if entry is None else entry["since"],
            "last_trip_actor": None if entry is None else entry.get("actor"),
            "trading_day": None if entry is None else entry.get("trading_day"),
        }

    def _rate_limit(self, tables: Tables, processes: Tuple[Process, ...]) -> Dict[str, Any]:
        """The order-rate windows: shared ones from Redis, else the sum of the live processes' own."""
        limits = ((self.config.max_orders_per_minute, 60.0), (self.config.max_orders_per_hour, 3600.0))
        counts: Optional[List[int]] = None
        error = None
        if self.store.kind == "redis":
            try:
                counts = self._redis_windows([period for _, period in limits])
            except StateStoreError as exc:
                error = str(exc)
        else:
            live = [process for process in processes if not process.stale]
            if live and all(process.orders_last_minute is not None for process in live):
                counts = [
                    sum(int(process.orders_last_minute or 0) for process in live),
                    sum(int(process.orders_last_hour or 0) for process in live),
                ]
        return {
            "limits": [
                {"max_calls": most, "period_seconds": period, "calls_in_window": None if counts is None else count}
                for (most, period), count in zip(limits, counts or [None, None])  # type: ignore[list-item]
            ],
            "error": error,
            "shared": self.store.kind == "redis",
        }

    def _redis_windows(self, periods: List[float]) -> List[int]:
        """The shared order-rate windows' counts, read (not consumed) the way the processes count them."""
        from circuit_breakers.ratelimit import Limit  # noqa: PLC0415
        from circuit_breakers.redis.ratelimit import RedisRateLimiter  # noqa: PLC0415 - redis-py only when used

        limits = (Limit(self.config.max_orders_per_minute, 60), Limit(self.config.max_orders_per_hour, 3600))
        limiter = RedisRateLimiter(self.store, *limits, name="rate_limit")  # type: ignore[arg-type]
        return [int(limit["calls_in_window"]) for limit in limiter.status()["limits"]]

    def audit_entries(self, since: Optional[dt.datetime] = None) -> List[Dict[str, Any]]:
        """The audit trail, oldest first, from ``since`` on; StateStoreError if it cannot be read."""
        entries = self.audit.entries()
        if since is None:
            return entries
        kept = []
        for entry in entries:
            try:
                moment = dt.datetime.fromisoformat(str(entry.get("time")))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
            if moment >= since:
                kept.append(entry)
        return kept

    # --- acting ------------------------------------------------------------------------------------

    def _adopt(self, pending: Pending) -> None:
        """Read the store into the core; StateStoreError if it cannot be read (nothing can be decided)."""
        self._core.sync(pending)
        health = self._core.health()
        fault = self._core.fault("state")
        if fault is not None and not health["pending_writes"]:
            raise CorruptStateError(fault) if "unreadable" in fault else StateStoreError(fault)

    def engage(self, reason: str, actor: Optional[str]) -> None:
        """Engage the kill switch for every process sharing the state; audited with ``actor``.

        Raises StateStoreError if the engage could not be written (then no process heard of it).
        """
        pending: Pending = []
        self._core.sync(pending)
        with self._core.lock:
            self._core.engage(KILL_SWITCH, reason, actor or "ops", pending)
        fire(pending)
        waiting = self._core.health()["pending_writes"]
        if waiting:
            fault = self._core.fault("state")
            raise StateStoreError(f"the kill switch could not be written to {self.store.describe()}: {fault}")

    def reset(self, secret: Union[str, bytes], actor: Optional[str]) -> Optional[bool]:
        """Release the kill switch for every process with the key stored with the state.

        True if it was released; None for the right key while nothing is engaged (nothing changes);
        False for a wrong key (counted toward the shared lockout, audited). Raises KillSwitchError
        when no key is stored or resets are locked out, StateStoreError when the store cannot be
        read or the release written. Blocks for one scrypt hash.
        """
        data = secret_bytes(secret)
        pending: Pending = []
        self._adopt(pending)
        with self._core.lock:
            self._core.attach_key(None, pending)
            self._guard.bind(self._core.key)
        try:
            accepted = self._guard.check(data)
        except (KillSwitchError, StateStoreError) as exc:
            self._refused(str(exc), actor)
            raise
        if not accepted:
            self._refused("wrong key", actor)
            return False
        with self._core.lock:
            self._core.repair(pending)
            released = self._core.release_kill_switch(actor, pending, by="key (ops)")
        fire(pending)
        return True if released else None

    def _refused(self, why: str, actor: Optional[str]) -> None:
        pending: Pending = []
        with self._core.lock:
            self._core.audit_event("kill_switch_reset_refused", why, actor, pending)

    def close(self) -> None:
        """Close the store (the client of a Redis store is closed by its owner)."""
        self.store.close()


_STATES = {state.value for state in TradingState}
