"""The local state file (SQLite at ``state_path``) under real conditions: a full disk, owners in several
processes, a symlinked path, and state files of the wrong shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List

import pytest

from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.stores import SqliteStore
from circuit_breakers.trading.audit import AuditLog
from circuit_breakers.trading.latches import Latch

from ..stores.test_sqlite import fill, small_disk
from .conftest import RESET_KEY, WRONG_KEY, FakeProvider
from .safety_owners import ROOT, WAIT, Kills, peek

__all__ = ["small_disk"]  # a fixture

D = Decimal
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def owners(clock: ManualClock) -> Iterator[List[TradingCircuitBreakers]]:
    """Owners made by the test, closed at teardown."""
    made: List[TradingCircuitBreakers] = []
    yield made
    for breakers in made:
        assert breakers.stop_monitoring(timeout=WAIT)
        breakers.close()


def own(owners: List[TradingCircuitBreakers], breakers: TradingCircuitBreakers) -> TradingCircuitBreakers:
    owners.append(breakers)
    return breakers


def audit_events(path: Path) -> List[str]:
    return [entry["event"] for entry in AuditLog.read(f"{path}.audit.jsonl")]


# --- a real full disk ---------------------------------------------------------------------------------------


def test_a_full_disk_still_takes_the_kill_switch_and_the_peak_and_the_audit_trail_catches_up(
    small_disk: Path, clock: ManualClock, owners: List[TradingCircuitBreakers]
) -> None:
    path = small_disk / "desk.db"
    trail = Path(f"{path}.audit.jsonl")
    provider = FakeProvider(total_value=D(100))
    first = own(owners, TradingCircuitBreakers(provider, reset_key=RESET_KEY, state_path=path, clock=clock))
    kills = Kills()
    first.register_kill_handler(kills)
    first.check_now()  # the file, its reserve, the key's hash, the epoch and a first mark
    fill(small_disk)
    for value in (105, 110):  # a rising mark, every step written from the reserve
        provider.total_value = D(value)
        first.check_now()
        assert first.can_trade(), first.get_blocking_reasons()
    assert SqliteStore(path).read()["values"]["high_water_mark"] == "110"
    provider.total_value = D(99)  # -10 % from the peak
    first.check_now()
    assert first.kill_switch_active
    assert kills.reasons == ["drawdown -10.00% <= limit -10.00%"]
    reasons = first.get_blocking_reasons()
    assert [reason.split(":")[0] for reason in reasons] == ["max_drawdown", "audit"], reasons  # no "state": it landed
    assert "No space left on device" in reasons[1]
    assert "max_drawdown" in SqliteStore(path).read()["latches"]
    assert first.reset_kill_switch(WRONG_KEY) is False  # counted in the state file; its audit entry waits too
    restarted = own(
        owners,
        TradingCircuitBreakers(FakeProvider(total_value=D(99)), reset_key=RESET_KEY, state_path=path, clock=clock),
    )
    restarted.check_now()
    assert restarted.kill_switch_active
    assert restarted.get_status().details["max_drawdown"]["own_drawdown_pct"] == D(-10)
    assert restarted.get_status().details["max_drawdown"]["reset"]["failed_attempts"] == 1
    seen = peek(path, value=D(99), check=True)  # a real process, on the full disk
    assert seen["kill_switch"] is True
    assert D(seen["own_drawdown"]) == D(-10)
    assert D(seen["high_water"]) == D(110)
    first.check_now()
    assert [reason.split(":")[0] for reason in first.get_blocking_reasons()] == ["max_drawdown", "audit"]
    assert not trail.exists() or AuditLog.read(trail) == []  # nothing half-written
    (small_disk / "filler").unlink()
    first.check_now()
    assert [reason.split(":")[0] for reason in first.get_blocking_reasons()] == ["max_drawdown"]
    entries = AuditLog.read(trail)
    assert [entry["event"] for entry in entries] == ["kill_switch_engaged", "kill_switch_reset_refused"]
    assert entries[0]["reason"] == "drawdown -10.00% <= limit -10.00%"
    assert first.reset_kill_switch(RESET_KEY) is True
    assert audit_events(path)[-1] == "kill_switch_reset"


# --- owners in several processes ------------------------------------------------------------------------------

RISING = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime
    from decimal import Decimal
    from circuit_breakers import ManualClock, TradingCircuitBreakers

    class Provider:
        value = Decimal(1000000)
        def get_total_value(self): return self.value
        def get_daily_pnl(self): return Decimal(0)
        def get_daily_pnl_pct(self): return Decimal(0)
        def get_max_drawdown(self): return Decimal(0)
        def get_position_concentration(self, symbol): return Decimal(0)

    provider = Provider()
    kills = []
    breakers = TradingCircuitBreakers(provider, reset_key=sys.argv[2], state_path=sys.argv[1],
                                      clock=ManualClock(start=datetime.fromisoformat(sys.argv[3])))
    breakers.register_kill_handler(kills.append)
    seen_at = None
    for step in range(1, 5001):
        provider.value += 1000  # a new peak at every reading, each written
        breakers.check_now()
        if step == 10:
            print("rising", flush=True)
        if seen_at is None and breakers.kill_switch_active:
            seen_at = step
        if seen_at is not None and step == seen_at + 20:  # and it goes on writing its peaks
            break
    print(json.dumps({"kill_switch": breakers.kill_switch_active, "kills": kills, "last": str(provider.value)}))
    """
)


def test_rising_marks_in_one_process_never_erase_a_kill_switch_engaged_in_another(
    tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers]
) -> None:
    path = tmp_path / "desk.db"
    first = own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock))
    first.check_now()
    with subprocess.Popen(
        [sys.executable, "-c", RISING, str(path), RESET_KEY, clock.now().isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=ENVIRONMENT,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "rising"
        first.engage_kill_switch("risk desk: stop", actor="alice")  # while the other process writes its peaks
        for _ in range(20):
            first.check_now()
            assert first.kill_switch_active
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["kill_switch"] is True
    assert seen["kills"] == ["risk desk: stop"]
    records = SqliteStore(path).read()
    assert Latch.from_text("max_drawdown", records["latches"]["max_drawdown"]).actor == "alice"
    assert records["values"]["high_water_mark"] == seen["last"]  # and none of its peaks was lost either
    assert audit_events(path) == ["kill_switch_engaged", "kill_switch_heard"]  # the other process halted too


MONITORED = textwrap.dedent(
    """
    import json, os, sys
    from datetime import datetime
    from decimal import Decimal
    from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers

    path, key, start, marker = sys.argv[1:5]

    class Provider:
        readings_after_marker = 0
        def get_total_value(self):
            if os.path.exists(marker):
                self.readings_after_marker += 1
            return Decimal(1000000)
        def get_daily_pnl(self): return Decimal(0)
        def get_daily_pnl_pct(self): return Decimal(0)
        def get_max_drawdown(self): return Decimal(0)
        def get_position_concentration(self, symbol): return Decimal(0)

    provider = Provider()
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(check_interval_seconds=0.05), reset_key=key,
                                      state_path=path, clock=ManualClock(start=datetime.fromisoformat(start)))
    breakers.register_kill_handler(
        lambda reason: print(json.dumps({"killed": reason, "readings": provider.readings_after_marker}), flush=True)
    )
    breakers.start_monitoring()
    print(json.dumps({"ready": breakers.can_trade()}), flush=True)
    sys.stdin.readline()
    print(json.dumps({"kill_switch": breakers.kill_switch_active, "can_trade": breakers.can_trade()}), flush=True)
    breakers.close()
    """
)

ENGAGE = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from circuit_breakers import TradingCircuitBreakers

    class Provider:
        def get_total_value(self): return Decimal(1000000)
        def get_daily_pnl(self): return Decimal(0)
        def get_daily_pnl_pct(self): return Decimal(0)
        def get_max_drawdown(self): return Decimal(0)
        def get_position_concentration(self, symbol): return Decimal(0)

    with TradingCircuitBreakers(Provider(), state_path=sys.argv[1]) as breakers:
        breakers.engage_kill_switch(sys.argv[2], actor="third process")
        assert not breakers.get_status().details["state"]["pending_writes"]
    """
)


def read_json(stream: IO[str]) -> Dict[str, Any]:
    line = stream.readline()
    assert line, "the child process ended early"
    result: Dict[str, Any] = json.loads(line)
    return result


def test_a_third_process_engaging_through_the_file_halts_two_running_owners_within_one_poll(
    tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers]
) -> None:
    path, marker = tmp_path / "desk.db", tmp_path / "engaged"
    provider = FakeProvider()
    first = own(
        owners,
        TradingCircuitBreakers(
            provider,
            TradingBreakerConfig(check_interval_seconds=0.05),
            reset_key=RESET_KEY,
            state_path=path,
            clock=clock,
        ),
    )
    readings_at_kill: List[int] = []
    killed = threading.Event()

    def on_kill(reason: str) -> None:
        readings_at_kill.append(provider.calls)
        killed.set()

    first.register_kill_handler(on_kill)
    first.start_monitoring()
    with subprocess.Popen(
        [sys.executable, "-c", MONITORED, str(path), RESET_KEY, clock.now().isoformat(), str(marker)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=ENVIRONMENT,
    ) as second:
        try:
            assert second.stdin is not None
            assert second.stdout is not None
            assert read_json(second.stdout) == {"ready": True}
            assert first.can_trade()
            third = subprocess.run(
                [sys.executable, "-c", ENGAGE, str(path), "risk desk: flatten"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
                env=ENVIRONMENT,
                check=False,
            )
            assert third.returncode == 0, third.stderr
            readings_at_engage = provider.calls  # the engage is in the file: every poll from now on sees it
            marker.touch()
            assert killed.wait(WAIT)
            assert readings_at_kill[0] - readings_at_engage <= 1  # at most one reading began before it was seen
            assert not first.can_trade()
            assert first.kill_switch_active
            assert first.get_blocking_reasons()[0] == "max_drawdown: kill switch engaged: risk desk: flatten"
            killed_there = read_json(second.stdout)
            assert killed_there["killed"] == "risk desk: flatten"
            assert killed_there["readings"] <= 1
            second.stdin.write("report\n")
            second.stdin.flush()
            assert read_json(second.stdout) == {"kill_switch": True, "can_trade": False}
            assert second.wait(WAIT) == 0
        finally:
            if second.poll() is None:
                second.kill()
    assert audit_events(path) == ["kill_switch_engaged", "kill_switch_heard", "kill_switch_heard"]


def test_a_symlinked_state_path_writes_through_to_its_target(
    tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers]
) -> None:
    target = tmp_path / "real" / "desk.db"
    target.parent.mkdir()
    link = tmp_path / "desk.db"
    link.symlink_to(target)
    provider = FakeProvider(total_value=D(1_000_000))
    first = own(owners, TradingCircuitBreakers(provider, reset_key=RESET_KEY, state_path=link, clock=clock))
    first.check_now()
    first.engage_kill_switch("through the link")
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    records = SqliteStore(target).read()
    assert records["values"]["high_water_mark"] == "1000000"
    assert Latch.from_text("max_drawdown", records["latches"]["max_drawdown"]).reason == "through the link"
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith("desk.db")) == [
        "desk.db",
        "desk.db.audit.jsonl",
    ]  # the database and its journal live beside the target
    assert (target.parent / "desk.db-journal").exists()
    by_target = peek(target)
    assert by_target["kill_switch"] is True
    assert by_target["high_water"] == "1000000"
    by_link = own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=link, clock=clock))
    assert by_link.kill_switch_active
    assert by_link.reset_kill_switch(RESET_KEY) is True
    first.check_now()
    assert first.can_trade()
    assert link.is_symlink()
    assert "max_drawdown" not in SqliteStore(target).read()["latches"]


# --- wrong-shaped local state -----------------------------------------------------------------------------------

OUT_OF_RANGE = {"reason": "old", "since": "0001-01-01T00:00:00+00:00", "trading_day": "2026-01-05"}
GOOD = {"reason": "old", "since": "2026-01-05T14:30:00+00:00", "trading_day": "2026-01-05"}


def _record(table: str, key: str, text: str) -> Any:
    return pytest.param(table, key, text, id=f"{key}={text[:40]}")


WRONG_RECORDS = [
    _record("latches", "max_drawdown", '"engaged"'),
    _record("latches", "max_drawdown", "[]"),
    _record("latches", "max_drawdown", json.dumps([GOOD])),
    _record("latches", "max_drawdown", json.dumps(OUT_OF_RANGE)),
    _record("latches", "max_drawdown", json.dumps({**GOOD, "trading_day": "9999-12-31"})),
    _record("latches", "max_drawdown", json.dumps({**GOOD, "since": "9999-12-31T23:59:59-23:59"})),
    _record("latches", "max_drawdown", json.dumps({**GOOD, "since": "2026-01-05T14:30:00"})),
    _record("latches", "max_drawdown", json.dumps({**GOOD, "reason": ["a", "list"]})),
    _record("latches", "max_drawdown", json.dumps({**GOOD, "trading_day": 20260105})),
    _record("values", "high_water_mark", "[1000000]"),
    _record("values", "high_water_mark", '{"value": 1000000}'),
    _record("values", "high_water_mark", '"1000000"'),
    _record("values", "high_water_mark", "Infinity"),
    _record("values", "high_water_mark", "1e999999999"),
    _record("values", "drawdown_baseline_pct", "[-3]"),
    _record("values", "reset_key", "[1]"),
    _record("values", "reset_key", '"hash"'),
    _record("values", "reset_lockout", "[2, null]"),
    _record("values", "reset_lockout", json.dumps({"failures": -7, "locked_until": None})),
    _record("values", "reset_lockout", json.dumps({"failures": 1, "locked_until": "2026-01-06T00:00:00"})),
    _record("values", "kill_switch_resets", "[1]"),
]


@pytest.mark.parametrize(("table", "key", "text"), WRONG_RECORDS)
def test_a_wrong_shaped_record_engages_the_kill_switch_audited_and_never_raises(
    *, tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers], table: str, key: str, text: str
) -> None:
    path = tmp_path / "desk.db"
    own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock)).check_now()
    SqliteStore(path).put(table, key, text)
    restarted = own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock))
    assert restarted.kill_switch_active
    assert not restarted.can_trade()
    assert f"{table}/{key}" in restarted.get_blocking_reasons()[0]
    assert "kill_switch_engaged" in audit_events(path)
    restarted.get_status()
    restarted.check_now()
    assert restarted.kill_switch_active
    restarted.record_cash_flow(D(1000))
    assert restarted.reset_kill_switch(RESET_KEY) is True


@pytest.mark.parametrize(
    "text",
    ['"halted"', "[]", json.dumps(OUT_OF_RANGE), json.dumps({**GOOD, "trading_day": "0001-01-01"})],
    ids=["a-string", "a-list", "since-out-of-range", "day-out-of-range"],
)
def test_a_wrong_shaped_day_halt_record_holds_the_day_audited_and_never_raises(
    tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers], text: str
) -> None:
    path = tmp_path / "desk.db"
    own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock)).close()
    SqliteStore(path).put("latches", "volatility", text)
    restarted = own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock))
    (reason,) = restarted.get_blocking_reasons()
    assert reason.startswith("volatility: unreadable record in ")
    assert "latches/volatility" in reason
    assert audit_events(path) == ["state_unreadable"]
    restarted.check_now()
    assert not restarted.can_trade()
    assert restarted.reset_breaker("volatility") is True
    assert restarted.can_trade()


def _document(document: object) -> Any:
    text = json.dumps(document)
    return pytest.param(text, id=text[:50])


OLD_DOCUMENTS = [
    _document({"version": 1, "latches": "nope"}),
    _document({"version": 1, "latches": [1, 2]}),
    _document({"version": 1, "latches": {"max_drawdown": "engaged"}}),
    _document({"version": 1, "latches": {"max_drawdown": []}}),
    _document({"version": 1, "latches": {"max_drawdown": OUT_OF_RANGE}}),
    _document({"version": 1, "latches": {"max_drawdown": {**GOOD, "trading_day": "99999-01-01"}}}),
    _document({"version": 1, "values": "x"}),
    _document({"version": 1, "values": {"high_water_mark": 1000000}}),
    _document({"version": 1, "values": {"high_water_mark": "lots"}}),
    _document([{"version": 1}]),
    _document({"version": 1, "latches": ""}),
    _document({"version": 1, "latches": []}),
    _document({"version": 1, "latches": ["ab"]}),
    _document({"version": 1, "values": []}),
    _document({"version": True}),
]


@pytest.mark.parametrize("text", OLD_DOCUMENTS)
def test_a_wrong_shaped_old_json_state_file_engages_the_kill_switch_audited_and_never_raises(
    tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers], text: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text, encoding="utf-8")
    breakers = own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock))
    assert breakers.kill_switch_active
    assert not breakers.can_trade()
    assert str(path) in breakers.get_blocking_reasons()[0]
    assert "kill_switch_engaged" in audit_events(path)
    assert breakers.get_status().kill_switch_active
    assert breakers.reset_kill_switch(RESET_KEY) is True  # before any reading (see the test below)
    breakers.check_now()
    assert breakers.can_trade(), breakers.get_blocking_reasons()
    assert not breakers.get_status().details["state"]["error"]


def test_a_keyed_reset_starts_an_unreadable_state_file_afresh_after_a_reading(
    tmp_path: Path, clock: ManualClock, owners: List[TradingCircuitBreakers]
) -> None:
    path = tmp_path / "desk.db"
    path.write_bytes(b"not a database at all")
    breakers = own(owners, TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, state_path=path, clock=clock))
    breakers.check_now()  # a reading, as the monitor takes one every poll
    assert breakers.kill_switch_active
    assert breakers.reset_kill_switch(RESET_KEY) is True
    breakers.check_now()
    assert breakers.can_trade(), breakers.get_blocking_reasons()
