"""What the shared SQLite file adds to the contract: files, symlinks, old JSON, a full disk, kill -9."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from circuit_breakers.errors import ConfigError, ConfigTypeError, CorruptStateError, StateStoreError
from circuit_breakers.stores import SqliteStore


def test_files_are_private_to_their_owner(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "desk.db")
    store.put("values", "k", "v")
    for name in ("desk.db", "desk.db-journal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_a_symlinked_path_writes_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real" / "desk.db"
    target.parent.mkdir()
    link = tmp_path / "desk.db"
    link.symlink_to(target)
    SqliteStore(link).put("latches", "max_drawdown", "engaged")
    assert link.is_symlink()  # never replaced by a plain file
    assert SqliteStore(target).read()["latches"] == {"max_drawdown": "engaged"}
    assert (target.parent / "desk.db-journal").exists()  # the journal lives beside the target


def test_an_old_json_state_file_is_converted_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    latch = {"reason": "drawdown", "since": "2026-01-05T14:30:00+00:00", "trading_day": "2026-01-05"}
    document = {"version": 1, "latches": {"max_drawdown": latch}, "values": {"high_water_mark": "1000000"}}
    path.write_text(json.dumps(document), encoding="utf-8")
    tables = SqliteStore(path).read()
    assert json.loads(tables["latches"]["max_drawdown"]) == latch
    assert tables["values"] == {"high_water_mark": "1000000"}
    assert json.loads((tmp_path / "state.json.json-migrated").read_text(encoding="utf-8")) == document


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"version": 1, "latches": "nope"}', b"not a database at all", b"SQLite format 3\x00" + b"\x00" * 50],
    ids=["empty", "truncated-json", "wrong-json", "garbage", "truncated-database"],
)
def test_an_unreadable_file_is_corrupt_until_reset(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "desk.db"
    path.write_bytes(content)
    store = SqliteStore(path)  # does not raise: its owner decides what an unreadable state means
    with pytest.raises(CorruptStateError, match=str(path)):
        store.read()
    store.reset()
    assert store.read()["latches"] == {}
    kept = [name for name in os.listdir(tmp_path) if name.startswith("desk.db.unreadable-")]
    assert kept, os.listdir(tmp_path)
    assert (tmp_path / kept[0]).read_bytes() == content  # the evidence is kept


def test_a_sqlite_file_of_another_program_is_not_taken_for_state(tmp_path: Path) -> None:
    import sqlite3  # noqa: PLC0415

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(CorruptStateError, match="not a state file of this library"):
        SqliteStore(path).read()


@pytest.mark.parametrize(("path", "error"), [(5, ConfigTypeError), ("", ConfigError), (None, ConfigTypeError)])
def test_bad_paths_are_refused(path: object, error: type) -> None:
    with pytest.raises(error):
        SqliteStore(path)  # type: ignore[arg-type]


def test_missing_directory_and_directory_paths_are_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="does not exist"):
        SqliteStore(tmp_path / "missing" / "desk.db")
    with pytest.raises(StateStoreError, match="is a directory"):
        SqliteStore(tmp_path)


def test_a_replaced_file_is_noticed_and_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    store = SqliteStore(path)
    store.put("values", "epoch", "first")
    version = store.version()
    other = tmp_path / "other.db"
    SqliteStore(other).put("values", "epoch", "second")
    os.replace(other, path)
    assert store.version() != version
    assert store.read()["values"] == {"epoch": "second"}
    path.unlink()
    assert store.read()["values"] == {}  # a deleted file: a new empty one, whose owner finds its epoch gone


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (as root); elsewhere the test is skipped, and in CI it fails."""
    directory = tmp_path / "small"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        message = f"cannot mount a small tmpfs: {mounted.stderr.strip() or 'not root'}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(directory: Path) -> None:
    with open(directory / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
    with pytest.raises(OSError, match="No space left"):
        (directory / "probe").write_bytes(b"x" * 65536)


def test_the_state_can_still_be_written_on_a_full_disk(small_disk: Path) -> None:
    store = SqliteStore(small_disk / "desk.db")
    store.put("values", "high_water_mark", "1000000")
    fill(small_disk)
    for value in range(1_000_001, 1_000_200):  # a day of rising marks
        store.put("values", "high_water_mark", str(value))
    assert store.compare_and_set("latches", "max_drawdown", None, json.dumps({"reason": "x" * 500}))
    for number in range(20):
        store.put("procs", f"host:{number}", "y" * 300)
    assert SqliteStore(small_disk / "desk.db").read()["values"]["high_water_mark"] == "1000199"


CHILD = textwrap.dedent(
    """
    import sys
    from circuit_breakers.stores import SqliteStore
    store = SqliteStore(sys.argv[1])
    number = 0
    while True:
        number += 1
        store.put("values", "counter", str(number))
        store.put("latches", "daily_loss", "x" * (number % 3000))
        if number == 20:
            print("writing", flush=True)  # and it goes on writing until killed
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_write_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    SqliteStore(path).put("values", "counter", "0")
    for _ in range(5):
        with subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "writing"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        tables = SqliteStore(path).read()  # a hot journal, if any, is rolled back: whole records only
        counter = int(tables["values"]["counter"])
        assert counter >= 20
        assert tables["latches"]["daily_loss"] in ("x" * (counter % 3000), "x" * ((counter - 1) % 3000))


def test_opening_a_second_store_keeps_the_locks_of_a_transaction_in_progress(tmp_path: Path) -> None:
    """Opening the file may not drop this process's POSIX locks on it (closing any descriptor of a file
    drops them all): another process would then write over a transaction still in progress."""
    import sqlite3  # noqa: PLC0415

    path = tmp_path / "desk.db"
    SqliteStore(path).put("values", "k", "before")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    writer.execute("UPDATE records SET value = 'mine' WHERE key = 'k'")
    try:
        SqliteStore(path)  # a second desk opens the same file in this process
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                import sqlite3
                connection = sqlite3.connect({str(path)!r}, timeout=0, isolation_level=None)
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    print("refused:", exc)
                else:
                    print("got the write lock")
            """),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert other.stdout.strip() == "refused: database is locked"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
