"""The audit trail of a Redis namespace: a list ``{namespace}:audit`` of JSON lines, oldest first.

Every process sharing the namespace appends to it (engages, resets, refusals, losses, the engages
each process heard of), so ``circuit-breakers audit --redis URL --namespace NS`` reads one trail for
the desk. It keeps the newest :data:`KEEP` lines.
"""

from __future__ import annotations

from typing import List, Sequence

import redis

from circuit_breakers.redis.client import text
from circuit_breakers.redis.store import RedisStore

KEEP = 100_000
"""Lines kept; older ones are trimmed as new ones come."""


class RedisAuditSink:
    """An AuditSink on a RedisStore's namespace. Thread-safe."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.key = store.key("audit")

    def append(self, lines: Sequence[str]) -> None:
        try:
            pipeline = self.store.client.pipeline(transaction=True)
            pipeline.rpush(self.key, *lines)
            pipeline.ltrim(self.key, -KEEP, -1)
            pipeline.execute()
        except (redis.RedisError, OSError) as exc:
            raise self.store.fail(f"append to {self.key}", exc) from exc

    def read(self) -> List[str]:
        try:
            raw = self.store.client.lrange(self.key, 0, -1)
            return [text(line) for line in raw]
        except (redis.RedisError, OSError, TypeError, ValueError) as exc:
            raise self.store.fail(f"read {self.key}", exc) from exc

    def describe(self) -> str:
        return f"audit trail {self.store.describe()} ({self.key})"
