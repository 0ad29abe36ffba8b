"""A store that lives and dies with the process: the default, and for tests and simulations.

Several owners in one process may share one MemoryStore (they then share a kill switch, as
processes sharing a file or Redis do); nothing survives the process.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional

from circuit_breakers.stores.base import Subscription, Tables, check_record, empty_tables


class MemoryStore:
    """Records in dictionaries; thread-safe. Never fails."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _tables and _version
        self._tables: Tables = empty_tables()
        self._version = 0  # bumped by every change

    @property
    def kind(self) -> str:
        return "memory"

    def describe(self) -> str:
        return "memory"

    def read(self) -> Tables:
        with self._lock:
            return {table: dict(records) for table, records in self._tables.items()}

    def compare_and_set(self, table: str, key: str, expected: Optional[str], new: Optional[str]) -> bool:
        check_record(table, key, expected, new)
        with self._lock:
            records: Dict[str, str] = self._tables[table]
            if records.get(key) != expected:
                return False
            self._set(records, key, new)
            return True

    def put(self, table: str, key: str, value: Optional[str]) -> None:
        check_record(table, key, value)
        with self._lock:
            self._set(self._tables[table], key, value)

    def _set(self, records: Dict[str, str], key: str, value: Optional[str]) -> None:
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value
        self._version += 1

    def version(self) -> object:
        return self._version

    def subscribe(self, on_change: Callable[[], object]) -> Optional[Subscription]:
        return None

    def reset(self) -> None:
        with self._lock:
            self._tables = empty_tables()
            self._version += 1

    def close(self) -> None:
        pass

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryStore()"
