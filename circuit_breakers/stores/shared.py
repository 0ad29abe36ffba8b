"""The seam for trading state that may be shared: latched halts and a few named values.

Operations are field-level (set a latch if absent, drop a latch, update one value), never "save
the whole state", so processes sharing one store cannot lose each other's updates: a process
with a stale view can never clear a kill switch that another process engaged.

:class:`DocumentState` gives a :class:`~circuit_breakers.stores.base.StateStore` (memory, file)
this shape for one process; :class:`~circuit_breakers.stores.redis_store.RedisStore` gives it
natively for many.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Callable, Dict, Optional, Protocol, runtime_checkable

from circuit_breakers.clock import Clock
from circuit_breakers.ratelimit import Limit, Permits, RateLimiter
from circuit_breakers.stores.base import StateStore

Update = Callable[[Optional[str]], Optional[str]]
"""Computes a value's new text from its old text (None: absent); returning None deletes it."""


@runtime_checkable
class SharedState(Protocol):
    """Latched halts and named values, possibly shared by several processes. Thread-safe.

    Every method raises StateStoreError when the store cannot be read or written.
    """

    def snapshot(self) -> Dict[str, Dict[str, Any]]:
        """``{"latches": {name: record}, "values": {key: text}}``, fresh copies."""
        ...

    def put_latch(self, name: str, record: Mapping[str, Any]) -> bool:
        """Set latch ``name`` unless it is set already; True if this call set it."""
        ...

    def drop_latch(self, name: str) -> bool:
        """Remove latch ``name``; True if it was set."""
        ...

    def update_value(self, key: str, update: Update) -> Optional[str]:
        """Atomically replace value ``key`` by ``update(old)``; return the new text."""
        ...

    def reset(self) -> None:
        """Forget every latch and value: only after the stored state proved unreadable and an
        operator released the kill switch with the key."""
        ...

    def subscribe(self, on_change: Callable[[], None]) -> Optional[Callable[[], None]]:
        """Call ``on_change()`` (on another thread) whenever another process changes a latch.

        Returns a function that stops the notifications, or None if this store has no other
        processes to hear from.
        """
        ...

    def describe(self) -> str:
        """Where the state lives, for messages: ``"memory"``, ``"file /x.json"``, ``"redis desk-1"``."""
        ...

    @property
    def shared(self) -> bool:
        """Whether other processes share this state (then the reset key's hash is kept in it)."""
        ...

    def rate_limiter(self, *limits: Limit, name: str, clock: Clock) -> Permits:
        """A rate limiter whose windows live where this state lives."""
        ...


class DocumentState:
    """SharedState over a whole-document StateStore, for one process. Thread-safe.

    The document is ``{"latches": {...}, "values": {...}}``; it is read once, kept in memory, and
    written whole after every change (so it is for one process: give several processes a Redis store).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # guards _document and orders the saves
        self._document: Optional[Dict[str, Dict[str, Any]]] = None

    def _loaded(self) -> Dict[str, Dict[str, Any]]:
        if self._document is None:
            stored = self.store.load() or {}
            self._document = {
                "latches": dict(stored.get("latches") or {}),
                "values": dict(stored.get("values") or {}),
            }
        return self._document

    def snapshot(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            document = self._loaded()
            return {"latches": dict(document["latches"]), "values": dict(document["values"])}

    def put_latch(self, name: str, record: Mapping[str, Any]) -> bool:
        with self._lock:
            latches = self._loaded()["latches"]
            if name in latches:
                return False
            latches[name] = dict(record)
            self._save()
            return True

    def drop_latch(self, name: str) -> bool:
        with self._lock:
            if self._loaded()["latches"].pop(name, None) is None:
                return False
            self._save()
            return True

    def update_value(self, key: str, update: Update) -> Optional[str]:
        with self._lock:
            values = self._loaded()["values"]
            new = update(values.get(key))
            if new == values.get(key):
                return new
            if new is None:
                values.pop(key, None)
            else:
                values[key] = new
            self._save()
            return new

    def _save(self) -> None:
        # Under the lock, so saves land in the order of the changes they record.
        self.store.save(self._loaded())

    def flush(self) -> None:
        """Write the document as it is (creates the file of a new state path)."""
        with self._lock:
            self._loaded()
            self._save()

    def reset(self) -> None:
        with self._lock:
            self._document = {"latches": {}, "values": {}}
            self._save()

    def subscribe(self, on_change: Callable[[], None]) -> Optional[Callable[[], None]]:
        return None

    def describe(self) -> str:
        return self.store.describe()

    @property
    def shared(self) -> bool:
        return False

    def rate_limiter(self, *limits: Limit, name: str, clock: Clock) -> RateLimiter:
        return RateLimiter(*limits, name=name, clock=clock)

    def __repr__(self) -> str:
        return f"DocumentState({self.store!r})"
