"""Where trading state lives: the :class:`Store` contract, in memory and in a shared SQLite file.

The Redis store lives in :mod:`circuit_breakers.redis`, with everything else that needs redis-py.
"""

from circuit_breakers.stores.base import TABLES, Store, Subscription, Tables
from circuit_breakers.stores.memory import MemoryStore
from circuit_breakers.stores.sqlite import SqliteStore

__all__ = ["TABLES", "MemoryStore", "SqliteStore", "Store", "Subscription", "Tables"]
