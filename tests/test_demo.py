"""The demo runs deterministically and shows what the README says it shows."""

from __future__ import annotations

import subprocess
import sys

from circuit_breakers.demo import run_demo


def _lines(seed: int = 7) -> list[str]:
    lines: list[str] = []
    run_demo(lines.append, seed=seed)
    return lines


def test_demo_shows_every_kind_of_event() -> None:
    text = "\n".join(_lines())
    for marker in (
        ": rate_limit: order rate limit reached",
        "TRIP      connection:",
        "RECOVERED connection",
        "WARNING   daily_loss:",
        "TRIP      daily_loss:",
        "TRIP      max_drawdown:",
        "reset_kill_switch(<wrong key>) -> False",
        "reset_kill_switch(<right key>) -> True",
        ": duplicate: same buy",
        ": price_collar: price",
        ": concentration: SPY",
        "trading_state=reducing",
        ": reduce_only: reduce-only (daily_loss, volatility)",
        "KILL      cancelling all working orders",
    ):
        assert marker in text, marker
    assert text.rstrip().endswith("can_trade: True")
    assert any(line.startswith("Mon") and "ORDER     SELL 100 SPY" in line for line in text.splitlines())


def test_demo_is_deterministic() -> None:
    assert _lines(seed=3) == _lines(seed=3)


def test_demo_command_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "circuit_breakers", "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Day 3" in result.stdout
    assert "demo-reset-key" not in result.stdout + result.stderr
