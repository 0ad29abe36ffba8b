"""The demo as a user runs it (python -m circuit_breakers demo): deterministic, its story told in order."""

from __future__ import annotations

import subprocess
import sys
from typing import List

from ..paths import ROOT, env_for_subprocess


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "circuit_breakers", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env_for_subprocess(),
    )


def demo_lines(seed: int = 7) -> List[str]:
    result = run("demo", "--seed", str(seed))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing else reaches the terminal (no log lines without --verbose)
    return result.stdout.splitlines()


def test_demo_shows_every_kind_of_event_in_order() -> None:
    lines = demo_lines()
    text = "\n".join(lines)
    for marker in (
        ": rate_limit: order rate limit reached",
        "TRIP      connection: 3 failures in the last minute",
        "RECOVERED connection",
        "WARNING   daily_loss: P&L -2.04% <= warning -1.50%",  # the warning level, not the limit
        "TRIP      daily_loss:",
        "TRIP      max_drawdown: drawdown -10.30% <= limit -10.00%",  # two decimals for every percentage
        "RESET     reset_kill_switch(<wrong key>)",
        "REFUSED   wrong key: the kill switch holds",
        "RESET     reset_kill_switch(<right key>)",
        ": duplicate: same buy",
        ": price_collar: price",
        ": concentration: SPY",
        "trading_state=reducing",
        ": reduce_only: reduce-only (daily_loss, volatility)",
        "KILL      cancelling all working orders",
    ):
        assert marker in text, marker
    assert text.rstrip().endswith("can_trade: True")
    assert any(line.startswith("Mon") and "ORDER     SELL 100 SPY" in line for line in lines)
    first_trip = next(i for i, line in enumerate(lines) if "TRIP      connection" in line)
    assert "BROKER" in lines[first_trip - 1]  # the failure is told before the trip it caused
    reset = next(i for i, line in enumerate(lines) if "reset_kill_switch(<right key>)" in line)
    assert "RECOVERED max_drawdown" in lines[reset + 1]  # and the reset before the recovery it caused
    table = text[text.index("breaker ") :]
    for shown in ("-2.00 %", "std devs", "failures in window", "10/min, 100/h"):  # units in the final table
        assert shown in table


def test_demo_is_deterministic() -> None:
    assert demo_lines(seed=3) == demo_lines(seed=3)


def test_demo_piped_into_head_ends_quietly() -> None:
    command = f"{sys.executable} -m circuit_breakers demo | head -3"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env_for_subprocess(),
    )
    assert result.stdout.count("\n") == 3
    assert result.stderr == ""  # no traceback, no UnknownOrderError
    assert result.returncode == 0


def test_bad_redis_url_and_unreachable_server_print_one_line_and_exit_2() -> None:
    for url in ("not-a-url", "redis://127.0.0.1:1/0"):
        result = run("demo", "--redis", url)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


def test_version() -> None:
    from circuit_breakers import __version__  # noqa: PLC0415

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"circuit_breakers {__version__}"
    assert "demo-reset-key" not in result.stdout
