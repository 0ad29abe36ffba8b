"""The safety-state core: latches, faults, pending writes and the kill switch, under one lock.

Every transition goes one way: validated -> applied here -> written to the store -> published (the
events are handed back in ``pending``; the caller fires them once every lock is released).

- What is stricter (an engage, a higher high-water mark, a record restored after a loss) takes
  effect here at once and is written as soon as the store takes it. Until then it waits in the
  outbox, in order, is retried at every sync, and blocks trading (fault ``state``).
- What is less strict (a release, a re-based high-water mark) is written first and takes effect
  only once written: a store that cannot take it leaves the halt in force.
- "Can trade" is derived from this state in one place (:meth:`SafetyCore.blocks`); the lock-free
  fast path reads :attr:`attention`, :attr:`certain` and :attr:`day_bounds`, which every change
  recomputes (:meth:`SafetyCore._changed`).

Only a keyed reset (:meth:`SafetyCore.keyed_release`) releases the kill switch (or
``reset_breaker`` when ``require_manual_reset`` is off): it counts the release in the store
(``values/kill_switch_resets``) before dropping the record. A process that finds the kill switch
gone from the store without such a count restores it; one that finds the store's epoch gone or
replaced (a Redis restarted without its data, a file deleted) engages it, audits the loss and
writes back what it holds. Unreadable records engage the kill switch (or, for a day halt, halt the
day) and are overwritten with good ones.

Lock order: the facade's lock, then this lock, then the audit trail's and the store's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable, Dict, List, Optional, Tuple

from circuit_breakers.clock import Clock
from circuit_breakers.errors import ConfigError, CorruptStateError, StateStoreError
from circuit_breakers.events import Callbacks, KillHandlers, Pending
from circuit_breakers.stores.base import Store, Tables
from circuit_breakers.trading.audit import AuditLog
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.killswitch import Attempts, LocalLockout, ResetKey
from circuit_breakers.trading.latches import DAY_HALTS, KILL_SWITCH, LATCH_NAMES, Held, Latch

logger = logging.getLogger(__name__)

Ref = Tuple[str, str]  # (table, key)
Merge = Callable[[Optional[str]], Optional[str]]  # stored text -> the text this process needs there
Done = Callable[[Optional[str], Pending], None]  # called with what the store holds once a write went through
_MISSING = object()
_HWM, _BASELINE, _EPOCH, _KEY, _RESETS, _LOCKOUT = (
    ("values", name)
    for name in (
        "high_water_mark",
        "drawdown_baseline_pct",
        "epoch",
        "reset_key",
        "kill_switch_resets",
        "reset_lockout",
    )
)
_AUTOMATIC = "circuit_breakers"
_LARGEST_EXPONENT = 21  # 1e21: no amount or percentage of a desk comes near; beyond, arithmetic overflows


def _number(text: Optional[str]) -> Optional[Decimal]:
    """A stored finite Decimal, None when absent; ValueError for garbage."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise ValueError(f"not a number: {text[:40]!r}") from None
    if not value.is_finite():
        raise ValueError(f"not finite: {text[:40]!r}")
    if value.adjusted() >= _LARGEST_EXPONENT:  # no context arithmetic: abs() itself would overflow
        raise ValueError(f"out of range: {text[:40]!r}")
    return value


def _text_of(value: Optional[Decimal], current: Optional[str]) -> Optional[str]:
    """A Merge that writes ``value`` whatever is stored."""
    return None if value is None else str(value)


def _replace(garbage: str, text: Optional[str], current: Optional[str]) -> Optional[str]:
    """A Merge that writes ``text`` over ``garbage`` (and leaves anything else another process wrote)."""
    return text if current == garbage else current


def _baseline_text(baseline: Decimal) -> Optional[str]:
    """The stored drawdown baseline: only a negative one is kept."""
    return str(baseline) if baseline < 0 else None


def _latch_or_none(name: str, text: Optional[str]) -> Optional[Latch]:
    try:
        return None if text is None else Latch.from_text(name, text)
    except ValueError:
        return None


def _keep_or(text: str, current: Optional[str]) -> Optional[str]:
    """A Merge that keeps what is stored, or writes ``text`` where nothing is."""
    return current if current is not None else text


def _count(text: Optional[str]) -> int:
    """A stored count; -1 for garbage (never taken as a release)."""
    if text is None:
        return 0
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else -1


def _checked_count(text: str) -> None:
    if _count(text) < 0:
        raise ValueError(f"not a count: {text[:40]!r}")


def _stored_key(text: str) -> ResetKey:
    """The reset key's stored hash; ValueError if it is not one."""
    try:
        return ResetKey.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ValueError(f"not a reset key hash: {exc}") from None


def _lockout(text: Optional[str]) -> Attempts:
    """The stored wrong-key count and lockout end ((0, None) when absent); ValueError for garbage."""
    if text is None:
        return 0, None
    try:
        record = json.loads(text)
        until = record["locked_until"]
        moment = None if until is None else dt.datetime.fromisoformat(until)
        failures = record["failures"]
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError, RecursionError) as exc:
        raise ValueError(f"not a lockout record: {exc}") from None
    if moment is not None and moment.tzinfo is None:
        raise ValueError("a lockout time without a zone")
    if type(failures) is not int or failures < 0:
        raise ValueError(f"not a count of wrong keys: {failures!r}")
    return failures, moment


@dataclass
class Events:
    """The callbacks the core publishes to, and the hook that keeps status mirrors in line."""

    on_trip: Callbacks[[str, str]]
    on_recovery: Callbacks[[str]]
    on_kill: KillHandlers
    mirror: Callable[[str, bool, Pending], None]


class SafetyCore:
    """Latches, faults and durable values of one trading desk in one process, kept in a store."""

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

    def engage_by_hand(self, reason: object, actor: object, pending: Pending) -> None:
        """``engage_kill_switch``: engage; one this process already holds is checked against the store
        first (read afresh), since another process may have released it with the key since this one
        last read. If the store no longer holds it, this is a new engagement: written, audited, and
        the kill handlers run. Lock held; blocks on the store."""
        if KILL_SWITCH not in self._held:
            self.engage(KILL_SWITCH, reason, actor, pending)
            return
        latch = Latch.new(KILL_SWITCH, reason, self._clock.now(), self._config, actor=actor, resets=self._resets)

        def landed(stored: Optional[str], later: Pending) -> None:
            written = _latch_or_none(KILL_SWITCH, stored)
            held = self._held.get(KILL_SWITCH)
            if written is not None and written.id == latch.id and (held is None or held.latch.id != latch.id):
                self._take_on(written, later)
                self._audit("kill_switch_engaged", written.reason, written.actor, later)

        ref = ("latches", KILL_SWITCH)
        if ref not in self._outbox:
            self._stored.pop(ref, None)  # what this process last read may be stale: read it again
            self._queue(ref, functools.partial(self._stamped, latch), landed)
            self._flush(pending)

    def _stamped(self, latch: Latch, current: Optional[str]) -> Optional[str]:
        """A Merge that writes ``latch`` where no record is, with the latest reset count this process
        knows (a write that read the store knows the store's): no release counted before this
        engagement can then be taken for its own. Lock held."""
        if current is not None:
            return current
        count = max(self._resets, _count(self._stored.get(_RESETS)))
        if latch.name == KILL_SWITCH and latch.resets is not None and count > latch.resets:
            return dataclasses.replace(latch, resets=count).to_text()
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

    def release_day_halt(self, name: str, pending: Pending) -> bool:
        """Lift a day halt: written first, then let go; False (halt kept) if the store refuses. Lock held."""
        if name not in self._held:
            return False
        try:
            self._write_now(("latches", name), lambda current: None)
        except StateStoreError as exc:
            self._store_failed(exc, pending)
            return False
        return self._let_go(name, pending)

    def repair(self, pending: Pending) -> None:
        """Before a keyed release: read an unreadable store again, and if it still cannot be read start
        it afresh (keeping the file aside). Lock held; raises StateStoreError if that fails too."""
        if not self._corrupt:
            return
        try:
            self._merge(self.store.read(), pending)  # readable again: adopt it
        except CorruptStateError:
            self._start_afresh(pending)

    def release_kill_switch(self, actor: Optional[str], pending: Pending, *, by: str) -> bool:
        """Release the kill switch for every process sharing the store. Lock held; the caller checked
        the authority (the key, or ``reset_breaker`` with ``require_manual_reset`` off).

        The release is counted in the store first, then the record dropped; raises StateStoreError
        (kill switch still engaged) if either cannot be written.
        """
        self.repair(pending)
        if KILL_SWITCH not in self._held:
            return False
        counted = self._write_now(_RESETS, lambda current: str(max(_count(current), self._resets) + 1))
        try:
            self._write_now(("latches", KILL_SWITCH), lambda current: None)
        except StateStoreError:
            # Not released: take the count back, or a record that vanished later would pass for released.
            self._undo(_RESETS, counted, str(self._resets) if self._resets else None)
            raise
        self._resets = _count(counted)
        self._let_go(KILL_SWITCH, pending)
        self._audit("kill_switch_reset", f"reset by {by}", actor, pending)
        return True

    def keyed_release(self, rebase: Optional[Tuple[Decimal, Decimal]], actor: Optional[str], pending: Pending) -> bool:
        """A keyed reset: re-base the drawdown on ``rebase`` (value, baseline), written first so that no
        process measures against the old peak once released; then release. If the release cannot be
        written, the re-base is taken back (a refused reset changes nothing) and StateStoreError
        raised. False if the kill switch was not engaged. Lock held; blocks on the store."""
        self.repair(pending)
        if KILL_SWITCH not in self._held:
            return False
        before = (self.high_water, self.baseline)
        if rebase is not None:
            self.set_high_water(rebase[0], rebase[1], pending)
        try:
            return self.release_kill_switch(actor, pending, by="key")
        except StateStoreError:
            if rebase is not None:
                self._undo(_HWM, str(rebase[0]), None if before[0] is None else str(before[0]))
                self._undo(_BASELINE, _baseline_text(rebase[1]), _baseline_text(before[1]))
                self.high_water, self.baseline = before
            raise

    def _undo(self, ref: Ref, written: Optional[str], previous: Optional[str]) -> None:
        """Put ``previous`` back where this process wrote ``written``, unless another process wrote since."""
        try:
            self._write_now(ref, lambda current: previous if current == written else current)
        except StateStoreError as exc:
            logger.error("cannot take back %s/%s after a reset that failed: %s", ref[0], ref[1], exc)

    def _start_afresh(self, pending: Pending) -> None:
        """After an unreadable store, a keyed reset starts it empty and writes back what this process holds."""
        self.store.reset()
        self._corrupt = self._provisional = False
        self._stored.clear()
        self._outbox.clear()
        self._epoch = self._epoch or uuid.uuid4().hex
        self._write_now(_EPOCH, lambda current: self._epoch)
        if self.key is not None:
            key_text = json.dumps(self.key.to_dict(), sort_keys=True)
            self._write_now(_KEY, lambda current: key_text)
        self._write_now(_RESETS, lambda current: str(self._resets))
        self._faults.pop("state", None)
        self._changed()
        self._audit(
            "state_restarted", f"{self.store.describe()} started afresh after it proved unreadable", None, pending
        )

    def apply_time_rules(self, cleared: Callable[[str], bool], pending: Pending) -> None:
        """Lift day halts whose trading day is over by both clocks, and (with ``auto_recovery``) those
        cooled down and cleared by a fresh reading. Lock held."""
        if not self._held:
            return
        now, mono = self._clock.now(), self._clock.monotonic()
        config = self._config
        for name in DAY_HALTS:
            held = self._held.get(name)
            if held is None:
                continue
            cooled = config.auto_recovery and mono - held.mono >= config.cooldown_seconds and cleared(name)
            if cooled or held.day_over(now, mono, config):
                self.release_day_halt(name, pending)

    # --- values (lock held) ------------------------------------------------------------------------

    def raise_high_water(self, total: Decimal, pending: Pending) -> None:
        """Raise the high-water mark to ``total`` if higher (stricter: applied at once, written when it can)."""
        if self.high_water is not None and total <= self.high_water:
            return
        self.high_water = total

        def merge(current: Optional[str]) -> Optional[str]:
            try:
                stored = _number(current)
            except ValueError:
                stored = None
            return current if stored is not None and stored >= total else str(total)

        self._queue(_HWM, merge, self._adopt_high_water)
        self._flush(pending)

    def _adopt_high_water(self, stored: Optional[str], pending: Pending) -> None:
        """A higher mark another process wrote meanwhile is the desk's: adopt it (stricter)."""
        try:
            mark = _number(stored)
        except ValueError:
            return
        if mark is not None and (self.high_water is None or mark > self.high_water):
            self.high_water = mark

    def set_high_water(self, value: Optional[Decimal], baseline: Optional[Decimal], pending: Pending) -> None:
        """Replace the high-water mark and (unless None) the baseline: written first. Raises StateStoreError."""
        self._write_now(_HWM, lambda current: None if value is None else str(value))
        self.high_water = value
        if baseline is not None:
            self._write_now(_BASELINE, lambda current: _baseline_text(baseline))
            self.baseline = baseline

    def clear_baseline(self, pending: Pending) -> None:
        """Forget the drawdown baseline (the provider saw a new peak): stricter, so applied at once."""
        self.baseline = Decimal(0)
        self._queue(_BASELINE, lambda current: None)
        self._flush(pending)

    def move_high_water(self, delta: Decimal, pending: Pending) -> None:
        """Move the stored high-water mark by a cash flow; written first. Raises StateStoreError."""
        if self.high_water is None:
            return

        def moved(current: Optional[str]) -> Optional[str]:
            mark = (_number(current) if current is not None else self.high_water) or Decimal(0)
            mark += delta
            return str(mark) if mark > 0 else None

        stored = self._write_now(_HWM, moved)
        self.high_water = _number(stored)

    def audit_event(self, event: str, reason: Optional[str], actor: Optional[str], pending: Pending) -> None:
        """Audit an event (lock held); a trail that cannot be written blocks trading until it can."""
        self._audit(event, reason, actor, pending)

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

    # --- the reset key and its lockout ---------------------------------------------------------------

    def attach_key(self, secret: Optional[bytes], pending: Pending) -> bool:
        """Bind this process's reset key to the store's; True once done. Lock held.

        The first process with a key stores its hash; later ones must match it (ConfigError
        otherwise); one without a key adopts the stored hash whenever one appears. Until the store
        has been read, this process's own key (if any) is used, so that a keyed reset can start an
        unreadable store afresh; :meth:`sync` calls this again.
        """
        stored = self._stored.get(_KEY, _MISSING)
        if stored is _MISSING:  # not read yet
            if secret is not None and self.key is None:
                self.key = ResetKey(secret)
            return False
        if stored is None:
            if secret is None:
                return self.key is not None  # keyless: bound once a process with the key has stored its hash
            mine = ResetKey(secret)
            text = json.dumps(mine.to_dict(), sort_keys=True)
            try:
                if self.store.compare_and_set(*_KEY, None, text):
                    self._stored[_KEY] = text
                    self.key = mine
                    return True
                stored = self.store.read()["values"].get("reset_key")
            except StateStoreError as exc:
                self._store_failed(exc, pending)
                return False
            self._stored[_KEY] = stored
            if stored is None:
                return False
        try:
            shared = _stored_key(str(stored))
        except ValueError:
            return False  # garbage: the sync engages the kill switch and writes this process's key over it
        if secret is not None and not shared.verify(secret):
            raise ConfigError(f"reset_key does not match the reset key already stored in {self.store.describe()}")
        self.key = shared
        return True

    def lockout_read(self) -> Attempts:
        """The shared wrong-key count and lockout; StateStoreError if the store cannot say."""
        return self._decode_lockout(self.store.read()["values"].get("reset_lockout"))

    def lockout_update(self, change: Callable[[Attempts], Attempts]) -> Attempts:
        """Replace the shared wrong-key count and lockout atomically; StateStoreError on failure."""
        for _ in range(8):
            current = self.store.read()["values"].get("reset_lockout")
            attempts = change(self._decode_lockout(current))
            failures, until = attempts
            new = json.dumps({"failures": failures, "locked_until": None if until is None else until.isoformat()})
            if self.store.compare_and_set(*_LOCKOUT, current, new):
                return attempts
        raise StateStoreError(f"{self.store.describe()}: reset_lockout kept changing under this process")

    @staticmethod
    def _decode_lockout(text: Optional[str]) -> Attempts:
        """The stored lockout; an unreadable one counts from zero (the sync engages the kill switch for it)."""
        try:
            return _lockout(text)
        except ValueError:
            return 0, None

    # --- the store: writes (lock held) -------------------------------------------------------------

    def _queue(self, ref: Ref, merge: Merge, done: Optional[Done] = None) -> None:
        self._outbox[ref] = (merge, done)
        self._changed()

    def _write_now(self, ref: Ref, merge: Merge) -> Optional[str]:
        """Write one record now (CAS, re-reading on a miss); return what is stored. Raises StateStoreError."""
        for _ in range(8):
            current = self._stored.get(ref, _MISSING)
            if current is _MISSING:
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
                latch = Latch.new(KILL_SWITCH, why, now, self._config, actor=_AUTOMATIC, resets=self._resets)
                self._take_on(latch, pending)  # provisional: written only if no keyed reset follows
                self._provisional = True
                self._audit("kill_switch_engaged", latch.reason, latch.actor, pending)
        self.set_fault("state", str(exc), pending)

    def _readable_again(self, resets: int, pending: Pending) -> None:
        """The first good read after an unreadable one: a provisional kill switch is released if a keyed
        reset happened meanwhile (in this process or another), else written as any other. Lock held."""
        self._corrupt = False
        if not self._provisional:
            return
        self._provisional = False
        if resets > self._resets_seen.get(KILL_SWITCH, 0):
            self._let_go(KILL_SWITCH, pending)
            return
        latch = self._held[KILL_SWITCH].latch
        self._queue(("latches", KILL_SWITCH), lambda current: current if current is not None else latch.to_text())

    def _audit(self, event: str, reason: Optional[str], actor: Optional[str], pending: Pending) -> None:
        """Audit (lock held); a trail that cannot be written blocks trading until it can, and loses nothing."""
        try:
            self.audit.record(event, reason=reason, actor=actor)
        except StateStoreError as exc:
            self.set_fault("audit", f"{exc} ({self.audit.pending} entries waiting)", pending)

    # --- the store: reads ----------------------------------------------------------------------------

    def sync(self, pending: Pending) -> None:
        """Adopt what the store holds (other processes' engages and resets, a restart's state), send what
        waits in the outbox, retry the audit trail, and detect a lost or garbage store. Never raises.

        Blocks on the store; the read itself runs with no lock held.
        """
        try:
            version = self.store.version()
        except Exception:
            version = None
        with self.lock:
            self._retry_audit(pending)
            quiet = not self._outbox and "state" not in self._faults and not self._corrupt
            if quiet and version is not None and version == self._seen_version:
                return
            changes = self._changes
        try:
            tables: Optional[Tables] = self.store.read()
            error: Optional[StateStoreError] = None
        except StateStoreError as exc:
            tables, error = None, exc
        except Exception as exc:
            tables, error = None, StateStoreError(f"{self.store.describe()}: read failed: {exc!r}")
        with self.lock:
            if error is not None or tables is None:
                self._store_failed(error or StateStoreError("no state"), pending)
                return
            if self._changes != changes:
                self._flush(pending)
                return  # a local change raced this read: the next sync decides
            try:
                self._merge(tables, pending)
            except Exception as exc:
                logger.exception("cannot adopt the state of %s", self.store.describe())
                self.set_fault("state", f"{self.store.describe()}: cannot adopt its state: {exc!r}", pending)
                return
            if self._flush(pending):
                self._store_error = None
                self.clear_fault("state", pending)
                self._seen_version = version

    def _retry_audit(self, pending: Pending) -> None:
        if "audit" not in self._faults:
            return
        try:
            self.audit.flush()
        except StateStoreError as exc:
            self._faults["audit"] = f"{exc} ({self.audit.pending} entries waiting)"
            return
        self.clear_fault("audit", pending)

    def _merge(self, tables: Tables, pending: Pending) -> None:
        """Adopt ``tables`` (lock held): detect loss, take on or let go of latches, adopt values."""
        latches, values = tables["latches"], tables["values"]
        for table, records in tables.items():
            for ref in [ref for ref in self._stored if ref[0] == table]:
                self._stored[ref] = records.get(ref[1])
        for key in ("epoch", "reset_key", "kill_switch_resets", "high_water_mark", "drawdown_baseline_pct"):
            self._stored[("values", key)] = values.get(key)
        stored_epoch = values.get("epoch")
        if self._epoch is None:
            self._epoch = stored_epoch
            if stored_epoch is None:  # a new store: the first process to write its epoch names it
                mine = uuid.uuid4().hex
                self._queue(_EPOCH, lambda current: current or mine, self._adopt_epoch)
        elif stored_epoch != self._epoch:
            self._lost(stored_epoch, pending)
        resets = _count(values.get("kill_switch_resets"))
        if self._corrupt:
            self._readable_again(resets, pending)
        self._resets = max(self._resets, resets)
        for name in LATCH_NAMES:
            self._merge_latch(name, latches.get(name), resets, pending)
        self._merge_values(values, pending)

    def _adopt_epoch(self, stored: Optional[str], pending: Pending) -> None:
        self._epoch = stored

    def _merge_latch(self, name: str, text: Optional[str], resets: int, pending: Pending) -> None:
        held = self._held.get(name)
        if text is not None:
            try:
                latch = Latch.from_text(name, text)
            except ValueError as exc:
                self._garbage_latch(name, text, str(exc), pending)
                return
            if held is None:
                self._take_on(latch, pending)
                self._events_from_store(latch, pending)
            elif held.latch != latch:
                self._held[name] = Held(latch, held.wall, held.mono)  # the store's engagement is the one
                self.last[name] = latch
                if name == KILL_SWITCH and latch.resets is not None:
                    self._resets_seen[KILL_SWITCH] = latch.resets
            return
        if held is None or ("latches", name) in self._outbox:
            return
        if name != KILL_SWITCH:
            self._let_go(name, pending)  # another process lifted it (its day rolled over, or reset_breaker)
        elif resets > self._resets_seen.get(KILL_SWITCH, 0):
            self._let_go(name, pending)  # released by a keyed reset in another process
            logger.warning("kill switch released (reset in another process sharing %s)", self.store.describe())
        else:
            latch = held.latch
            logger.error("kill switch record vanished from %s without a keyed reset: restored", self.store.describe())
            self._queue(("latches", name), lambda current: current if current is not None else latch.to_text())
            why = f"its record vanished from {self.store.describe()} without a keyed reset"
            self._audit("kill_switch_restored", why, _AUTOMATIC, pending)

    def _events_from_store(self, latch: Latch, pending: Pending) -> None:
        if latch.name == KILL_SWITCH:
            logger.warning("kill switch engaged (from %s): %s", self.store.describe(), latch.reason)
            if self._trading:
                self._audit("kill_switch_heard", latch.reason, latch.actor, pending)  # this process halted too

    def _garbage_latch(self, name: str, text: str, problem: str, pending: Pending) -> None:
        """An unreadable latch record: hold the latch (the day's halt, or the kill switch) and overwrite it."""
        reason = f"unreadable record in {self.store.describe()} latches/{name}: {problem}"
        logger.error("%s; it is held as engaged and rewritten", reason)
        self._audit("state_unreadable", reason, _AUTOMATIC, pending)
        if name not in self._held:
            self.engage(name, reason, _AUTOMATIC, pending)  # queues a put-if-absent; replace the garbage too
        latch = self._held[name].latch
        self._queue(("latches", name), lambda current: latch.to_text() if current in (None, text) else current)

    def _merge_values(self, values: Dict[str, str], pending: Pending) -> None:
        for ref, attribute in ((_HWM, "high_water"), (_BASELINE, "baseline")):
            text = values.get(ref[1])
            if ref in self._outbox:
                continue  # ours is newer, and on its way
            try:
                value = _number(text)
            except ValueError as exc:
                mine: Optional[Decimal] = getattr(self, attribute)
                self._garbage_value(ref, str(text), str(exc), functools.partial(_text_of, mine), pending)
                continue
            if attribute == "high_water":
                self.high_water = value
            else:
                self.baseline = Decimal(0) if value is None else value
        key_text = None if self.key is None else json.dumps(self.key.to_dict(), sort_keys=True)
        resets = str(self._resets)
        checks: Tuple[Tuple[Ref, Callable[[str], object], Optional[str]], ...] = (
            (_KEY, _stored_key, key_text),  # this process's key (if any) replaces a garbage hash
            (_LOCKOUT, _lockout, None),
            (_RESETS, _checked_count, resets),
        )
        for ref, check, replacement in checks:
            text = values.get(ref[1])
            if text is None or ref in self._outbox:
                continue
            try:
                check(text)
            except ValueError as exc:
                self._garbage_value(ref, text, str(exc), functools.partial(_replace, text, replacement), pending)
        if key_text is not None and values.get("reset_key") is None and _KEY not in self._outbox:
            self._queue(_KEY, functools.partial(_keep_or, key_text))  # a lost hash: written back

    def _garbage_value(self, ref: Ref, text: str, problem: str, merge: Merge, pending: Pending) -> None:
        """An unreadable value record: the kill switch engages (what it guarded cannot be known), the
        event is audited, and ``merge`` writes a good record over it. Lock held."""
        reason = f"unreadable record in {self.store.describe()} {ref[0]}/{ref[1]}: {problem}"
        logger.error("%s; the kill switch engages and the record is rewritten", reason)
        self._audit("state_unreadable", reason, _AUTOMATIC, pending)
        self.engage(KILL_SWITCH, reason, _AUTOMATIC, pending)
        self._queue(ref, merge)

    def _lost(self, stored_epoch: Optional[str], pending: Pending) -> None:
        """The store no longer holds this desk's state: engage, audit, write back what is held."""
        what = "missing" if stored_epoch is None else f"replaced by {stored_epoch}"
        reason = (
            f"{self.store.describe()} lost its state (epoch {self._epoch} {what}): "
            "restarted without its data, flushed or replaced"
        )
        logger.error("%s; the kill switch engages until a keyed reset", reason)
        self._audit("state_lost", reason, _AUTOMATIC, pending)
        if stored_epoch is None:  # a new epoch: every other process sees it changed and finds the loss itself
            mine = uuid.uuid4().hex
            self._queue(_EPOCH, lambda current: current or mine, self._adopt_epoch)
        else:
            self._epoch = stored_epoch
        for name, held in self._held.items():
            self._queue(("latches", name), functools.partial(_keep_or, held.latch.to_text()))
        self.engage(KILL_SWITCH, f"state lost: {reason}", _AUTOMATIC, pending)
        if self.high_water is not None:
            mark = self.high_water
            self._queue(_HWM, lambda current: str(mark))
        if self.baseline < 0:
            baseline = self.baseline
            self._queue(_BASELINE, lambda current: str(baseline))
        resets = self._resets
        self._queue(_RESETS, lambda current: str(max(_count(current), resets)))

    # --- fork ----------------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.store.after_fork_in_child()
        self.audit.after_fork_in_child()


class StoreLockout:
    """The reset guard's wrong-key count and lockout, kept in the core's store (values/reset_lockout).

    While the store's state is unreadable (the case a keyed reset must be able to repair), this
    process's own count stands in; a store that cannot be reached refuses the attempt instead.
    """

    def __init__(self, core: SafetyCore) -> None:
        self._core = core
        self._local = LocalLockout()

    def read(self) -> Attempts:
        try:
            return self._core.lockout_read()
        except CorruptStateError:
            return self._local.read()

    def update(self, change: Callable[[Attempts], Attempts]) -> Attempts:
        try:
            return self._core.lockout_update(change)
        except CorruptStateError:
            return self._local.update(change)
