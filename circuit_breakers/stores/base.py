"""The store contract: small named text records in three tables, changed only atomically.

A store keeps, in each table, records ``key -> text`` (the text is JSON or a number written by the
trading layer; the store never looks inside). Tables:

- ``latches``: the latched halts (``max_drawdown`` is the kill switch), one record each;
- ``values``: shared values (high-water mark, reset-key hash, lockout, the store's epoch, ...);
- ``procs``: one status heartbeat per process sharing the state.

Every change is one atomic operation on one record: :meth:`Store.compare_and_set` (change it only if
it still holds what the caller saw) or :meth:`Store.put` (set it whatever it holds). There is no
"save the whole state": processes sharing a store can never lose each other's changes. Stores only
store: what a record means, and what to do when one is garbage or missing, is decided by their
owner (:mod:`circuit_breakers.trading.safety`).

Every method raises :class:`~circuit_breakers.errors.StateStoreError` naming the store when it
cannot be read or written; nothing else escapes.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Protocol, runtime_checkable

from circuit_breakers.errors import ConfigError, ConfigTypeError

TABLES = ("latches", "values", "procs")
"""The tables every store holds."""

Tables = Dict[str, Dict[str, str]]
"""A snapshot: table -> key -> text, fresh copies."""


@runtime_checkable
class Subscription(Protocol):
    """A running notification thread of a store (see :meth:`Store.subscribe`)."""

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        ...

    def close(self, wait: bool = True) -> None:
        """Stop the thread and (with ``wait``) wait briefly for it; idempotent."""
        ...


@runtime_checkable
class Store(Protocol):
    """Where trading state lives; possibly shared by several processes. Implementations are thread-safe."""

    def describe(self) -> str:
        """Where the state lives, for messages: ``"memory"``, ``"sqlite /var/lib/desk.db"``, ``"redis desk-1"``."""
        ...

    @property
    def kind(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"redis"``."""
        ...

    def read(self) -> Tables:
        """Every record of every table (each table present, maybe empty). Blocks on the store."""
        ...

    def compare_and_set(self, table: str, key: str, expected: Optional[str], new: Optional[str]) -> bool:
        """Atomically set ``table[key]`` to ``new`` (None deletes it) if it holds ``expected`` (None: absent).

        Returns whether it changed hands; False means the record held something else (read again).
        """
        ...

    def put(self, table: str, key: str, value: Optional[str]) -> None:
        """Set (None: delete) ``table[key]`` whatever it holds."""
        ...

    def version(self) -> object:
        """A cheap token that changes whenever the stored state may have changed; None if the store has none.

        Two equal tokens (not None) promise that a :meth:`read` would return what the last one did.
        """
        ...

    def subscribe(self, on_change: Callable[[], object]) -> Optional[Subscription]:
        """Call ``on_change()`` on a thread of the store when another process changes a latch.

        Returns the running subscription, or None if this store notifies no one (its owner polls
        :meth:`version` instead). ``on_change`` must not raise (if it does, it is logged); once it
        returns False (its owner is gone) the subscription ends.
        """
        ...

    def reset(self) -> None:
        """Start again from an empty store; only after its state proved unreadable and a keyed reset
        chose to start afresh. A file store keeps the unreadable file beside the new one."""
        ...

    def close(self) -> None:
        """Release connections and threads; idempotent. The store may not be used afterwards."""
        ...

    def after_fork_in_child(self) -> None:
        """In a forked child: drop what the parent's threads may have held (locks, connections)."""
        ...


def check_record(table: object, key: object, *values: Optional[object]) -> None:
    """Raise ConfigTypeError / ConfigError unless ``table`` is a known table, ``key`` a non-empty str and
    every value a str or None. Stores call it before touching anything."""
    if table not in TABLES:
        raise ConfigError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
    if not isinstance(key, str) or not key:
        raise ConfigTypeError(f"record key must be a non-empty str, got {key!r}")
    for value in values:
        if value is not None and not isinstance(value, str):
            raise ConfigTypeError(f"record value must be a str or None, got {value!r}")


def empty_tables() -> Tables:
    """A snapshot with every table and no records."""
    return {table: {} for table in TABLES}
