"""What a keyed reset depends on, kept in the store: the reset key's hash, the wrong-key lockout, the reset count.

:class:`ResetRecords` is a mixin over :class:`~circuit_breakers.trading.safety_state.SafetyState`
(it keeps no state of its own): it binds this process's reset key to the one stored, reads and
replaces the shared lockout, and checks all three records at every adoption of the store (garbage
engages the kill switch and is overwritten). :class:`StoreLockout` hands the lockout to a
:class:`~circuit_breakers.trading.killswitch.ResetGuard`.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, Optional, Tuple

from circuit_breakers.errors import ConfigError, CorruptStateError, StateStoreError
from circuit_breakers.events import Pending
from circuit_breakers.trading.killswitch import Attempts, LocalLockout, ResetKey
from circuit_breakers.trading.records import (
    KEY,
    LOCKOUT,
    MISSING,
    RESETS,
    Ref,
    checked_count,
    keep_or,
    key_text,
    lockout,
    lockout_text,
    replace_garbage,
    stored_key,
)
from circuit_breakers.trading.safety_state import SafetyState


def _decode_lockout(text: Optional[str]) -> Attempts:
    """The stored lockout; an unreadable one counts from zero (the sync engages the kill switch for it)."""
    try:
        return lockout(text)
    except ValueError:
        return 0, None


class ResetRecords(SafetyState):
    """The reset key's binding, the shared wrong-key lockout, and the checks of the reset records."""

    def attach_key(self, secret: Optional[bytes], pending: Pending) -> bool:
        """Bind this process's reset key to the store's; True once done. Lock held.

        The first process with a key stores its hash; later ones must match it (ConfigError
        otherwise); one without a key adopts the stored hash whenever one appears. Until the store
        has been read, this process's own key (if any) is used, so that a keyed reset can start an
        unreadable store afresh; :meth:`~circuit_breakers.trading.safety.SafetyCore.sync` calls this
        again.
        """
        stored = self._stored.get(KEY, MISSING)
        if stored is MISSING:  # not read yet
            if secret is not None and self.key is None:
                self.key = ResetKey(secret)
            return False
        if stored is None:
            if secret is None:
                return self.key is not None  # keyless: bound once a process with the key has stored its hash
            mine = ResetKey(secret)
            text = key_text(mine)
            try:
                if self.store.compare_and_set(*KEY, None, text):
                    self._stored[KEY] = text
                    self.key = mine
                    return True
                stored = self.store.read()["values"].get("reset_key")
            except StateStoreError as exc:
                self._store_failed(exc, pending)
                return False
            self._stored[KEY] = stored
            if stored is None:
                return False
        try:
            shared = stored_key(str(stored))
        except ValueError:
            return False  # garbage: the sync engages the kill switch and writes this process's key over it
        if secret is not None and not shared.verify(secret):
            raise ConfigError(f"reset_key does not match the reset key already stored in {self.store.describe()}")
        self.key = shared
        return True

    def lockout_read(self) -> Attempts:
        """The shared wrong-key count and lockout; StateStoreError if the store cannot say."""
        return _decode_lockout(self.store.read()["values"].get("reset_lockout"))

    def lockout_update(self, change: Callable[[Attempts], Attempts]) -> Attempts:
        """Replace the shared wrong-key count and lockout atomically; StateStoreError on failure."""
        for _ in range(8):
            current = self.store.read()["values"].get("reset_lockout")
            attempts = change(_decode_lockout(current))
            if self.store.compare_and_set(*LOCKOUT, current, lockout_text(attempts)):
                return attempts
        raise StateStoreError(f"{self.store.describe()}: reset_lockout kept changing under this process")

    def _check_reset_records(self, values: Dict[str, str], pending: Pending) -> None:
        """Garbage in the key hash, the lockout or the reset count engages the kill switch and is replaced
        (by this process's key, nothing, and its count); a lost hash is written back. Lock held."""
        mine = None if self.key is None else key_text(self.key)
        checks: Tuple[Tuple[Ref, Callable[[str], object], Optional[str]], ...] = (
            (KEY, stored_key, mine),  # this process's key (if any) replaces a garbage hash
            (LOCKOUT, lockout, None),
            (RESETS, checked_count, str(self._resets)),
        )
        for ref, check, replacement in checks:
            text = values.get(ref[1])
            if text is None or ref in self._outbox:
                continue
            try:
                check(text)
            except ValueError as exc:
                self._garbage_value(ref, text, str(exc), functools.partial(replace_garbage, text, replacement), pending)
        if mine is not None and values.get("reset_key") is None and KEY not in self._outbox:
            self._queue(KEY, functools.partial(keep_or, mine))  # a lost hash: written back


class StoreLockout:
    """The reset guard's wrong-key count and lockout, kept in the core's store (values/reset_lockout).

    While the store's state is unreadable (the case a keyed reset must be able to repair), this
    process's own count stands in; a store that cannot be reached refuses the attempt instead.
    """

    def __init__(self, core: ResetRecords) -> None:
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
