"""Smoke test of the benchmark suite: ``benchmarks/run.py --quick`` finishes and reports every case.

Speed is measured, never asserted: nothing here looks at a timing or at whether a target is met.
Peers that are not installed are skipped by the script with a note; the second run forces that
path with ``--without`` so that it stays tested where the peers are installed. The same goes for
case 7 (Redis): it runs against a throwaway redis-server when one is installed, and ``--without
redis`` forces its skip path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run.py"
CASES = {"closed_path", "open_rejection", "context_manager", "trading", "rate_limits", "threads", "redis", "replay"}
PEERS = ("pybreaker", "circuitbreaker", "limits", "pyrate-limiter")


def run_quick(tmp_path: Path, extra: List[str]) -> Dict[str, Any]:
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(output), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's package, whatever is installed
        check=False,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout[-3000:]}\nstderr:\n{completed.stderr[-3000:]}"
    assert "Targets" in completed.stdout
    document: Dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("without_peers", [False, True], ids=["installed-peers", "without-peers"])
def test_quick_run_reports_every_case(tmp_path: Path, without_peers: bool) -> None:
    if not without_peers:
        missing = [name for name in PEERS if importlib.util.find_spec(name.replace("-", "_")) is None]
        if missing:  # the README's test extra does not install them; CI installs the dev extra, which does
            message = f"benchmark peers not installed: {', '.join(missing)} (pip install -e '.[bench]')"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    document = run_quick(tmp_path, ["--without", ",".join((*PEERS, "redis"))] if without_peers else [])

    assert set(document["cases"]) == CASES
    assert document["mode"] == "quick"
    assert document["machine"]["cpu_count"]
    for case in document["cases"].values():
        for figure in case["measurements"].values():
            assert "ns_per_call" in figure or "skipped" in figure
    for key in ("closed_path", "open_rejection", "context_manager", "trading", "rate_limits"):
        measured = document["cases"][key]["measurements"]
        assert "bare" in measured
        assert "ns_per_call" in measured["bare"]
    assert {"ours_decorator", "lock_baseline", "pybreaker", "circuitbreaker"} <= set(
        document["cases"]["closed_path"]["measurements"]
    )
    assert document["cases"]["trading"]["provider_calls_during_timed_loops"]
    trading = document["cases"]["trading"]
    for key in ("check_order_all", "check_order_refused", "check_order_default", "trade_guard_order"):
        assert "ns_per_call" in trading["measurements"][key]
        calls = trading["order_provider_calls"][key]
        assert calls["orders"] > 0
        assert calls["per_order"] is not None
    assert "check_order(), all checks on (ns/call)" in [target["name"] for target in document["targets"]]
    rate_limits = document["cases"]["rate_limits"]
    assert rate_limits["exactness"]
    assert rate_limits["memory"]
    threads = document["cases"]["threads"]
    assert "ours @breaker" in threads["hammer"]
    assert "unprotected" in threads["one_ms_calls"]
    assert document["targets"]
    for target in document["targets"]:
        assert target["met"] in (True, False, None)

    if without_peers:
        for name in PEERS:
            assert document["peers"][name]["available"] is False
        assert "skipped" in document["cases"]["closed_path"]["measurements"]["pybreaker"]
        assert "skipped" in document["cases"]["rate_limits"]["measurements"]["limits"]
        assert "pybreaker" not in threads["hammer"]
    check_redis_case(document, without_peers)
    replay = document["cases"]["replay"]
    assert replay["histories"]["calm"]["rows_per_second"] > 0
    assert replay["histories"]["turbulent"]["trips"]["max_drawdown"] == 1
    assert "ns_per_call" in replay["measurements"]["check_now"]
    assert "replay(): rows replayed per second, calm history" in [target["name"] for target in document["targets"]]


def check_redis_case(document: Dict[str, Any], without_peers: bool) -> None:
    redis_case = document["cases"]["redis"]
    names = [target["name"] for target in document["targets"]]
    assert "redis: round trips per record_order() decision" in names
    if without_peers or shutil.which("redis-server") is None:
        assert redis_case["skipped"]
        assert any(note.startswith("skipped:") for note in redis_case["notes"])
        return
    assert redis_case["skipped"] is None
    trips = redis_case["round_trips"]
    assert {"ours_record_order", "ours_record_order_refused", "limits_hit", "ours_breaker_call"} <= set(trips)
    assert trips["ours_record_order"]["decisions"] > 0
    assert trips["ours_record_order"]["round_trips_per_decision"] is not None
    for key in ("ours_record_order", "ours_record_order_refused", "limits_hit", "limits_hit_refused"):
        figure = redis_case["throughput"][key]
        assert figure["skipped"] is None
        assert set(figure["processes"]) == {"1", "4"}
        assert all(run["decisions_per_second"] > 0 for run in figure["processes"].values())
    exactness = redis_case["exactness"]["ours record_order(), 4 processes"]
    assert exactness["attempts"] > exactness["limit_per_minute"]
    assert exactness["admitted"] <= exactness["limit_per_minute"]  # never more (fail closed may admit fewer)
