"""Faults: slow and raising callbacks, a misbehaving or hanging provider under the monitor thread,
a monitor that dies without telling anyone, and state or audit files that cannot be written.

Already covered elsewhere (not repeated here): raising breaker callbacks
(tests/test_breaker_contract_api.py::test_raising_callback_is_logged_and_isolated,
::test_raising_state_change_callback_does_not_stop_recovery), a raising trading trip callback
(tests/trading/test_breakers.py::test_raising_callback_is_logged_and_does_not_stop_the_halt),
garbage and raising readings through check_now (tests/trading/test_monitor.py), a dying monitor
that reports its death (test_monitor.py::test_monitor_thread_dying_blocks_trading), SIGKILL and
corrupt state files (tests/trading/test_restart.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    ManualClock,
    StateStoreError,
    TradingCircuitBreakers,
)
from circuit_breakers.stores import SqliteStore
from circuit_breakers.trading.audit import AuditLog

from ..trading.conftest import RESET_KEY, FakeProvider, Recorder
from .conftest import WAIT, MakeBreakers, join_all

D = Decimal

thread_dies = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class Boom(RuntimeError):
    pass


def _raise() -> None:
    raise Boom("down")


# --- slow and raising callbacks ---------------------------------------------------------------------


def test_slow_trip_callback_holds_only_its_own_thread(clock: ManualClock) -> None:
    breaker = CircuitBreaker("slow", config=CircuitBreakerConfig(failure_threshold=1, success_threshold=1), clock=clock)
    entered, release = threading.Event(), threading.Event()
    later: List[str] = []

    def slow(name: str, kind: Any) -> None:
        entered.set()
        assert release.wait(WAIT), "the slow callback was never released"

    breaker.register_trip_callback(slow)
    breaker.register_trip_callback(lambda name, kind: later.append(name))

    def trip() -> None:
        with pytest.raises(Boom):
            breaker.call(_raise)

    tripper = threading.Thread(target=trip, name="tripper")
    tripper.start()
    try:
        assert entered.wait(WAIT)
        # The tripping thread is stuck in its callback; everyone else carries on.
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenException):
            breaker.call(lambda: "ok")
        assert breaker.get_status()["state"] == "open"
        clock.advance(60)
        assert breaker.call(lambda: "trial") == "trial"  # the half-open trial closes it
        assert breaker.state is CircuitState.CLOSED
        assert later == []  # the next callback runs after the slow one, on the same thread
    finally:
        release.set()
        join_all([tripper])
    assert later == ["slow"]


@pytest.mark.parametrize("kind", ["trip", "recovery", "state_change"])
def test_every_raising_breaker_callback_is_isolated(
    clock: ManualClock, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(
        "raising", config=CircuitBreakerConfig(failure_threshold=1, success_threshold=1), clock=clock
    )
    register = getattr(breaker, f"register_{kind}_callback")
    seen: List[Any] = []
    register(lambda *args: 1 / 0)
    register(lambda *args: seen.append(args[1:]))
    with caplog.at_level(logging.ERROR, logger="circuit_breakers"):
        with pytest.raises(Boom):
            breaker.call(_raise)
        clock.advance(60)
        assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert seen, "the callback after the raising one never ran"
    assert all(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)
    assert len(caplog.records) == len(seen)


def test_raising_trading_callbacks_of_every_kind_are_isolated(
    make_breakers: MakeBreakers, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    breakers = make_breakers(reset_key=RESET_KEY, auto_recovery=True, cooldown_seconds=0)
    calls = Recorder()

    def explode(*args: Any) -> None:
        raise RuntimeError("pager down")

    for register in ("register_trip_callback", "register_warning_callback", "register_recovery_callback"):
        getattr(breakers, register)(explode)
        getattr(breakers, register)(calls)
    breakers.register_kill_handler(explode)
    breakers.register_kill_handler(calls)
    with caplog.at_level(logging.ERROR):
        provider.daily_pnl_pct = D("-1.6")  # warning
        breakers.check_now()
        provider.daily_pnl_pct = D(-3)  # trip
        breakers.check_now()
        provider.daily_pnl_pct = D(0)  # clears; auto recovery with no cooldown
        breakers.check_now()
        breakers.engage_kill_switch("by hand")
    assert breakers.kill_switch_active
    assert not breakers.can_trade()
    assert calls.calls == [
        ("daily_loss", calls.calls[0][1]),
        ("daily_loss", calls.calls[1][1]),
        ("daily_loss",),
        ("max_drawdown", "by hand"),
        ("by hand",),
    ]
    outcomes = breakers.get_status().details["max_drawdown"]["kill_handlers"]
    assert [outcome["ok"] for outcome in outcomes] == [False, True]
    assert len([record for record in caplog.records if record.exc_info]) == 5


def test_slow_kill_handler_does_not_block_other_threads(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(reset_key=RESET_KEY)
    entered, release = threading.Event(), threading.Event()

    def cancel_orders_slowly(reason: str) -> None:
        entered.set()
        assert release.wait(WAIT), "never released"

    breakers.register_kill_handler(cancel_orders_slowly)
    engager = threading.Thread(target=breakers.engage_kill_switch, args=("slow handler",), name="engager")
    engager.start()
    try:
        assert entered.wait(WAIT)
        assert not breakers.can_trade()
        assert breakers.get_status().kill_switch_active
        assert breakers.reset_kill_switch(RESET_KEY) is True
        assert breakers.can_trade()
    finally:
        release.set()
        join_all([engager])


# --- the provider under the monitor thread --------------------------------------------------------


GARBAGE = [None, D("NaN"), float("nan"), "1000000", 1000000.0, D("-Infinity")]


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_monitor_blocks_on_garbage_survives_and_recovers(
    make_breakers: MakeBreakers, provider: FakeProvider, garbage: Any
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.005)
    breakers.start_monitoring()
    assert breakers.can_trade()
    provider.misbehave("garbage", only=["get_daily_pnl_pct"], garbage=garbage)
    assert provider.notify_after(4).wait(WAIT)  # at least three bad readings in a row
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert any(reason.startswith("provider:") and "get_daily_pnl_pct" in reason for reason in reasons), reasons
    assert breakers.get_status().monitor_alive
    provider.heal()
    assert provider.notify_after(2).wait(WAIT)
    assert breakers.can_trade(), breakers.get_blocking_reasons()
    assert breakers.get_status().monitor_alive


@pytest.mark.parametrize(
    "error", [ConnectionError("reset by peer"), TimeoutError(), ValueError("bad json"), KeyError("x")]
)
def test_monitor_survives_a_raising_provider(
    make_breakers: MakeBreakers, provider: FakeProvider, error: Exception
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.005)
    breakers.start_monitoring()
    provider.misbehave("raise", error=error)
    assert provider.notify_after(4).wait(WAIT)
    assert not breakers.can_trade()
    assert any(
        reason.startswith("provider: ") and type(error).__name__ in reason for reason in breakers.get_blocking_reasons()
    )
    assert breakers.get_status().monitor_alive
    provider.heal()
    assert provider.notify_after(2).wait(WAIT)
    assert breakers.can_trade(), breakers.get_blocking_reasons()


def test_hanging_provider_blocks_after_the_staleness_bound_and_recovers(
    make_breakers: MakeBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    # Real 5 ms polls, but readings are stamped with the ManualClock: only the test moves time.
    breakers = make_breakers(check_interval_seconds=0.005, connection_timeout_seconds=5, stale_after_seconds=6)
    breakers.start_monitoring()
    provider.misbehave("hang")
    assert provider.hanging.wait(WAIT)
    clock.advance(5.5)  # beyond the connection timeout, within the staleness bound
    assert breakers.can_trade()
    clock.advance(1)  # 6.5 s since the last good reading
    assert not breakers.can_trade()
    (reason,) = breakers.get_blocking_reasons()
    assert reason.startswith("monitor: last good reading 6.5s ago")
    provider.heal()
    provider.release.set()  # the hung call answers; the next readings are good again
    assert provider.notify_after(2).wait(WAIT)
    assert breakers.can_trade(), breakers.get_blocking_reasons()
    assert breakers.get_status().monitor_alive


def test_a_stuck_monitor_still_blocks_within_the_staleness_bound(
    make_breakers: MakeBreakers, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    breakers = make_breakers(check_interval_seconds=0.005, stale_after_seconds=10)
    breakers.start_monitoring()
    stuck, release = threading.Event(), threading.Event()

    def hang() -> None:  # a poll that never comes back, and so never reports anything
        stuck.set()
        release.wait(WAIT)

    monkeypatch.setattr(breakers, "_poll", hang)
    try:
        assert stuck.wait(WAIT)
        assert breakers.get_status().monitor_alive
        clock.advance(10)
        assert breakers.can_trade()  # within the bound the last reading still counts
        clock.advance(0.5)
        assert not breakers.can_trade()
        assert breakers.get_blocking_reasons()[0].startswith("monitor: last good reading")
    finally:
        release.set()


# --- state and audit files ------------------------------------------------------------------------


@pytest.fixture
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can create files in: chmod 0500, or for root (whom chmod does not stop) a
    read-only tmpfs mounted over it. Where neither works the test fails in CI and skips elsewhere."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o500)
        yield directory
        directory.chmod(0o700)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a read-only tmpfs as root: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_read_only_state_directory_is_reported_clearly(read_only_directory: Path) -> None:
    with pytest.raises(OSError, match=r"Read-only file system|Permission denied"):  # refused, whoever we are
        (read_only_directory / "probe").touch()
    with pytest.raises(StateStoreError, match=r"directory .*ro is not writable") as info:
        TradingCircuitBreakers(FakeProvider(), state_path=read_only_directory / "state.json")
    assert str(read_only_directory / "state.json") in str(info.value)


def _refuse_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make new files in any directory fail as a read-only directory would (root ignores chmod)."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)


def test_read_only_state_directory_is_reported_at_construction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_writes(monkeypatch)
    path = tmp_path / "state.json"
    with pytest.raises(StateStoreError, match="cannot open the state file") as info:
        TradingCircuitBreakers(FakeProvider(), state_path=path)
    assert str(path) in str(info.value)
    assert "Permission denied" in str(info.value)
    assert not path.exists()


def test_a_store_refusing_writes_blocks_trading_until_they_land(
    make_breakers: MakeBreakers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    breakers = make_breakers(reset_key=RESET_KEY, state_path=path)
    kills = Recorder()
    breakers.register_kill_handler(kills)

    def refuse(*args: object) -> bool:
        raise StateStoreError(f"sqlite {path}: cannot write latches/max_drawdown: OperationalError: disk I/O error")

    monkeypatch.setattr(SqliteStore, "compare_and_set", refuse)
    breakers.engage_kill_switch("desk limit")
    assert breakers.kill_switch_active
    assert kills.calls == [("desk limit",)]
    reasons = breakers.get_blocking_reasons()
    assert reasons[0].startswith("max_drawdown: kill switch engaged: desk limit")
    assert any(reason.startswith("state: ") and str(path) in reason for reason in reasons)
    breakers.check_now()  # retried, and refused again: still blocked, still waiting
    assert any(reason.startswith("state: ") for reason in breakers.get_blocking_reasons())
    monkeypatch.undo()
    breakers.check_now()  # the store takes writes again: the engage lands, the fault clears
    assert breakers.get_blocking_reasons() == ["max_drawdown: kill switch engaged: desk limit"]
    assert make_breakers(FakeProvider(), reset_key=RESET_KEY, state_path=path).kill_switch_active


def test_unwritable_audit_trail_never_stops_an_engage_and_blocks_until_written(
    make_breakers: MakeBreakers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    trail = Path(f"{path}.audit.jsonl")
    trail.mkdir()  # the trail cannot be appended to, even by root
    breakers = make_breakers(reset_key=RESET_KEY, state_path=path)
    kills = Recorder()
    breakers.register_kill_handler(kills)
    with caplog.at_level(logging.ERROR):
        breakers.engage_kill_switch("desk limit")
    assert breakers.kill_switch_active
    assert kills.calls == [("desk limit",)]
    reasons = breakers.get_blocking_reasons()
    assert any(reason.startswith("audit: cannot write audit log") for reason in reasons), reasons
    assert any("cannot append 1 audit entries" in record.getMessage() for record in caplog.records)
    assert breakers.reset_kill_switch("wrong key") is False  # a refusal is still an answer
    assert breakers.reset_kill_switch(RESET_KEY) is True
    assert not breakers.kill_switch_active
    breakers.check_now()
    assert not breakers.can_trade()  # three audit entries are still not on disk
    assert [reason.split(":")[0] for reason in breakers.get_blocking_reasons()] == ["audit"]
    assert make_breakers(FakeProvider(), reset_key=RESET_KEY, state_path=path).kill_switch_active is False
    trail.rmdir()
    breakers.check_now()  # the trail is writable again: every entry lands, in order
    assert breakers.can_trade(), breakers.get_blocking_reasons()
    assert [entry["event"] for entry in AuditLog.read(trail)] == [
        "kill_switch_engaged",
        "kill_switch_reset_refused",
        "kill_switch_reset",
    ]
