"""Durable state: the kill switch across restarts (and a SIGKILL), corrupt files, the audit trail, the key."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

from circuit_breakers import KillSwitchError, StateStoreError, TradingCircuitBreakers
from circuit_breakers.stores import SqliteStore
from circuit_breakers.trading.audit import AuditLog

from .conftest import RESET_KEY, WRONG_KEY, FakeProvider, MakeBreakers

D = Decimal


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "breakers.json"


def audit_events(state_path: Path) -> list[str]:
    return [entry["event"] for entry in AuditLog.read(f"{state_path}.audit.jsonl")]


def engage(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.total_value, provider.max_drawdown = D(1_000_000), D(0)
    breakers.check_now()
    provider.total_value, provider.max_drawdown = D(880_000), D(-12)
    breakers.check_now()
    assert breakers.kill_switch_active


# --- same process ---------------------------------------------------------------------------------


def test_engaged_kill_switch_survives_a_restart(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    first = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    engage(first, provider)
    second = make_breakers(FakeProvider(), reset_key=RESET_KEY, state_path=state_path)
    assert second.kill_switch_active
    assert not second.can_trade()
    assert second.get_blocking_reasons()[0].startswith("max_drawdown: kill switch engaged:")


def test_restored_kill_switch_is_released_by_the_key(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    engage(make_breakers(reset_key=RESET_KEY, state_path=state_path), provider)
    second = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert second.reset_kill_switch(RESET_KEY)
    third = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert not third.kill_switch_active
    assert third.can_trade()


def test_reset_right_after_a_restart_re_bases_the_drawdown(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    engage(make_breakers(reset_key=RESET_KEY, state_path=state_path), provider)
    second = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert second.reset_kill_switch(RESET_KEY)
    second.check_now()  # the same readings that engaged it: the desk is still under water
    assert not second.kill_switch_active


def test_reset_after_a_restart_and_a_reading_re_bases_the_drawdown(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    engage(make_breakers(reset_key=RESET_KEY, state_path=state_path), provider)
    second = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    second.check_now()
    assert second.reset_kill_switch(RESET_KEY)
    second.check_now()
    assert not second.kill_switch_active


def test_high_water_mark_survives_a_restart(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    first = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    provider.total_value = D(1_000_000)
    first.check_now()
    # The provider restarts and forgets its peak; so does the process.
    forgetful = FakeProvider(total_value=D(880_000), max_drawdown=D(0))
    second = make_breakers(forgetful, reset_key=RESET_KEY, state_path=state_path)
    second.check_now()
    assert second.kill_switch_active


def test_day_halt_survives_a_restart_on_the_same_day(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    first = make_breakers(state_path=state_path)
    provider.daily_pnl_pct = D(-3)
    first.check_now()
    second = make_breakers(FakeProvider(), state_path=state_path)
    assert not second.can_trade()
    assert second.get_blocking_reasons() == ["daily_loss: P&L -3.00% <= limit -2.00%"]


def test_restored_day_halt_does_not_auto_recover_without_a_reading(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path, clock: Any
) -> None:
    provider.daily_pnl_pct = D(-3)
    make_breakers(state_path=state_path, auto_recovery=True).check_now()
    restarted = make_breakers(state_path=state_path, auto_recovery=True)
    clock.advance(300)  # the cooldown; the P&L is still -3 % but nothing has read it
    assert not restarted.can_trade()


def test_restored_day_halt_auto_recovers_once_a_reading_clears_it(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path, clock: Any
) -> None:
    provider.daily_pnl_pct = D(-3)
    make_breakers(state_path=state_path, auto_recovery=True).check_now()
    restarted = make_breakers(state_path=state_path, auto_recovery=True)
    provider.daily_pnl_pct = D(-1)
    restarted.check_now()
    assert not restarted.can_trade()
    clock.advance(300)
    assert restarted.can_trade()


def test_state_file_is_created_at_construction(make_breakers: MakeBreakers, state_path: Path) -> None:
    make_breakers(state_path=state_path)
    assert SqliteStore(state_path).read()["values"]["epoch"]


# --- a real crash ---------------------------------------------------------------------------------


CHILD = textwrap.dedent(
    """
    import sys, threading
    from decimal import Decimal
    from circuit_breakers import TradingCircuitBreakers

    class Provider:
        value, drawdown = Decimal(1000000), Decimal(0)
        def get_total_value(self): return self.value
        def get_daily_pnl(self): return Decimal(0)
        def get_daily_pnl_pct(self): return Decimal(0)
        def get_max_drawdown(self): return self.drawdown
        def get_position_concentration(self, symbol): return Decimal(0)

    provider = Provider()
    breakers = TradingCircuitBreakers(provider, reset_key=sys.argv[2], state_path=sys.argv[1])
    breakers.check_now()
    provider.value, provider.drawdown = Decimal(850000), Decimal(-15)
    breakers.check_now()
    print("ENGAGED" if breakers.kill_switch_active else "NOT ENGAGED", flush=True)
    threading.Event().wait()  # stay alive until killed
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_switch_survives_sigkill_of_another_process(make_breakers: MakeBreakers, state_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state_path), RESET_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as child:
        watchdog = threading.Timer(30, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ENGAGED"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            watchdog.cancel()
    breakers = make_breakers(FakeProvider(), reset_key=RESET_KEY, state_path=state_path)
    assert breakers.kill_switch_active
    assert not breakers.can_trade()
    assert audit_events(state_path) == ["kill_switch_engaged", "kill_switch_heard"]  # the restart came up halted


# --- unreadable and unwritable state --------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ['{"version": 1, "max_drawdown": {"hal', "", "[1, 2]", "not json at all", '{"version": 99}'],
    ids=["truncated", "empty", "not-an-object", "garbage", "other-version"],
)
def test_unreadable_state_engages_the_kill_switch(make_breakers: MakeBreakers, state_path: Path, content: str) -> None:
    state_path.write_text(content, encoding="utf-8")
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert breakers.kill_switch_active
    assert not breakers.can_trade()
    reason = breakers.get_blocking_reasons()[0]
    assert reason.startswith("max_drawdown:")
    assert "state" in reason


def test_truncated_real_state_file_engages_the_kill_switch(make_breakers: MakeBreakers, state_path: Path) -> None:
    make_breakers(state_path=state_path).close()
    data = state_path.read_bytes()
    state_path.write_bytes(data[: len(data) // 2])
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert breakers.kill_switch_active
    assert "state" in breakers.get_blocking_reasons()[0]


def test_reset_after_corrupt_state_rewrites_a_good_file(make_breakers: MakeBreakers, state_path: Path) -> None:
    state_path.write_text('{"version": 1, "max_dra', encoding="utf-8")
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert breakers.reset_kill_switch(RESET_KEY) is True
    assert not breakers.kill_switch_active
    assert breakers.can_trade()
    assert SqliteStore(state_path).read()["values"]["epoch"]  # readable again
    restarted = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    assert not restarted.kill_switch_active
    assert restarted.can_trade()


def damage(path: Path, table: str, key: str, change: Callable[[str], str]) -> None:
    """Rewrite one record of the state file behind the library's back, as a hostile editor would."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        (text,) = db.execute("SELECT value FROM records WHERE tbl = ? AND key = ?", (table, key)).fetchone()
        db.execute("UPDATE records SET value = ? WHERE tbl = ? AND key = ?", (change(text), table, key))


def edit_json(field: str, value: Any) -> Callable[[str], str]:
    def change(text: str) -> str:
        record = json.loads(text)
        if value is DROP:
            del record[field]
        else:
            record[field] = value
        return json.dumps(record)

    return change


DROP = object()


@pytest.mark.parametrize(
    ("table", "key", "change"),
    [
        ("latches", "max_drawdown", edit_json("trading_day", DROP)),
        ("latches", "max_drawdown", edit_json("trading_day", "yesterday")),
        ("latches", "max_drawdown", edit_json("trading_day", "9999-12-31")),
        ("latches", "max_drawdown", edit_json("since", 20260105)),
        ("latches", "max_drawdown", edit_json("reason", DROP)),
        ("latches", "max_drawdown", lambda text: '"engaged"'),
        ("latches", "max_drawdown", lambda text: "[]"),
        ("latches", "max_drawdown", lambda text: "\x00\xff garbage"),
        ("values", "high_water_mark", lambda text: "a lot"),
        ("values", "high_water_mark", lambda text: "NaN"),
    ],
    ids=[
        "no-trading-day",
        "bad-trading-day",
        "far-trading-day",
        "bad-since",
        "no-reason",
        "entry-not-an-object",
        "entry-a-list",
        "entry-garbage",
        "bad-high-water-mark",
        "nan-high-water-mark",
    ],
)
def test_engaged_state_with_bad_contents_stays_engaged(
    *,
    make_breakers: MakeBreakers,
    provider: FakeProvider,
    state_path: Path,
    table: str,
    key: str,
    change: Callable[[str], str],
) -> None:
    engage(make_breakers(reset_key=RESET_KEY, state_path=state_path), provider)
    damage(state_path, table, key, change)
    restarted = make_breakers(FakeProvider(), reset_key=RESET_KEY, state_path=state_path)
    assert restarted.kill_switch_active
    assert not restarted.can_trade()
    unreadable = [entry for entry in AuditLog.read(f"{state_path}.audit.jsonl") if entry["event"] == "state_unreadable"]
    assert unreadable
    assert f"{table}/{key}" in unreadable[-1]["reason"]  # names the store's record that could not be read
    restarted.check_now()  # the monitor's poll survives it too
    assert restarted.kill_switch_active
    assert restarted.reset_kill_switch(RESET_KEY)  # the key releases it, and good records replace the garbage
    assert restarted.can_trade()
    again = make_breakers(FakeProvider(), reset_key=RESET_KEY, state_path=state_path)
    assert again.can_trade(), again.get_blocking_reasons()


def test_corrupt_state_without_a_key_cannot_be_reset(make_breakers: MakeBreakers, state_path: Path) -> None:
    state_path.write_text("{", encoding="utf-8")
    breakers = make_breakers(state_path=state_path)
    assert breakers.kill_switch_active
    breakers.reset_all()
    assert breakers.kill_switch_active


def test_state_path_under_a_regular_file_is_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StateStoreError, match="not-a-directory"):
        TradingCircuitBreakers(FakeProvider(), state_path=blocker / "state.json")


def test_state_path_that_is_a_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError):
        TradingCircuitBreakers(FakeProvider(), state_path=tmp_path)


# --- the audit trail ------------------------------------------------------------------------------


def test_audit_trail_records_engage_refusal_and_reset(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path
) -> None:
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    engage(breakers, provider)
    assert breakers.reset_kill_switch(WRONG_KEY, actor="mallory") is False
    assert breakers.reset_kill_switch(RESET_KEY, actor="alice") is True
    entries = AuditLog.read(f"{state_path}.audit.jsonl")
    assert [entry["event"] for entry in entries] == [
        "kill_switch_engaged",
        "kill_switch_reset_refused",
        "kill_switch_reset",
    ]
    assert "drawdown" in entries[0]["reason"]
    assert [entry["actor"] for entry in entries[1:]] == ["mallory", "alice"]
    assert all(entry["pid"] == os.getpid() for entry in entries)


def test_audit_trail_records_a_manual_engage(make_breakers: MakeBreakers, state_path: Path) -> None:
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    breakers.engage_kill_switch("risk officer pulled the plug", actor="bob")
    (entry,) = AuditLog.read(f"{state_path}.audit.jsonl")
    assert (entry["event"], entry["reason"], entry["actor"]) == (
        "kill_switch_engaged",
        "risk officer pulled the plug",
        "bob",
    )


def test_audit_trail_records_a_corrupt_state_engage(make_breakers: MakeBreakers, state_path: Path) -> None:
    state_path.write_text("{", encoding="utf-8")
    make_breakers(reset_key=RESET_KEY, state_path=state_path)
    (entry,) = AuditLog.read(f"{state_path}.audit.jsonl")
    assert entry["event"] == "kill_switch_engaged"
    assert "state" in entry["reason"]


def test_reset_key_never_leaks(
    make_breakers: MakeBreakers, provider: FakeProvider, state_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path)
    engage(breakers, provider)
    breakers.reset_kill_switch(WRONG_KEY)
    breakers.reset_kill_switch(RESET_KEY)
    engage(breakers, provider)
    with pytest.raises(KillSwitchError):
        breakers.reset_breaker("max_drawdown")
    restarted = make_breakers(reset_key=RESET_KEY, state_path=state_path)

    secrets = (RESET_KEY, RESET_KEY.encode().hex(), WRONG_KEY)
    places = {
        "state file": state_path.read_bytes().decode("latin-1"),
        "audit file": Path(f"{state_path}.audit.jsonl").read_text(encoding="utf-8"),
        "repr": repr(breakers) + repr(restarted),
        "status": json.dumps(breakers.get_status().to_dict()) + json.dumps(restarted.get_status().to_dict()),
        "config": repr(breakers.config),
    }
    for record in caplog.records:
        places[f"log {record.name}"] = places.get(f"log {record.name}", "") + "\n".join(
            [record.getMessage(), repr(record.args), record.exc_text or ""]
        )
    assert len(audit_events(state_path)) >= 4
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into the {where}"
