"""State stores: the contract every backend keeps, then what the file backend adds."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuit_breakers.errors import ConfigError, ConfigTypeError, StateStoreError
from circuit_breakers.stores import FileStore, MemoryStore, StateStore

StoreFactory = Callable[[Path], StateStore]

all_stores = pytest.mark.parametrize(
    "make_store",
    [
        pytest.param(lambda tmp: MemoryStore(), id="memory"),
        pytest.param(lambda tmp: FileStore(tmp / "state.json"), id="file"),
    ],
)

DOCUMENT: Dict[str, Any] = {
    "kill_switch": {"engaged": True, "reason": "daily loss -2.5%", "engaged_at": "2026-01-05T14:30:00+00:00"},
    "daily": {"start_equity": "100000.00", "trades": [1, 2, 3]},
    "count": 7,
    "ratio": 0.25,
    "note": None,
    "unicode": "é ✓ \u2028",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "version"), json_values, max_size=6)


# The contract


@all_stores
def test_is_a_state_store(make_store: StoreFactory, tmp_path: Path) -> None:
    assert isinstance(make_store(tmp_path), StateStore)


@all_stores
def test_load_is_none_before_any_save(make_store: StoreFactory, tmp_path: Path) -> None:
    assert make_store(tmp_path).load() is None


@all_stores
def test_save_load_round_trip(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save(DOCUMENT)
    assert store.load() == DOCUMENT


@all_stores
def test_empty_document_round_trips(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save({})
    assert store.load() == {}


@all_stores
def test_save_overwrites_the_whole_document(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save(DOCUMENT)
    store.save({"only": 1})
    assert store.load() == {"only": 1}


@all_stores
def test_caller_mutation_does_not_reach_the_store(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    state = json.loads(json.dumps(DOCUMENT))
    store.save(state)
    state["daily"]["trades"].append(4)
    state["count"] = 8
    loaded = store.load()
    assert loaded == DOCUMENT
    assert loaded is not None
    loaded["kill_switch"]["engaged"] = False
    assert store.load() == DOCUMENT


@all_stores
def test_json_conversions_are_the_same_everywhere(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save({"pair": (1, 2), "by_id": {3: "x"}})
    assert store.load() == {"pair": [1, 2], "by_id": {"3": "x"}}


@all_stores
@pytest.mark.parametrize(
    "state",
    [
        {"amount": Decimal("1.5")},
        {"when": object()},
        {"ratio": float("nan")},
        {"nested": {"inf": float("inf")}},
        ["not", "a", "mapping"],
        {"version": 2},
    ],
    ids=["decimal", "object", "nan", "inf", "list", "reserved-version"],
)
def test_unencodable_state_raises_state_store_error(make_store: StoreFactory, tmp_path: Path, state: Any) -> None:
    store = make_store(tmp_path)
    store.save({"kept": True})
    with pytest.raises(StateStoreError) as info:
        store.save(state)
    assert not isinstance(info.value, TypeError)
    assert store.describe() in str(info.value) or "memory store" in str(info.value)
    assert store.load() == {"kept": True}


@all_stores
def test_describe_names_the_backend(make_store: StoreFactory, tmp_path: Path) -> None:
    description = make_store(tmp_path).describe()
    assert description == "memory" or description == f"file {tmp_path / 'state.json'}"


@all_stores
def test_concurrent_readers_see_whole_documents(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    versions = [{"writer": writer, "n": n, "payload": [writer] * 200} for writer in range(4) for n in range(20)]
    store.save(versions[0])
    barrier = threading.Barrier(8)
    torn: List[object] = []

    def write(writer: int) -> None:
        barrier.wait()
        for document in versions[writer * 20 : (writer + 1) * 20]:
            store.save(document)

    def read() -> None:
        barrier.wait()
        for _ in range(40):
            loaded = store.load()
            if loaded not in versions:
                torn.append(loaded)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torn == []
    assert store.load() in versions


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(document=documents)
def test_any_json_document_round_trips(tmp_path: Path, document: Dict[str, Any]) -> None:
    for store in (MemoryStore(), FileStore(tmp_path / "hypothesis.json")):
        store.save(document)
        assert store.load() == document


# FileStore


def test_file_holds_a_versioned_json_object(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    FileStore(path).save({"a": 1})
    assert json.loads(path.read_text(encoding="utf-8")) == {"version": 1, "a": 1}


def test_path_is_absolute_and_accepts_str(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore("state.json")
    assert store.path == str(tmp_path / "state.json")
    assert repr(store) == f"FileStore({str(tmp_path / 'state.json')!r})"
    store.save({"a": 1})
    assert FileStore(tmp_path / "state.json").load() == {"a": 1}


@pytest.mark.parametrize(("path", "error"), [("", ConfigError), (None, ConfigTypeError), (42, ConfigTypeError)])
def test_bad_path_is_rejected(path: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        FileStore(path)  # type: ignore[arg-type]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_state_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    FileStore(path).save({"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"version": 1, "kill_switch": {"engaged": tr', "not valid JSON"),
        (b"\xff\xfe garbage \x00", "cannot read state file"),
        (b"garbage", "not valid JSON"),
        (b'{"version": 1, "x": NaN}', "not valid JSON"),
        (b'[{"version": 1}]', "must hold a JSON object, found a JSON list"),
        (b'"just a string"', "found a JSON str"),
        (b'{"version": 2, "a": 1}', "format version 2"),
        (b'{"version": true, "a": 1}', "format version True"),
        (b'{"version": "1", "a": 1}', "format version '1'"),
        (b'{"a": 1}', "no format 'version'"),
    ],
    ids=[
        "empty",
        "blank",
        "truncated",
        "not-utf8",
        "garbage",
        "nan",
        "array",
        "string",
        "version-2",
        "version-bool",
        "version-str",
        "no-version",
    ],
)
def test_corrupt_file_raises_naming_path_and_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateStoreError) as info:
        FileStore(path).load()
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_truncated_saved_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    FileStore(path).save(DOCUMENT)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateStoreError, match="not valid JSON"):
        FileStore(path).load()


def test_unreadable_path_raises(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    with pytest.raises(StateStoreError, match="cannot read state file") as info:
        FileStore(tmp_path / "state.json").load()
    assert isinstance(info.value.__cause__, OSError)


def test_check_writable_passes_for_a_good_directory(tmp_path: Path) -> None:
    FileStore(tmp_path / "state.json").check_writable()
    assert list(tmp_path.iterdir()) == []


def test_check_writable_when_parent_is_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("", encoding="utf-8")
    path = blocker / "state.json"
    with pytest.raises(StateStoreError, match="does not exist") as info:
        FileStore(path).check_writable()
    assert str(path) in str(info.value)


def test_check_writable_when_directory_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "state.json"
    with pytest.raises(StateStoreError, match=f"state file {path}"):
        FileStore(path).check_writable()


def test_check_writable_when_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    with pytest.raises(StateStoreError, match="is a directory"):
        FileStore(tmp_path / "state.json").check_writable()


def test_check_writable_when_directory_refuses_new_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod cannot make a directory unwritable; refuse at mkstemp instead.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    path = tmp_path / "state.json"
    with pytest.raises(StateStoreError, match="not writable") as info:
        FileStore(path).check_writable()
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, PermissionError)


def test_save_into_a_missing_directory_raises_chained(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "state.json"
    with pytest.raises(StateStoreError, match=f"cannot write state file {path}") as info:
        FileStore(path).save({"a": 1})
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_crash_mid_write_keeps_old_document_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "state.json"
    store = FileStore(path)
    store.save(DOCUMENT)

    def crash(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(StateStoreError, match=f"cannot write state file {path}: .*Input/output error") as info:
        store.save({"new": True})
    monkeypatch.undo()
    assert isinstance(info.value.__cause__, OSError)
    assert store.load() == DOCUMENT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_interrupt_mid_write_removes_the_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    store = FileStore(path)
    store.save(DOCUMENT)

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.save({"new": True})
    monkeypatch.undo()
    assert store.load() == DOCUMENT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


CHILD = textwrap.dedent(
    """
    import sys, time
    from circuit_breakers.stores import FileStore

    store, loops = FileStore(sys.argv[1]), int(sys.argv[2])
    deadline = time.monotonic() + 30  # never outlive a parent that failed to kill us
    n = 0
    while time.monotonic() < deadline:
        store.save({"n": n, "payload": ["x" * 64] * 256})
        if n < max(loops, 1):
            print(n, flush=True)
        n += 1
        if loops == 0:
            sys.stdin.read()  # wait to be killed, or for the parent to go away
            break
    """
)


def run_child_and_kill(path: Path, loops: int) -> int:
    """Start a child saving to ``path``, wait for its report of ``max(loops, 1)`` saves, SIGKILL it."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(loops)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        watchdog = threading.Timer(30, child.kill)  # a silent child must not hang the suite
        watchdog.start()
        try:
            assert child.stdout is not None
            last = -1
            for _ in range(max(loops, 1)):
                line = child.stdout.readline()
                assert line, f"child stopped reporting (exit status {child.wait(timeout=10)})"
                last = int(line)
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            watchdog.cancel()
    return last


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_document_saved_by_a_killed_process_loads_intact(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert run_child_and_kill(path, loops=0) == 0
    assert FileStore(path).load() == {"n": 0, "payload": ["x" * 64] * 256}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_process_killed_while_saving_leaves_a_whole_document(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    last_reported = run_child_and_kill(path, loops=50)
    loaded = FileStore(path).load()
    assert loaded is not None
    assert loaded["n"] >= last_reported
    assert loaded["payload"] == ["x" * 64] * 256
