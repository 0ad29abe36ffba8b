"""Smoke test of the benchmark suite: a quick run finishes and reports every case, in both forms.

Speed is measured, never asserted: nothing here looks at a timing or at whether a target is met.
Two quick runs, started together so that the test takes about as long as the longer one:

- ``python benchmarks/run.py --quick``: every case, with the peers installed (the ``bench`` extra;
  skipped locally without them, a failure in CI). The ``redis`` case runs against a throwaway
  redis-server when one is installed.
- ``python -m benchmarks --quick --without <every peer>,redis``: the skip paths of the cases that
  have peers (or every case, where the first run is skipped), chosen by name with ``--case``.

Neither run gets PYTHONPATH: each form must measure this checkout's package by itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from benchmarks.runner import BY_NAME, CASES, main, select_cases

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("pybreaker", "circuitbreaker", "limits", "pyrate-limiter")
ALL_CASES = {"breaker-closed", "breaker-open", "breaker-with", "trading", "rate-limits", "threads", "redis", "replay"}
# The cases whose peers can be missing (breaker-open skips them the same way as breaker-closed).
SKIP_PATH_CASES = ["breaker-closed", "rate-limits", "threads", "redis"]
TIMEOUT = 90.0


def missing_peers() -> List[str]:
    return [name for name in PEERS if importlib.util.find_spec(name.replace("-", "_")) is None]


@dataclass
class Run:
    """A quick run started in the background; ``document()`` waits for it and reads its JSON."""

    process: subprocess.Popen[str]
    output: Path

    def document(self) -> Dict[str, Any]:
        try:
            stdout, stderr = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            pytest.fail(f"the benchmark run took more than {TIMEOUT:g} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
        assert self.process.returncode == 0, f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
        assert "Targets" in stdout
        document: Dict[str, Any] = json.loads(self.output.read_text(encoding="utf-8"))
        return document


def start(command: List[str], output: Path) -> Run:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    process = subprocess.Popen(
        [*command, "--quick", "--json", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    return Run(process, output)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Optional[Run]]]:
    """Both runs, started at once; the peer run is None where the peers are missing outside CI."""
    directory = tmp_path_factory.mktemp("bench")
    with_peers = not missing_peers()
    without = ["--without", ",".join((*PEERS, "redis"))]
    cases = ["--case", ",".join(SKIP_PATH_CASES)] if with_peers else []
    started: Dict[str, Optional[Run]] = {
        "with_peers": start([sys.executable, "benchmarks/run.py"], directory / "peers.json") if with_peers else None,
        "without_peers": start([sys.executable, "-m", "benchmarks", *without, *cases], directory / "without.json"),
    }
    yield started
    for run in started.values():
        if run is not None and run.process.poll() is None:
            run.process.kill()
            run.process.communicate()


def test_script_run_reports_every_case(runs: Dict[str, Optional[Run]]) -> None:
    run = runs["with_peers"]
    if run is None:  # the README's test extra does not install them; CI installs the dev extra, which does
        message = f"benchmark peers not installed: {', '.join(missing_peers())} (pip install -e '.[bench]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    document = run.document()
    assert set(document["cases"]) == ALL_CASES
    check_document(document)
    for name in PEERS:
        assert document["peers"][name]["available"] is True
    assert {"ours_decorator", "ours_call", "lock_baseline", "pybreaker", "circuitbreaker"} <= set(
        document["cases"]["breaker-closed"]["measurements"]
    )
    rejection = document["cases"]["breaker-open"]
    assert {"ours_raise", "ours_call_raise", "ours_allow", "pybreaker", "circuitbreaker"} <= set(
        rejection["measurements"]
    )
    assert rejection["ratios"]["ns/call: ours breaker.call(f) rejection / @breaker rejection"] is not None
    check_redis_case(document["cases"]["redis"], skipped=shutil.which("redis-server") is None)


def test_module_run_takes_the_skip_paths(runs: Dict[str, Optional[Run]]) -> None:
    run = runs["without_peers"]
    assert run is not None
    document = run.document()
    expected = set(SKIP_PATH_CASES) if runs["with_peers"] is not None else ALL_CASES
    assert set(document["cases"]) == expected
    check_document(document)
    for name in PEERS:
        assert document["peers"][name]["available"] is False
    assert "skipped" in document["cases"]["breaker-closed"]["measurements"]["pybreaker"]
    assert "skipped" in document["cases"]["breaker-closed"]["measurements"]["circuitbreaker"]
    assert "skipped" in document["cases"]["rate-limits"]["measurements"]["limits"]
    assert "pybreaker" not in document["cases"]["threads"]["hammer"]
    check_redis_case(document["cases"]["redis"], skipped=True)


def target_names(document: Dict[str, Any]) -> List[str]:
    return [target["name"] for target in document["targets"]]


def check_document(document: Dict[str, Any]) -> None:
    """What every run must hold for the cases it ran."""
    cases = document["cases"]
    assert document["mode"] == "quick"
    assert document["machine"]["cpu_count"]
    assert Path(document["machine"]["package"]) == ROOT / "circuit_breakers"  # this checkout, not an install
    for case in cases.values():
        for figure in case["measurements"].values():
            assert "ns_per_call" in figure or "skipped" in figure
    for key in {"breaker-closed", "breaker-open", "breaker-with", "trading", "rate-limits"} & set(cases):
        assert "ns_per_call" in cases[key]["measurements"]["bare"]
    for target in document["targets"]:
        assert target["met"] in (True, False, None)
    names = target_names(document)
    assert ("replay(): rows replayed per second, calm history" in names) == ("replay" in cases)
    assert ("redis: round trips per record_order() decision" in names) == ("redis" in cases)
    threads = cases["threads"]
    assert "ours @breaker" in threads["hammer"]
    assert "unprotected" in threads["one_ms_calls"]
    rate_limits = cases["rate-limits"]
    assert rate_limits["exactness"]
    assert rate_limits["memory"]
    if "trading" in cases:
        check_trading_case(cases["trading"], names)
    if "replay" in cases:
        replay = cases["replay"]
        assert replay["histories"]["calm"]["rows_per_second"] > 0
        assert replay["histories"]["turbulent"]["trips"]["max_drawdown"] == 1
        assert "ns_per_call" in replay["measurements"]["check_now"]


def check_trading_case(trading: Dict[str, Any], names: List[str]) -> None:
    assert trading["provider_calls_during_timed_loops"]
    for key in ("check_order_all", "check_order_refused", "check_order_default", "trade_guard_order"):
        assert "ns_per_call" in trading["measurements"][key]
        calls = trading["order_provider_calls"][key]
        assert calls["orders"] > 0
        assert calls["per_order"] is not None
    assert "check_order(), all checks on (ns/call)" in names


def check_redis_case(redis_case: Dict[str, Any], skipped: bool) -> None:
    if skipped:
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


# --- choosing cases (in this process: no run) ---------------------------------------------------------


def test_cases_are_chosen_by_name_in_the_suites_order() -> None:
    notes: List[str] = []
    chosen = select_cases(["replay,breaker-open", "breaker-open", " threads "], notes)
    assert [case.name for case in chosen] == ["breaker-open", "threads", "replay"]
    assert notes == []
    assert [case.name for case in select_cases([], notes)] == [case.name for case in CASES]
    assert set(BY_NAME) == ALL_CASES


def test_old_case_numbers_name_their_case_with_a_note() -> None:
    notes: List[str] = []
    chosen = select_cases(["3", "8"], notes)
    assert [case.name for case in chosen] == ["breaker-with", "replay"]
    assert notes == [
        "--case 3 is --case breaker-with; case numbers will stop being accepted",
        "--case 8 is --case replay; case numbers will stop being accepted",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--case", "breaker-closed,nope"], "unknown case 'nope' in --case; choose from: breaker-closed, "),
        (["--case", "9"], "unknown case '9' in --case"),
        (["--without", "redis,pybreakr"], "unknown names in --without: pybreakr; choose from: pybreaker, "),
    ],
)
def test_bad_names_are_usage_errors(argv: List[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv, prog="bench")
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""  # nothing measured
