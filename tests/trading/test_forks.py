"""os.fork() while the trading breakers run: no deadlock in the child, honest monitoring, the parent's kill switch.

Every child runs under a watchdog (``signal.alarm``: the kernel kills a child stuck on a lock that
another thread held at the fork) and reports to the parent through a pipe, one JSON line a fact;
the parent checks each child's exit status. Children end with ``os._exit`` so that nothing of
pytest runs twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.stores import SqliteStore

from .forking import (
    WAIT,
    WATCHDOG,
    Child,
    GatedPortfolio,
    Portfolio,
    Report,
    exit_code,
    fork_while_parked,
    wait_until,
)

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only"),
    # Python 3.12+ warns on fork() in a process with threads: forking with threads is the point here.
    pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"),
]


@pytest.fixture
def quick_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory (tmpfs) where there is one: hundreds of fsyncs cost nothing there."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK | os.X_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="circuit-breakers-forks-") as directory:
        yield Path(directory)


# --- (a) many forks while the monitors poll every 0.5 ms --------------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[2]


def run_storm(kind: str, where: str, forks: int, *, desks: int = 1, stop_at_loss: bool = False) -> List[Dict[str, Any]]:
    """Run forking.storm in a fresh, small process (see forking.py); its outcomes, checked for what always holds."""
    options = ["--desks", str(desks)] + (["--stop-at-loss"] if stop_at_loss else [])
    run = subprocess.run(
        [sys.executable, "-m", "tests.trading.forking", kind, where, str(forks), *options],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    *outcomes, end = json.loads(run.stdout)
    assert end == {"stopped": True}
    for outcome in outcomes:
        number = outcome["number"]
        assert outcome["engaged_before"] is False
        # A child the watchdog killed deadlocked; its threads' stacks are on stderr.
        assert outcome["status"] == "exit 0", (outcome, run.stderr[-3000:])
        (child,) = outcome["reports"]
        assert child["engaged"] is True
        assert child["can_trade"] is False
        assert child["reasons"][0] == f"max_drawdown: kill switch engaged: child {number}"
        assert child["monitors"] == desks, "the child restarts its own monitors"
    return outcomes


def test_forks_during_monitor_polls_never_deadlock_and_the_child_cannot_trade() -> None:
    outcomes = run_storm("memory", "-", 200)
    assert len(outcomes) == 200
    for outcome in outcomes:
        assert outcome["reports"][0]["written"] is True
        assert outcome["parent_reasons"] == []  # the child's memory is its own


def test_forks_of_a_redis_desk_never_deadlock_and_the_parent_hears_each_child(redis_server: Any) -> None:
    namespace = f"fork-storm-{uuid.uuid4().hex[:8]}"
    outcomes = run_storm("redis", f"{redis_server.url}#{namespace}", 50)
    assert len(outcomes) == 50
    for outcome in outcomes:
        assert outcome["reports"][0]["written"] is True
        assert outcome["parent_reasons"] == [f"max_drawdown: kill switch engaged: child {outcome['number']}"]
        assert outcome["released"] is True
    client = redis_server.client()
    for key in client.scan_iter(f"{namespace}:*"):
        client.delete(key)
    client.close()


def _pool_lock(client: Any) -> Any:
    return client.connection_pool._lock


def _dispatcher_lock(client: Any) -> Any:
    return client.connection_pool._event_dispatcher._lock


@pytest.mark.parametrize("lock_of", [_pool_lock, _dispatcher_lock], ids=["pool", "event dispatcher"])
def test_a_child_forked_while_another_thread_held_a_redis_client_lock_can_use_the_store(
    redis_server: Any, lock_of: Any
) -> None:
    """redis-py resets its pool in a child under the pool's lock, and dispatches an event under its
    dispatcher's lock each time a connection goes back to the pool: either, held by another thread at
    the fork (a listener, a monitor), would stay held in the child forever."""
    from circuit_breakers.redis import RedisStore  # noqa: PLC0415

    client = redis_server.client(socket_timeout=2.0, socket_connect_timeout=2.0)
    store = RedisStore(client, f"fork-pool-{uuid.uuid4().hex[:8]}")
    store.put("values", "k", "v")
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock_of(client):
            held.set()
            done.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(WAIT)

        def child(report: Report) -> int:
            report(values=store.read()["values"])
            return 0

        status, reports = Child(child).finish()
    finally:
        done.set()
        holder.join(WAIT)
    assert exit_code(status) == "exit 0"
    assert reports == [{"values": {"k": "v"}}]
    client.close()


def test_forks_of_desks_sharing_a_state_file_never_deadlock_and_every_engage_lands(quick_dir: Path) -> None:
    # Three desks of one process on one file (each its own SqliteStore): a fork lands inside SQLite more often,
    # so the first loss comes within a few forks instead of a few dozen.
    outcomes = run_storm("sqlite", str(quick_dir), 200, desks=3, stop_at_loss=True)
    for outcome in outcomes:
        assert outcome["reports"][0]["written"] is True, outcome
        assert outcome["parent_reasons"] == [f"max_drawdown: kill switch engaged: child {outcome['number']}"]
    assert len(outcomes) == 200


# --- (b) the child reports its monitoring honestly --------------------------------------------------------


def test_a_forked_child_cannot_trade_until_its_own_monitor_has_polled(tmp_path: Path) -> None:
    provider = GatedPortfolio()
    config = TradingBreakerConfig(check_interval_seconds=0.05)
    breakers = TradingCircuitBreakers(provider, config, state_path=tmp_path / "desk.db")
    breakers.start_monitoring()
    assert breakers.can_trade()

    def child(report: Report) -> int:
        before = breakers.get_status()  # the child's monitor is held at its first reading by the gate
        report(
            can_trade=breakers.can_trade(),
            reasons=list(before.reasons),
            monitor_alive=before.monitor_alive,
            monitoring=before.monitoring,
        )
        os.close(provider.gate_write)  # the last write end: every reading in this child now goes through
        polled = wait_until(breakers.can_trade)
        after = breakers.get_status()
        traded = False
        if polled:
            with breakers.trade_guard():
                traded = True
        report(
            polled=polled,
            reasons=list(after.reasons),
            monitor_alive=after.monitor_alive,
            traded=traded,
            recorded=breakers.record_order(),
            pid=os.getpid(),
        )
        return 0

    try:
        run = fork_while_parked(provider, child)
        os.close(provider.gate_write)  # the parent never reads through the gate
        status, reports = run.finish()
        assert status == 0, f"{exit_code(status)}; reports {reports}"
        first, second = reports
        assert first == {
            "can_trade": False,
            "reasons": [f"monitor: restarting in forked child (pid {run.pid})"],
            "monitor_alive": True,
            "monitoring": True,
        }
        assert second == {
            "polled": True,
            "reasons": [],
            "monitor_alive": True,
            "traded": True,
            "recorded": True,
            "pid": run.pid,
        }
        assert breakers.can_trade(), "the parent is not affected by its child"
    finally:
        assert breakers.stop_monitoring(timeout=5)
        breakers.close()
        os.close(provider.gate_read)


# --- (c) the parent's kill switch reaches the child -------------------------------------------------------


class KillPipe:
    """A kill handler writing ``<pid> <reason>`` to a pipe, in whichever process runs it."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()

    def __call__(self, reason: str) -> None:
        os.write(self.write_end, f"{os.getpid()} {reason}\n".encode())

    def lines(self) -> List[str]:
        os.set_blocking(self.read_end, False)
        data = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        return data.decode().splitlines()

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tuple[Any, float, float]]:
    """(store, monitor interval, how soon a child must hear of an engage) for each kind of shared store."""
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "desk.db"), 0.05, 0.05 + 2.0  # one poll, and room for a loaded machine
        return
    from circuit_breakers.redis import RedisStore  # noqa: PLC0415 - only where Redis runs

    client = request.getfixturevalue("redis_server").client()
    namespace = f"fork-{uuid.uuid4().hex[:8]}"
    # Neither the monitor nor the listener's periodic re-read comes within 30 s: only a pub/sub message can.
    yield RedisStore(client, namespace, resync_seconds=30.0), 30.0, 2.0
    for key in client.scan_iter(f"{namespace}:*"):
        client.delete(key)
    client.close()


def test_the_parents_kill_switch_halts_the_child_and_runs_its_kill_handler(shared: Tuple[Any, float, float]) -> None:
    store, interval, bound = shared
    kills = KillPipe()
    provider = Portfolio()
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(check_interval_seconds=interval), store=store)
    breakers.register_kill_handler(kills)
    breakers.start_monitoring()
    engaged_at_read, engaged_at_write = os.pipe()

    def child(report: Report) -> int:
        os.close(engaged_at_write)
        report(ready=wait_until(breakers.can_trade))  # its own monitor has polled
        heard = wait_until(lambda: breakers.kill_switch_active, WATCHDOG - 2)
        seen = time.monotonic()
        with os.fdopen(engaged_at_read) as pipe:
            engaged_at = float(pipe.read())
        handled = wait_until(lambda: bool(breakers.get_status().details["max_drawdown"]["kill_handlers"]))
        status = breakers.get_status()
        report(
            heard=heard,
            latency=seen - engaged_at,
            can_trade=breakers.can_trade(),
            reasons=list(status.reasons),
            handled=handled,
            kill_handlers=status.details["max_drawdown"]["kill_handlers"],
        )
        return 0

    try:
        run = fork_while_parked(provider, child) if interval < 1 else Child(child)  # a long one: idle
        os.close(engaged_at_read)
        assert run.next_report() == {"ready": True}
        engaged_at = time.monotonic()  # CLOCK_MONOTONIC: one clock for the whole host
        breakers.engage_kill_switch("risk desk")
        os.write(engaged_at_write, repr(engaged_at).encode())
        os.close(engaged_at_write)
        status, reports = run.finish()
        assert status == 0, f"{exit_code(status)}; reports {reports}"
        (report,) = reports
        assert report["heard"] is True
        assert report["latency"] < bound, report
        assert report["can_trade"] is False
        assert report["reasons"] == ["max_drawdown: kill switch engaged: risk desk"]
        assert report["handled"] is True
        assert [outcome["ok"] for outcome in report["kill_handlers"]] == [True]
        assert sorted(kills.lines()) == sorted([f"{os.getpid()} risk desk", f"{run.pid} risk desk"])
    finally:
        assert breakers.stop_monitoring(timeout=5)
        breakers.close()
        kills.close()


# --- a fork in the middle of an SQLite read -----------------------------------------------------------------


class Freezer:
    """Stops the monitor thread inside its next SQLite read of the state (a progress handler on the
    store's connection), so that a fork can happen exactly while it holds SQLite's shared lock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = threading.Event()
        self.frozen = threading.Event()
        self.thaw = threading.Event()
        self.owner = os.getpid()
        real_connect = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            connection = real_connect(*args, **kwargs)
            connection.set_progress_handler(self._progress, 1)
            return connection

        monkeypatch.setattr(sqlite3, "connect", connect)

    def _progress(self) -> int:
        if (
            self.armed.is_set()
            and os.getpid() == self.owner
            and threading.current_thread().name.startswith("circuit_breakers-monitor")
            and sys._getframe(1).f_code.co_name == "read"  # SqliteStore.read: SELECT ... FROM records
        ):
            self.armed.clear()
            self.frozen.set()
            self.thaw.wait(WATCHDOG)
        return 0


def test_a_child_forked_mid_read_can_still_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "desk.db"
    freezer = Freezer(monkeypatch)
    store = SqliteStore(path, timeout=0.2)
    breakers = TradingCircuitBreakers(Portfolio(), TradingBreakerConfig(check_interval_seconds=0.01), store=store)
    breakers.start_monitoring()
    go_read, go_write = os.pipe()

    def child(report: Report) -> int:
        os.close(go_write)
        breakers.engage_kill_switch("child")
        assert os.read(go_read, 1) == b"g"  # the parent's thread is out of SQLite and its monitor stopped
        for _ in range(3):
            breakers.check_now()  # every poll retries what waits to be written
        try:
            plain = sqlite3.connect(path, timeout=0.2, isolation_level=None)
            plain.execute("BEGIN EXCLUSIVE")  # what a commit needs
            plain.execute("ROLLBACK")
            plain_write = "ok"
        except sqlite3.OperationalError as exc:
            plain_write = str(exc)
        report(reasons=breakers.get_blocking_reasons(), plain_write=plain_write)
        return 0

    try:
        freezer.armed.set()
        SqliteStore(path).put("values", "marker", "1")  # another writer: the monitor's next poll re-reads
        assert freezer.frozen.wait(WAIT), "the monitor never read the state"
        run = Child(child)
        os.close(go_read)
        freezer.thaw.set()
        assert breakers.stop_monitoring(timeout=5)
        os.write(go_write, b"g")
        os.close(go_write)
        status, reports = run.finish()
        assert status == 0, f"{exit_code(status)}; reports {reports}"
        (report,) = reports
        assert report["reasons"][0] == "max_drawdown: kill switch engaged: child"
        # What the child engaged reaches the file every process shares: here it never does, because SQLite's
        # record of the locks the parent's thread held at the fork (kept per process, per file) came along.
        assert "max_drawdown" in SqliteStore(path).read()["latches"], report
    finally:
        freezer.thaw.set()
        breakers.stop_monitoring(timeout=5)
        breakers.close()
