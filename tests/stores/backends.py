"""Every store implementation, as the contract suites see it: open a handle, break it, lose it.

``Backend.open()`` returns a new handle on the same state, as a second process would build one;
``corrupt()`` writes garbage behind the stores' backs; ``wipe()`` loses everything (a Redis restarted
without its data, a state file deleted); ``fail_writes()`` makes every write of a handle fail as a
full disk or a dead server would, until the returned function is called.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from circuit_breakers.errors import StateStoreError
from circuit_breakers.stores import MemoryStore, SqliteStore, Store

from ..redis_server import RedisServer


class Backend:
    """One kind of store, and the means to attack it."""

    kind = ""

    def open(self) -> Store:
        raise NotImplementedError

    def corrupt(self) -> None:
        raise NotImplementedError

    def wipe(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def fail_writes(store: Store, why: str = "No space left on device") -> Callable[[], None]:
    """Make every write of ``store`` raise StateStoreError until the returned function is called."""
    saved = {name: getattr(store, name) for name in ("compare_and_set", "put")}

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise StateStoreError(f"{store.describe()}: cannot write: OSError: [Errno 28] {why}")

    for name in saved:
        setattr(store, name, refuse)

    def restore() -> None:
        for name, method in saved.items():
            setattr(store, name, method)

    return restore


class MemoryBackend(Backend):
    kind = "memory"

    def __init__(self) -> None:
        self.store = MemoryStore()

    def open(self) -> Store:
        return self.store  # the only way to share a memory store: one object, several owners

    def corrupt(self) -> None:
        pytest.skip("a memory store holds only what its owners wrote")

    def wipe(self) -> None:
        self.store.reset()


class SqliteBackend(Backend):
    kind = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "desk.db"
        self.handles: List[SqliteStore] = []

    def open(self) -> Store:
        # A generous wait for the file's lock: handles here contend on a loaded machine, and the
        # contract under test is "no lost update", not latency (a wait that runs out is a StateStoreError).
        handle = SqliteStore(self.path, timeout=30)
        self.handles.append(handle)
        return handle

    def corrupt(self) -> None:
        self.path.write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 2000)

    def wipe(self) -> None:
        for suffix in ("", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


class RedisBackend(Backend):
    kind = "redis"

    def __init__(self, server: RedisServer) -> None:
        from circuit_breakers.redis import RedisStore  # noqa: PLC0415 - only where Redis runs

        self.server = server
        self.namespace = f"contract-{uuid.uuid4().hex[:8]}"
        self.clients: List[Any] = []
        self._store = RedisStore

    def open(self) -> Store:
        client = self.server.client()
        self.clients.append(client)
        return self._store(client, self.namespace, resync_seconds=0.05)

    def corrupt(self) -> None:
        admin = self.server.client()
        admin.delete(f"{self.namespace}:latches")
        admin.set(f"{self.namespace}:latches", "garbage")
        admin.close()

    def wipe(self) -> None:
        admin = self.server.client()
        admin.flushall()
        admin.close()

    def close(self) -> None:
        for client in self.clients:
            client.close()


BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store implementation in turn (the Redis one on the session's real server)."""
    made: Backend
    if request.param == "memory":
        made = MemoryBackend()
    elif request.param == "sqlite":
        made = SqliteBackend(tmp_path)
    else:
        made = RedisBackend(request.getfixturevalue("redis_server"))
    yield made
    made.close()
