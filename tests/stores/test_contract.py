"""The store contract, kept by every store: memory, the shared SQLite file and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from typing import List

import pytest

from circuit_breakers.errors import ConfigError, ConfigTypeError, CorruptStateError, StateStoreError
from circuit_breakers.stores import TABLES, Store

from .backends import Backend, SqliteBackend, fail_writes

pytestmark = pytest.mark.usefixtures("backend")


def test_is_a_store_that_starts_empty(backend: Backend) -> None:
    store = backend.open()
    assert isinstance(store, Store)
    assert store.kind == backend.kind
    assert store.read() == {table: {} for table in TABLES}


def test_compare_and_set_changes_only_what_it_expected(backend: Backend) -> None:
    store = backend.open()
    assert store.compare_and_set("latches", "max_drawdown", None, "first")
    assert not store.compare_and_set("latches", "max_drawdown", None, "second")  # it is there already
    assert not store.compare_and_set("latches", "max_drawdown", "stale", "second")
    assert store.read()["latches"] == {"max_drawdown": "first"}
    assert store.compare_and_set("latches", "max_drawdown", "first", "second")
    assert store.compare_and_set("latches", "max_drawdown", "second", None)  # None deletes
    assert store.read()["latches"] == {}
    assert not store.compare_and_set("latches", "max_drawdown", "second", None)


def test_put_sets_and_deletes_whatever_is_there(backend: Backend) -> None:
    store = backend.open()
    store.put("procs", "host:1", "a")
    store.put("procs", "host:1", "b")
    store.put("values", "k", "é ✓ \u2028 {}")
    assert store.read()["procs"] == {"host:1": "b"}
    assert store.read()["values"] == {"k": "é ✓ \u2028 {}"}
    store.put("procs", "host:1", None)
    assert store.read()["procs"] == {}


@pytest.mark.parametrize(
    ("table", "key", "value", "error"),
    [
        ("nope", "k", "v", ConfigError),
        ("values", "", "v", ConfigTypeError),
        ("values", 5, "v", ConfigTypeError),
        ("values", "k", 5, ConfigTypeError),
        ("values", "k", b"v", ConfigTypeError),
    ],
)
def test_bad_records_are_refused_before_anything_changes(
    backend: Backend, table: str, key: object, value: object, error: type
) -> None:
    store = backend.open()
    with pytest.raises(error):
        store.put(table, key, value)  # type: ignore[arg-type]
    with pytest.raises(error):
        store.compare_and_set(table, key, None, value)  # type: ignore[arg-type]
    assert store.read() == {table: {} for table in TABLES}


def test_a_second_handle_sees_every_change(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    before = second.version()
    assert first.compare_and_set("latches", "daily_loss", None, "halt")
    assert second.read()["latches"] == {"daily_loss": "halt"}
    after = second.version()
    assert before is None or after is None or before != after  # a cheap "something changed"
    assert not second.compare_and_set("latches", "daily_loss", None, "again")


def test_version_is_stable_while_nothing_changes(backend: Backend) -> None:
    store = backend.open()
    store.put("values", "k", "v")
    first = store.version()
    if first is None:
        pytest.skip(f"{backend.kind} has no version token (it notifies instead)")
    assert store.version() == first


def test_concurrent_compare_and_set_loses_no_update(backend: Backend) -> None:
    """8 threads on 8 handles each add 1 to a counter 25 times with a read-CAS loop: exactly 200."""
    handles = [backend.open() for _ in range(8)]
    start = threading.Barrier(len(handles))
    failures: List[BaseException] = []

    def add(store: Store) -> None:
        try:
            start.wait()
            for _ in range(25):
                while True:
                    current = store.read()["values"].get("count")
                    if store.compare_and_set("values", "count", current, str(int(current or 0) + 1)):
                        break
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(store,)) for store in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert handles[0].read()["values"]["count"] == "200"


def test_reset_starts_from_nothing(backend: Backend) -> None:
    store = backend.open()
    store.put("latches", "max_drawdown", "x")
    store.reset()
    assert store.read() == {table: {} for table in TABLES}


def test_garbage_behind_its_back_is_a_corrupt_state_error(backend: Backend) -> None:
    store = backend.open()
    store.put("values", "k", "v")
    backend.corrupt()
    with pytest.raises(CorruptStateError) as info:
        store.read()
    assert store.describe() in str(info.value)
    store.reset()  # a keyed reset starts it again
    store.put("values", "k", "v")
    assert store.read()["values"] == {"k": "v"}


def test_a_wiped_store_reads_as_empty(backend: Backend) -> None:
    store = backend.open()
    store.put("values", "epoch", "e1")
    backend.wipe()
    assert store.read()["values"] == {}  # its owner finds its epoch gone: see the safety core's tests
    store.put("values", "epoch", "e2")
    assert backend.open().read()["values"] == {"epoch": "e2"}


def test_injected_write_failures_are_state_store_errors_and_change_nothing(backend: Backend) -> None:
    store = backend.open()
    store.put("values", "k", "v")
    restore = fail_writes(store)
    with pytest.raises(StateStoreError, match="No space left"):
        store.compare_and_set("values", "k", "v", "w")
    restore()
    assert store.read()["values"] == {"k": "v"}


def test_close_is_idempotent(backend: Backend) -> None:
    store = backend.open()
    store.close()
    store.close()


CHILD = textwrap.dedent(
    """
    import sys
    from circuit_breakers.stores import SqliteStore
    store = SqliteStore(sys.argv[1])
    print(store.compare_and_set("latches", "max_drawdown", None, sys.argv[2]), flush=True)
    """
)


def test_a_second_process_shares_the_sqlite_file(backend: Backend) -> None:
    if not isinstance(backend, SqliteBackend):
        pytest.skip("processes share a file here; Redis has its own multi-process tests")
    store = backend.open()
    assert store.read()["latches"] == {}
    record = json.dumps({"reason": "from another process"})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(backend.path), record], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"
    assert store.read()["latches"] == {"max_drawdown": record}
    assert not store.compare_and_set("latches", "max_drawdown", None, "mine")
