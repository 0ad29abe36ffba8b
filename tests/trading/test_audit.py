"""AuditLog: one JSON line per event, in the log and fsync'ed to an append-only file."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import List

import pytest

from circuit_breakers.clock import ManualClock
from circuit_breakers.errors import ConfigError, ConfigTypeError, StateStoreError
from circuit_breakers.trading.audit import AuditLog

START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


def test_record_builds_the_entry(tmp_path: Path, clock: ManualClock) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", clock=clock)
    entry = audit.record("kill_switch_engaged", reason="daily loss", actor="ops", loss_pct=Decimal("-2.5"))
    assert entry == {
        "time": START.isoformat(),
        "event": "kill_switch_engaged",
        "reason": "daily loss",
        "actor": "ops",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "loss_pct": "-2.5",
    }


def test_entries_are_appended_as_json_lines(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, clock=clock)
    audit.record("engaged", reason="drawdown")
    clock.advance(60)
    audit.record("reset", actor="alice", at=clock.now())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert (first["event"], first["reason"], first["actor"]) == ("engaged", "drawdown", None)
    assert (second["event"], second["actor"], second["at"]) == ("reset", "alice", "2026-03-02T15:01:00+00:00")


def test_appending_keeps_existing_entries(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, clock=clock).record("engaged")
    AuditLog(path, clock=clock).record("reset")
    assert [entry["event"] for entry in AuditLog.read(path)] == ["engaged", "reset"]


def test_each_entry_is_fsynced(tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    synced: List[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    audit = AuditLog(path, clock=clock)
    audit.record("engaged")
    monkeypatch.setattr(os, "fsync", spy)
    audit.record("reset")
    audit.record("engaged")
    assert len(synced) == 2  # the file exists now: one fsync per entry, no directory sync


def test_first_entry_also_syncs_the_directory(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: List[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    AuditLog(tmp_path / "audit.jsonl", clock=clock).record("engaged")
    assert len(synced) == 2


def test_read_round_trips_records(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path), clock=clock)
    written = [audit.record("engaged", reason="loss", limit=Decimal("2.0")), audit.record("reset", actor="bob")]
    assert AuditLog.read(path) == written
    assert AuditLog.read(str(path)) == written


def test_read_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert AuditLog.read(tmp_path / "nothing.jsonl") == []


def test_read_of_a_corrupt_line_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event": "engaged"}\n{"event": "res', encoding="utf-8")
    with pytest.raises(StateStoreError, match=rf"{path} line 2 is not JSON"):
        AuditLog.read(path)


def test_record_logs_one_json_line_at_warning(clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    entry = AuditLog(None, clock=clock).record("engaged", reason="drawdown")
    records = [r for r in caplog.records if r.name == "circuit_breakers.audit"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "\n" not in message
    assert json.loads(message) == entry


def test_logger_name_is_configurable(clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    AuditLog(None, clock=clock, logger_name="desk.audit").record("engaged")
    assert [r.name for r in caplog.records] == ["desk.audit"]


def test_no_path_writes_no_file(tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    audit = AuditLog(None, clock=clock)
    audit.record("engaged")
    assert audit.path is None
    assert list(tmp_path.iterdir()) == []


def test_unwritable_path_raises_state_store_error(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    path = blocker / "audit.jsonl"
    audit = AuditLog(path, clock=clock)
    with pytest.raises(StateStoreError, match=f"cannot write audit log {path}") as info:
        audit.record("engaged", reason="loss")
    assert isinstance(info.value.__cause__, OSError)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert str(path) in failures[0].getMessage()
    assert any(r.levelno == logging.WARNING and '"engaged"' in r.getMessage() for r in caplog.records)


def test_non_serialisable_detail_is_rejected(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "audit.jsonl"
    with pytest.raises(ConfigTypeError, match="not JSON-serialisable"):
        AuditLog(path, clock=clock).record("engaged", thing=object())
    assert not path.exists()


@pytest.mark.parametrize("name", ["time", "pid", "host"])
def test_reserved_detail_names_are_rejected(clock: ManualClock, name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} are reserved"):
        AuditLog(None, clock=clock).record("engaged", **{name: 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [123, b"audit.jsonl", ""])
def test_bad_paths_are_rejected(clock: ManualClock, path: object) -> None:
    with pytest.raises((ConfigError, ConfigTypeError)):
        AuditLog(path, clock=clock)  # type: ignore[arg-type]


def test_concurrent_records_never_interleave(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, clock=clock)
    threads_count, per_thread = 8, 25
    barrier = threading.Barrier(threads_count)

    def write(worker: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            audit.record("tick", worker=worker, n=n, padding="x" * 512)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = AuditLog.read(path)
    assert len(entries) == threads_count * per_thread
    for worker in range(threads_count):
        assert [e["n"] for e in entries if e["worker"] == worker] == list(range(per_thread))
