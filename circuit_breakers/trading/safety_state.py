"""The safety core's state and the primitives its parts build on: latches, faults, durable writes.

:class:`SafetyState` owns every field of the core and its one lock. The high-water mark
(:mod:`~circuit_breakers.trading.high_water`) and the reset records
(:mod:`~circuit_breakers.trading.reset_records`) are mixins over it that keep no state of their
own; :class:`~circuit_breakers.trading.safety.SafetyCore` combines them and adds the transitions and
the adoption of what the store holds. Everything here runs with the lock held, except where a
docstring says otherwise.

Writes go through the outbox: a record is queued with a :data:`~circuit_breakers.trading.records.Merge`
and sent in order by :meth:`SafetyState._flush`; while anything waits there, trading is blocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import threading
from decimal import Decimal
from typing import Callable, Dict, List, Optional, Tuple

from circuit_breakers.clock import Clock
from circuit_breakers.errors import CorruptStateError, StateStoreError
from circuit_breakers.events import Callbacks, KillHandlers, Pending
from circuit_breakers.stores.base import Store
from circuit_breakers.trading.audit import AuditLog
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.killswitch import ResetKey
from circuit_breakers.trading.latches import DAY_HALTS, KILL_SWITCH, Held, Latch
from circuit_breakers.trading.records import AUTOMATIC, MISSING, RESETS, Done, Merge, Ref, count

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Events:
    """The callbacks the core publishes to, and the hook that keeps status mirrors in line."""

    on_trip: Callbacks[[str, str]]
    on_recovery: Callbacks[[str]]
    on_kill: KillHandlers
    mirror: Callable[[str, bool, Pending], None]


class SafetyState:
    """Latches, faults and durable values of one trading desk in one process, and how they are written."""

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        clock: Clock,
        config: TradingBreakerConfig,
        events: Events,
        *,
        trading: bool = True,
    ) -> None:
        self.store = store
        self._trading = trading  # a trading process (it audits the engages it hears of), not an ops tool
        self.audit = audit
        self._clock = clock
        self._config = config
        self._events = events
        self.lock = threading.Lock()  # guards everything below; store I/O under it keeps writes in order
        self._held: Dict[str, Held] = {}  # latches in force
        self._resets_seen: Dict[str, int] = {}  # KILL_SWITCH -> kill_switch_resets when it was taken on
        self.last: Dict[str, Latch] = {}  # the most recent latch of each name, for status
        self._faults: Dict[str, str] = {}  # fail-closed conditions by name: state, audit, provider, ...
        self._outbox: Dict[Ref, Tuple[Merge, Optional[Done]]] = {}
        self._stored: Dict[Ref, Optional[str]] = {}  # last known stored text of records this process writes
        self._store_error: Optional[str] = None
        self._changes = 0  # local changes; a sync that raced one is dropped
        self._seen_version: object = None
        self._epoch: Optional[str] = None
        self._resets = 0  # kill_switch_resets as last read
        self._corrupt = False  # the last read found the store's state unreadable
        self._provisional = False  # the kill switch holds because the state was unreadable, unwritten
        self.key: Optional[ResetKey] = None
        self.high_water: Optional[Decimal] = None
        self.baseline = Decimal(0)
        # Derived on every change, for lock-free readers (each a single reference, replaced whole).
        self.attention = False
        self.certain = False
        # Per day halt: it certainly holds while (now < wall or monotonic < day) and monotonic < auto.
        self.day_bounds: Tuple[Tuple[dt.datetime, float, float], ...] = ()

    # --- derived state (lock held) -----------------------------------------------------------------

    def _changed(self) -> None:
        self._changes += 1
        faults = bool(self._faults) or bool(self._outbox)
        self.certain = faults or KILL_SWITCH in self._held
        auto = self._config.cooldown_seconds if self._config.auto_recovery else float("inf")
        self.day_bounds = tuple(
            (*held.lift_after(self._config), held.mono + auto) for name, held in self._held.items() if name in DAY_HALTS
        )
        self.attention = faults or bool(self._held)

    @property
    def kill_switch_engaged(self) -> bool:
        return KILL_SWITCH in self._held

    def held(self) -> Dict[str, Held]:
        """The latches in force (a copy)."""
        return dict(self._held)

    def blocks(self) -> List[Tuple[str, str]]:
        """(name, why) for every latch and fault in force, kill switch first. Lock held."""
        blocks: List[Tuple[str, str]] = []
        if KILL_SWITCH in self._held:
            blocks.append((KILL_SWITCH, f"kill switch engaged: {self._held[KILL_SWITCH].latch.reason}"))
        blocks.extend((name, self._held[name].latch.reason) for name in DAY_HALTS if name in self._held)
        faults = dict(self._faults)
        if self._outbox and "state" not in faults:
            faults["state"] = f"{len(self._outbox)} writes not yet in {self.store.describe()}: {self._store_error}"
        blocks.extend(faults.items())
        return blocks

    def health(self) -> Dict[str, object]:
        """The store's health for status: where, kind, whether it answers, what waits to be written."""
        return {
            "store": self.store.describe(),
            "kind": self.store.kind,
            "healthy": "state" not in self._faults and not self._outbox and not self._corrupt,
            "error": self._faults.get("state"),
            "pending_writes": len(self._outbox),
            "audit_pending": self.audit.pending,
            "epoch": self._epoch,
        }

    # --- faults ------------------------------------------------------------------------------------

    def set_fault(self, name: str, text: str, pending: Pending) -> None:
        """Block trading for ``name`` (lock held); a new fault fires the trip callbacks once."""
        if name not in self._faults:
            pending.append((self._events.on_trip, (name, text)))
        self._faults[name] = text
        self._changed()

    def clear_fault(self, name: str, pending: Pending) -> None:
        """Lift fault ``name`` (lock held); fires the recovery callbacks if it was set."""
        if self._faults.pop(name, None) is not None:
            pending.append((self._events.on_recovery, (name,)))
            self._changed()

    def fault(self, name: str) -> Optional[str]:
        return self._faults.get(name)

    # --- latches (lock held) -----------------------------------------------------------------------

    def engage(self, name: str, reason: object, actor: object, pending: Pending) -> bool:
        """Latch ``name`` now, write it, audit a kill switch; False if it already held. Lock held."""
        if name in self._held:
            return False
        latch = Latch.new(name, reason, self._clock.now(), self._config, actor=actor, resets=self._resets)
        self._take_on(latch, pending)
        self._queue(("latches", name), functools.partial(self._stamped, latch))
        if name == KILL_SWITCH:
            self._audit("kill_switch_engaged", latch.reason, latch.actor, pending)
        self._flush(pending)
        return True

    def _stamped(self, latch: Latch, current: Optional[str]) -> Optional[str]:
        """A Merge that writes ``latch`` where no record is, with the latest reset count this process
        knows (a write that read the store knows the store's): no release counted before this
        engagement can then be taken for its own. Lock held."""
        if current is not None:
            return current
        resets = max(self._resets, count(self._stored.get(RESETS)))
        if latch.name == KILL_SWITCH and latch.resets is not None and resets > latch.resets:
            return dataclasses.replace(latch, resets=resets).to_text()
        return latch.to_text()

    def _take_on(self, latch: Latch, pending: Pending) -> None:
        """Hold ``latch`` (engaged here or adopted from the store) and publish it. Lock held."""
        self._held[latch.name] = Held(latch, self._clock.now(), self._clock.monotonic())
        self.last[latch.name] = latch
        if latch.name == KILL_SWITCH:
            # The count when it was engaged, from its record: a process that reads the count between a
            # keyed reset's two writes (count, then drop) must not take the drop for a vanished record.
            self._resets_seen[KILL_SWITCH] = self._resets if latch.resets is None else latch.resets
        self._events.mirror(latch.name, True, pending)
        pending.append((self._events.on_trip, (latch.name, latch.reason)))
        if latch.name == KILL_SWITCH:
            pending.append((self._events.on_kill, (latch.reason,)))
        self._changed()

    def _let_go(self, name: str, pending: Pending) -> bool:
        if self._held.pop(name, None) is None:
            return False
        self._resets_seen.pop(name, None)
        self._events.mirror(name, False, pending)
        pending.append((self._events.on_recovery, (name,)))
        self._changed()
        return True

    def _garbage_value(self, ref: Ref, text: str, problem: str, merge: Merge, pending: Pending) -> None:
        """An unreadable value record: the kill switch engages (what it guarded cannot be known), the
        event is audited, and ``merge`` writes a good record over it. Lock held."""
        reason = f"unreadable record in {self.store.describe()} {ref[0]}/{ref[1]}: {problem}"
        logger.error("%s; the kill switch engages and the record is rewritten", reason)
        self._audit("state_unreadable", reason, AUTOMATIC, pending)
        self.engage(KILL_SWITCH, reason, AUTOMATIC, pending)
        self._queue(ref, merge)

    # --- the audit trail (lock held) ---------------------------------------------------------------

    def _audit(self, event: str, reason: Optional[str], actor: Optional[str], pending: Pending) -> None:
        """Audit (lock held); a trail that cannot be written blocks trading until it can, and loses nothing."""
        try:
            self.audit.record(event, reason=reason, actor=actor)
        except StateStoreError as exc:
            self.set_fault("audit", f"{exc} ({self.audit.pending} entries waiting)", pending)

    def audit_event(self, event: str, reason: Optional[str], actor: Optional[str], pending: Pending) -> None:
        """Audit an event (lock held); a trail that cannot be written blocks trading until it can."""
        self._audit(event, reason, actor, pending)

    # --- the store: writes (lock held) -------------------------------------------------------------

    def _queue(self, ref: Ref, merge: Merge, done: Optional[Done] = None) -> None:
        self._outbox[ref] = (merge, done)
        self._changed()

    def _write_now(self, ref: Ref, merge: Merge) -> Optional[str]:
        """Write one record now (CAS, re-reading on a miss); return what is stored. Raises StateStoreError."""
        for _ in range(8):
            current = self._stored.get(ref, MISSING)
            if current is MISSING:
                tables = self.store.read()
                for table, records in tables.items():
                    for key, text in records.items():
                        self._stored[(table, key)] = text
                current = tables[ref[0]].get(ref[1])
                self._stored[ref] = current
            known: Optional[str] = current if isinstance(current, str) else None
            new = merge(known)
            if new == known:
                return known
            if self.store.compare_and_set(ref[0], ref[1], known, new):
                self._stored[ref] = new
                return new
            del self._stored[ref]  # someone else wrote it: read again
        raise StateStoreError(f"{self.store.describe()}: {ref[0]}/{ref[1]} kept changing under this process")

    def _undo(self, ref: Ref, written: Optional[str], previous: Optional[str]) -> None:
        """Put ``previous`` back where this process wrote ``written``, unless another process wrote since."""
        try:
            self._write_now(ref, lambda current: previous if current == written else current)
        except StateStoreError as exc:
            logger.error("cannot take back %s/%s after a reset that failed: %s", ref[0], ref[1], exc)

    def _flush(self, pending: Pending) -> bool:
        """Send the outbox in order; stop at the first failure. True when it is empty."""
        for ref, (merge, done) in list(self._outbox.items()):
            try:
                stored = self._write_now(ref, merge)
            except StateStoreError as exc:
                self._store_failed(exc, pending)
                return False
            if self._outbox.get(ref, (None, None))[0] is merge:
                del self._outbox[ref]
            if done is not None:
                done(stored, pending)
        self._changed()
        return True

    def _store_failed(self, exc: StateStoreError, pending: Pending) -> None:
        if self._store_error is None:
            logger.error("%s; trading is blocked until the state store answers", exc)
        self._store_error = str(exc)
        if isinstance(exc, CorruptStateError) and not self._corrupt:
            self._corrupt = True  # it may have held an engaged kill switch: assume it did
            if KILL_SWITCH not in self._held:
                why = f"state unreadable: {exc}"
                now = self._clock.now()
                latch = Latch.new(KILL_SWITCH, why, now, self._config, actor=AUTOMATIC, resets=self._resets)
                self._take_on(latch, pending)  # provisional: written only if no keyed reset follows
                self._provisional = True
                self._audit("kill_switch_engaged", latch.reason, latch.actor, pending)
        self.set_fault("state", str(exc), pending)

    # --- fork ----------------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.store.after_fork_in_child()
        self.audit.after_fork_in_child()
