"""The safety-state core: latches, faults, pending writes and the kill switch, under one lock.

Every transition goes one way: validated -> applied here -> written to the store -> published (the
events are handed back in ``pending``; the caller fires them once every lock is released).

- What is stricter (an engage, a higher high-water mark, a record restored after a loss) takes
  effect here at once and is written as soon as the store takes it. Until then it waits in the
  outbox, in order, is retried at every sync, and blocks trading (fault ``state``).
- What is less strict (a release, a re-based high-water mark) is written first and takes effect
  only once written: a store that cannot take it leaves the halt in force.
- "Can trade" is derived from this state in one place (:meth:`SafetyCore.blocks`); the lock-free
  fast path reads :attr:`~SafetyCore.attention`, :attr:`~SafetyCore.certain` and
  :attr:`~SafetyCore.day_bounds`, which every change recomputes.

Only a keyed reset (:meth:`SafetyCore.keyed_release`) releases the kill switch (or
``reset_breaker`` when ``require_manual_reset`` is off): it counts the release in the store
(``values/kill_switch_resets``) before dropping the record. A process that finds the kill switch
gone from the store without such a count restores it; one that finds the store's epoch gone or
replaced (a Redis restarted without its data, a file deleted) engages it, audits the loss and
writes back what it holds. Unreadable records engage the kill switch (or, for a day halt, halt the
day) and are overwritten with good ones.

One class owns the state and its one lock; the parts are mixins over it that keep no state:

- :mod:`~circuit_breakers.trading.safety_state`: the fields, the lock, faults, holding and letting go
  of latches, the audit trail, and the outbox of durable writes;
- :mod:`~circuit_breakers.trading.high_water`: the high-water mark and the drawdown baseline;
- :mod:`~circuit_breakers.trading.reset_records`: the reset key's hash, the wrong-key lockout
  (:class:`StoreLockout`) and the reset count;
- this module: the transitions of the latches and the kill switch, and the adoption of what the
  store holds (other processes' changes, garbage, a lost state);
- :mod:`~circuit_breakers.trading.records`: where each record lives and how its text is read.

Lock order: the facade's lock, then this lock, then the audit trail's and the store's.
"""

from __future__ import annotations

import functools
import logging
import uuid
from decimal import Decimal
from typing import Callable, Optional, Tuple

from circuit_breakers.errors import CorruptStateError, StateStoreError
from circuit_breakers.events import Pending
from circuit_breakers.stores.base import Tables
from circuit_breakers.trading.high_water import HighWaterMark
from circuit_breakers.trading.latches import DAY_HALTS, KILL_SWITCH, LATCH_NAMES, Held, Latch
from circuit_breakers.trading.records import (
    AUTOMATIC,
    BASELINE,
    EPOCH,
    HIGH_WATER,
    KEY,
    RESETS,
    baseline_text,
    count,
    keep_or,
    key_text,
    latch_or_none,
)
from circuit_breakers.trading.reset_records import ResetRecords, StoreLockout
from circuit_breakers.trading.safety_state import Events

logger = logging.getLogger(__name__)


class SafetyCore(HighWaterMark, ResetRecords):
    """Latches, faults and durable values of one trading desk in one process, kept in a store.

    Built as :class:`~circuit_breakers.trading.safety_state.SafetyState` is (store, audit trail,
    clock, config, events); thread-safe under :attr:`lock`.
    """

    # --- latches (lock held) -----------------------------------------------------------------------

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
            written = latch_or_none(KILL_SWITCH, stored)
            held = self._held.get(KILL_SWITCH)
            if written is not None and written.id == latch.id and (held is None or held.latch.id != latch.id):
                self._take_on(written, later)
                self._audit("kill_switch_engaged", written.reason, written.actor, later)

        ref = ("latches", KILL_SWITCH)
        if ref not in self._outbox:
            self._stored.pop(ref, None)  # what this process last read may be stale: read it again
            self._queue(ref, functools.partial(self._stamped, latch), landed)
            self._flush(pending)

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
        counted = self._write_now(RESETS, lambda current: str(max(count(current), self._resets) + 1))
        try:
            self._write_now(("latches", KILL_SWITCH), lambda current: None)
        except StateStoreError:
            # Not released: take the count back, or a record that vanished later would pass for released.
            self._undo(RESETS, counted, str(self._resets) if self._resets else None)
            raise
        self._resets = count(counted)
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
                self._undo(HIGH_WATER, str(rebase[0]), None if before[0] is None else str(before[0]))
                self._undo(BASELINE, baseline_text(rebase[1]), baseline_text(before[1]))
                self.high_water, self.baseline = before
            raise

    def _start_afresh(self, pending: Pending) -> None:
        """After an unreadable store, a keyed reset starts it empty and writes back what this process holds."""
        self.store.reset()
        self._corrupt = self._provisional = False
        self._stored.clear()
        self._outbox.clear()
        self._epoch = self._epoch or uuid.uuid4().hex
        self._write_now(EPOCH, lambda current: self._epoch)
        if self.key is not None:
            text = key_text(self.key)
            self._write_now(KEY, lambda current: text)
        self._write_now(RESETS, lambda current: str(self._resets))
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
                self._queue(EPOCH, lambda current: current or mine, self._adopt_epoch)
        elif stored_epoch != self._epoch:
            self._lost(stored_epoch, pending)
        resets = count(values.get("kill_switch_resets"))
        if self._corrupt:
            self._readable_again(resets, pending)
        self._resets = max(self._resets, resets)
        for name in LATCH_NAMES:
            self._merge_latch(name, latches.get(name), resets, pending)
        self._merge_marks(values, pending)
        self._check_reset_records(values, pending)

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
            self._audit("kill_switch_restored", why, AUTOMATIC, pending)

    def _events_from_store(self, latch: Latch, pending: Pending) -> None:
        if latch.name == KILL_SWITCH:
            logger.warning("kill switch engaged (from %s): %s", self.store.describe(), latch.reason)
            if self._trading:
                self._audit("kill_switch_heard", latch.reason, latch.actor, pending)  # this process halted too

    def _garbage_latch(self, name: str, text: str, problem: str, pending: Pending) -> None:
        """An unreadable latch record: hold the latch (the day's halt, or the kill switch) and overwrite it."""
        reason = f"unreadable record in {self.store.describe()} latches/{name}: {problem}"
        logger.error("%s; it is held as engaged and rewritten", reason)
        self._audit("state_unreadable", reason, AUTOMATIC, pending)
        if name not in self._held:
            self.engage(name, reason, AUTOMATIC, pending)  # queues a put-if-absent; replace the garbage too
        latch = self._held[name].latch
        self._queue(("latches", name), lambda current: latch.to_text() if current in (None, text) else current)

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

    def _lost(self, stored_epoch: Optional[str], pending: Pending) -> None:
        """The store no longer holds this desk's state: engage, audit, write back what is held."""
        what = "missing" if stored_epoch is None else f"replaced by {stored_epoch}"
        reason = (
            f"{self.store.describe()} lost its state (epoch {self._epoch} {what}): "
            "restarted without its data, flushed or replaced"
        )
        logger.error("%s; the kill switch engages until a keyed reset", reason)
        self._audit("state_lost", reason, AUTOMATIC, pending)
        if stored_epoch is None:  # a new epoch: every other process sees it changed and finds the loss itself
            mine = uuid.uuid4().hex
            self._queue(EPOCH, lambda current: current or mine, self._adopt_epoch)
        else:
            self._epoch = stored_epoch
        for name, held in self._held.items():
            self._queue(("latches", name), functools.partial(keep_or, held.latch.to_text()))
        self.engage(KILL_SWITCH, f"state lost: {reason}", AUTOMATIC, pending)
        if self.high_water is not None:
            mark = self.high_water
            self._queue(HIGH_WATER, lambda current: str(mark))
        if self.baseline < 0:
            baseline = self.baseline
            self._queue(BASELINE, lambda current: str(baseline))
        resets = self._resets
        self._queue(RESETS, lambda current: str(max(count(current), resets)))


__all__ = ["Events", "SafetyCore", "StoreLockout"]
