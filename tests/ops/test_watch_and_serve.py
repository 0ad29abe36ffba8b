"""``circuit-breakers watch`` in a real terminal (tmux), and ``serve`` over real HTTP."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

import pytest

from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers

from ..paths import ROOT, env_for_subprocess
from ..providers import FlatPortfolio
from .test_cli import KEY, command

WAIT = 15.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition about another process (a terminal, a server) until it holds, or fail after WAIT."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def halted_desk(tmp_path: Path) -> Path:
    path = tmp_path / "desk.db"
    desk = TradingCircuitBreakers(FlatPortfolio(), TradingBreakerConfig(), reset_key=KEY, state_path=path)
    desk.engage_kill_switch("risk desk: flatten everything", actor="alice")
    desk.close()
    return path


def tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing in CI (apt-get install -y tmux)")
        pytest.skip("tmux is not installed (apt-get install -y tmux)")
    return found


def test_watch_in_an_80x24_terminal_shows_the_state_in_colour_and_ends_on_ctrl_c(halted_desk: Path) -> None:
    binary = tmux()
    session = f"cb-watch-{uuid.uuid4().hex[:8]}"
    python_path = env_for_subprocess()["PYTHONPATH"]
    inner = (
        f"cd {shlex.quote(str(ROOT))} && PYTHONPATH={shlex.quote(python_path)} "
        f"{shlex.quote(sys.executable)} -m circuit_breakers watch --state {shlex.quote(str(halted_desk))}; "
        "echo EXITED $?; sleep 60"
    )
    subprocess.run([binary, "new-session", "-d", "-s", session, "-x", "80", "-y", "24", inner], check=True)

    def screen(colour: bool = False) -> str:
        flags = ["-e"] if colour else []
        return subprocess.run(
            [binary, "capture-pane", "-p", *flags, "-t", session], capture_output=True, text=True, check=True
        ).stdout

    try:
        wait_for(lambda: "trading HALTED" in screen(), "the halted desk on screen")
        text = screen()
        assert "kill switch ENGAGED" in text
        assert "alice" in text
        assert "risk desk: flatten everything" in text
        lines = text.rstrip("\n").splitlines()
        assert len(lines) <= 24
        assert all(len(line) <= 80 for line in lines)
        assert re.search(r"\x1b\[[0-9;]*31m", screen(colour=True)), "the halt is in red"
        reset = command("reset", "--state", str(halted_desk), key=KEY)
        assert reset.returncode == 0, reset.stderr
        wait_for(lambda: "trading ACTIVE" in screen(), "the refresh after the reset")  # refreshed in place
        assert screen().count("circuit_breakers ·") == 1  # one screen, not a scroll of them
        subprocess.run([binary, "send-keys", "-t", session, "C-c"], check=True)
        wait_for(lambda: "EXITED 0" in screen(), "a clean exit on Ctrl-C")
        assert "Traceback" not in screen()
    finally:
        subprocess.run([binary, "kill-session", "-t", session], check=False, capture_output=True)


def test_serve_answers_status_and_metrics_and_stops_on_ctrl_c(halted_desk: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "circuit_breakers", "serve", "--state", str(halted_desk), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env_for_subprocess(),
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)
        with urllib.request.urlopen(f"{url}/status.json", timeout=5) as answer:
            document = json.loads(answer.read())
        assert (document["trading_state"], document["kill_switch_active"]) == ("halted", True)
        assert document["latches"][0]["actor"] == "alice"
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert "trading_kill_switch_engaged 1" in metrics
        assert 'trading_state{state="halted"} 1' in metrics
        with urllib.request.urlopen(f"{url}/", timeout=5) as answer:
            assert "HALTED" in answer.read().decode()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=WAIT) == 0
        assert server.stderr is not None
        assert "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
