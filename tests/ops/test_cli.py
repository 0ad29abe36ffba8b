"""The ``circuit-breakers`` command against real trading processes sharing a SQLite file or Redis.

Two trading processes (tests/ops/trader.py) share a state; a third process, the command, halts
them, shows them, releases them with the key from the environment, and lists the audit trail.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import IO, Dict, Iterator, List, Optional

import pytest

from ..paths import ROOT, env_for_subprocess
from ..redis_server import RedisServer

KEY = "ops-test-key"
WAIT = 15.0


class Trader:
    """A trading process; its stdout lines arrive on a queue read by a thread (bounded waits)."""

    def __init__(self, where: List[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ops.trader", KEY, *where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env_for_subprocess(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.strip())

    def expect(self, prefix: str) -> str:
        while True:
            line = self.lines.get(timeout=WAIT)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(WAIT)  # it reads to the end of the pipe before the pipe is closed
        if self.process.stdout is not None:
            self.process.stdout.close()


def command(*arguments: str, key: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    env = env_for_subprocess()
    env.pop("CIRCUIT_BREAKERS_RESET_KEY", None)
    if key is not None:
        env["CIRCUIT_BREAKERS_RESET_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "circuit_breakers", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(params=["sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> List[str]:
    """The state shared by the test's processes, as command-line arguments."""
    if request.param == "sqlite":
        return ["--state", str(tmp_path / "desk.db")]
    server: RedisServer = request.getfixturevalue("redis_server")
    return ["--redis", server.url, "--namespace", f"ops-{uuid.uuid4().hex[:8]}"]


@pytest.fixture
def traders(where: List[str]) -> Iterator[List[Trader]]:
    started: List[Trader] = []
    try:
        for _ in range(2):
            trader = Trader(where)
            trader.expect("ready")
            started.append(trader)
        yield started
    finally:
        for trader in started:
            trader.stop()


def status(where: List[str]) -> tuple[int, Dict[str, object]]:
    result = command("status", *where, "--json")
    return result.returncode, json.loads(result.stdout)


def test_kill_status_reset_audit_across_processes(where: List[str], traders: List[Trader]) -> None:
    code, document = status(where)
    assert code == 0, document
    assert document["trading_state"] == "active"
    processes = document["processes"]
    assert isinstance(processes, list)
    assert sorted(process["pid"] for process in processes) == sorted(t.process.pid for t in traders)

    killed = command("kill", *where, "--reason", "risk desk: flatten everything", "--actor", "alice")
    assert killed.returncode == 0, killed.stderr
    for trader in traders:  # each halts within a monitor poll (at once on Redis) and runs its kill handler
        assert trader.expect("killed") == "killed risk desk: flatten everything"
    code, document = status(where)
    assert code == 2  # halted
    assert (document["trading_state"], document["kill_switch_active"]) == ("halted", True)
    (latch,) = document["latches"]  # type: ignore[misc]
    assert (latch["name"], latch["actor"]) == ("max_drawdown", "alice")
    assert latch["reason"] == "risk desk: flatten everything"
    text = command("status", *where)
    assert text.returncode == 2
    assert "kill switch ENGAGED" in text.stdout
    assert "alice" in text.stdout

    wrong = command("reset", *where, "--actor", "bob", key="not the key")
    assert (wrong.returncode, wrong.stderr.count("\n")) == (4, 1)
    reset = command("reset", *where, "--actor", "bob", key=KEY)
    assert reset.returncode == 0, reset.stderr
    for trader in traders:
        assert trader.expect("released") == "released"
    assert status(where)[0] == 0

    audit = command("audit", *where, "--json")
    assert audit.returncode == 0, audit.stderr
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    events = [entry["event"] for entry in entries]
    assert events[0] == "kill_switch_engaged"
    assert events.count("kill_switch_heard") == 2  # each trading process audits the engage it heard
    assert events[-2:] == ["kill_switch_reset_refused", "kill_switch_reset"]
    assert {entry["pid"] for entry in entries if entry["event"] == "kill_switch_heard"} == {
        trader.process.pid for trader in traders
    }
    assert entries[0]["actor"] == "alice"
    assert entries[-1]["actor"] == "bob"
    assert KEY not in audit.stdout + reset.stdout + reset.stderr
    later = command("audit", *where, "--since", entries[-1]["time"])
    assert later.stdout.count("\n") == 1  # only the reset


def test_a_missing_state_file_and_usage_errors_have_their_own_exit_status(tmp_path: Path) -> None:
    missing = command("status", "--state", str(tmp_path / "none.db"))
    assert (missing.returncode, missing.stderr.count("\n"), missing.stdout) == (66, 1, "")
    assert not (tmp_path / "none.db").exists()  # looking never creates a state
    wrong_uses = (["status"], ["status", "--state", "x", "--redis", "redis://h"], ["kill", "--state", "x"], ["bogus"])
    for arguments in wrong_uses:
        result = command(*arguments)
        assert result.returncode == 64, (arguments, result.stderr)
        assert "Traceback" not in result.stderr


def test_an_unreadable_state_exits_3_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 400)
    result = command("status", "--state", str(path))
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert str(path) in result.stderr
    assert json.loads(command("status", "--state", str(path), "--json").stdout)["store"]["healthy"] is False


def test_an_unreachable_redis_exits_3_with_one_line() -> None:
    result = command("status", "--redis", "redis://127.0.0.1:1/0", "--namespace", "x")
    assert (result.returncode, result.stderr.count("\n")) == (3, 1)
    assert "Traceback" not in result.stderr


def test_reset_without_a_stored_key_is_refused_with_5(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    assert command("status", "--state", str(path)).returncode == 66
    from circuit_breakers.stores import SqliteStore  # noqa: PLC0415

    SqliteStore(path).close()  # a state no keyed process ever used
    assert command("kill", "--state", str(path), "--reason", "test").returncode == 0
    result = command("reset", "--state", str(path), key="some key")
    assert result.returncode == 5
    assert "no reset key" in result.stderr
    assert command("status", "--state", str(path)).returncode == 2  # still halted


def test_wrong_keys_from_the_command_line_count_toward_the_lockout(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers  # noqa: PLC0415

    from ..providers import FlatPortfolio  # noqa: PLC0415

    desk = TradingCircuitBreakers(FlatPortfolio(), TradingBreakerConfig(), reset_key=KEY, state_path=path)
    desk.engage_kill_switch("test")
    codes = [command("reset", "--state", str(path), key=f"wrong {n}").returncode for n in range(6)]
    assert codes == [4, 4, 4, 4, 4, 5]  # five wrong keys (the default), then locked out
    assert "locked out" in command("reset", "--state", str(path), key=KEY).stderr  # even the right one, for now
    assert desk.get_status().details["max_drawdown"]["reset"]["locked_out_for"] > 0  # the process sees it too
    desk.close()


def test_the_key_never_comes_from_the_arguments(tmp_path: Path) -> None:
    result = command("reset", "--state", str(tmp_path / "x.db"), KEY)
    assert result.returncode == 64
    assert KEY not in result.stderr  # not echoed back either


def test_a_key_file_is_read(tmp_path: Path) -> None:
    from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers  # noqa: PLC0415

    from ..providers import FlatPortfolio  # noqa: PLC0415

    path = tmp_path / "desk.db"
    desk = TradingCircuitBreakers(FlatPortfolio(), TradingBreakerConfig(), reset_key=KEY, state_path=path)
    desk.engage_kill_switch("test")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    os.chmod(key_file, 0o600)
    result = command("reset", "--state", str(path), "--key-file", str(key_file))
    assert result.returncode == 0, result.stderr
    desk.check_now()
    assert desk.can_trade()
    desk.close()


def test_help_lists_the_commands_and_hides_the_demo_helper() -> None:
    run = command("--help")
    assert run.returncode == 0
    for name in ("status", "kill", "reset", "audit", "watch", "serve", "replay", "sweep", "demo"):
        assert f"\n    {name} " in run.stdout, name
    assert "demo-follower" not in run.stdout
    assert "SUPPRESS" not in run.stdout
