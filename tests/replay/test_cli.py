"""The replay and sweep commands: output, JSON, exit statuses and one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from circuit_breakers.replay.cli import EXIT_HISTORY, EXIT_LIMITS, EXIT_PLOT, EXIT_USAGE, replay_main, sweep_main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "example_history.csv"

HISTORY = "time,equity\n2024-03-04,100000\n2024-03-05,97500\n2024-03-06,98000\n"


def history(tmp_path: Path, text: str = HISTORY) -> str:
    path = tmp_path / "history.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], main: object, argv: List[str]) -> Tuple[int, str, str]:
    status = main(argv)  # type: ignore[operator]
    out, err = capsys.readouterr()
    return status, out, err


def test_replay_prints_events_then_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, replay_main, [history(tmp_path)])
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["2024-03-05", "WARNING", "daily_loss", "P&L", "-2.50%", "<=", "warning", "-1.50%"]
    assert lines[1].split()[1:3] == ["TRIP", "daily_loss"]
    assert lines[2].split()[:3] == ["2024-03-06", "RECOVERED", "daily_loss"]
    assert "Summary" in lines
    assert "  trips                daily_loss 1" in lines
    assert "  final equity         98,000.00 without breakers, 98,000.00 with" in lines


def test_replay_json_holds_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, replay_main, [history(tmp_path), "--json"])
    document = json.loads(out)
    assert status == 0
    assert [event["kind"] for event in document["events"]] == ["WARNING", "TRIP", "RECOVERED"]
    assert document["summary"]["trips"] == {"daily_loss": 1}
    assert document["summary"]["worst_day"] == {"trading_day": "2024-03-05", "pnl_pct": "-2.5000"}
    assert document["plot"] is None


def test_replay_reads_limits_and_resets_the_kill_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    limits = tmp_path / "limits.toml"
    limits.write_text("[trading]\nmax_drawdown_pct = -2\ndrawdown_warning_pct = -1\n", encoding="utf-8")
    status, out, _ = run(
        capsys, replay_main, [history(tmp_path), "--config", str(limits), "--reset-after-days", "1", "--json"]
    )
    document = json.loads(out)
    assert status == 0
    assert [(e["kind"], e["breaker"]) for e in document["events"] if e["breaker"] == "max_drawdown"] == [
        ("WARNING", "max_drawdown"),
        ("TRIP", "max_drawdown"),
        ("KILL", "max_drawdown"),
        ("RECOVERED", "max_drawdown"),
    ]
    assert document["reset_after_days"] == 1


@pytest.mark.parametrize(
    ("text", "status", "message"),
    [
        ("time,equity\n2024-03-05,100\n2024-03-04,100\n", EXIT_HISTORY, "line 3: time 2024-03-04 is not after"),
        ("time,equity\n2024-03-05,abc\n", EXIT_HISTORY, "line 2: equity 'abc' is not a number"),
    ],
)
def test_a_bad_row_is_one_line_and_its_own_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, status: int, message: str
) -> None:
    code, out, err = run(capsys, replay_main, [history(tmp_path, text)])
    assert (code, out) == (status, "")
    assert err.count("\n") == 1
    assert err.startswith("circuit-breakers replay: error: ")
    assert message in err


def test_statuses_for_each_kind_of_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = history(tmp_path)
    bad_limits = tmp_path / "bad.toml"
    bad_limits.write_text("[trading]\nmax_drawdown = -5\n", encoding="utf-8")
    assert run(capsys, replay_main, [str(tmp_path / "missing.csv")])[0] == EXIT_HISTORY
    code, _, err = run(capsys, replay_main, [path, "--config", str(bad_limits)])
    assert code == EXIT_LIMITS
    assert "bad.toml [trading]: unknown key max_drawdown = -5" in err
    assert run(capsys, replay_main, [path, "--reset-after-days", "0"])[0] == EXIT_USAGE
    assert run(capsys, replay_main, [])[0] == EXIT_USAGE
    assert run(capsys, replay_main, ["--help"])[0] == 0
    code, _, err = run(capsys, sweep_main, [path, "--param", "nope", "--values", "1"])
    assert code == EXIT_LIMITS
    assert "param 'nope'" in err
    code, _, err = run(capsys, sweep_main, [path, "--param", "daily_loss_warning_pct", "--values", "-1,-3"])
    assert code == EXIT_LIMITS
    assert "daily_loss_warning_pct = -3" in err
    code, _, err = run(capsys, replay_main, [path, "--plot", str(tmp_path / "no" / "such" / "dir.png")])
    assert code == EXIT_PLOT  # matplotlib missing, or (installed) the directory does not exist
    assert err.count("\n") == 1


def test_sweep_takes_negative_values_after_a_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys, sweep_main, [history(tmp_path), "--param", "daily_loss_limit_pct", "--values", "-2,-3", "--json"]
    )
    assert (status, err) == (0, "")
    runs = json.loads(out)["runs"]
    assert [(run["value"], run["total_trips"]) for run in runs] == [("-2", 1), ("-3", 0)]


def python_m(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "circuit_breakers", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_python_m_runs_replay_and_sweep_on_the_example() -> None:
    replayed = python_m("replay", str(EXAMPLE), "--reset-after-days", "5")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stderr == ""  # the kill switch's audit log lines stay out of the output
    assert "  trips                daily_loss 3, max_drawdown 1, volatility 4" in replayed.stdout
    swept = python_m("sweep", str(EXAMPLE), "--param", "max_drawdown_pct", "--values", "-8,-12")
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.splitlines()[0].split()[0] == "max_drawdown_pct"


def test_a_missing_matplotlib_is_a_clear_one_line_error(tmp_path: Path) -> None:
    # A real interpreter in which matplotlib cannot be imported.
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(shadow.parent)])}
    completed = python_m("replay", str(EXAMPLE), "--plot", str(tmp_path / "out.png"), env=env)
    assert completed.returncode == EXIT_PLOT
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [
        "python -m circuit_breakers replay: error: --plot needs matplotlib: "
        "pip install 'circuit_breakers[plot]' (No module named matplotlib)"
    ]
    assert not (tmp_path / "out.png").exists()


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    # Alternate +3 % and -3 % days: three events a day, far more output than a pipe holds.
    start = dt.date(2020, 1, 1)
    lines = ["time,equity"]
    for day in range(600):
        lines.append(f"{start + dt.timedelta(days=day)}T12:00:00+00:00,{100000 if day % 2 == 0 else 97000}")
    path = history(tmp_path, "\n".join(lines) + "\n")
    with subprocess.Popen(
        [sys.executable, "-m", "circuit_breakers", "replay", path, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.read(1) == b"{"
        process.stdout.close()  # as `| head -1` does, long before the end
        assert process.wait(timeout=60) == 0
        assert process.stderr.read() == b""
