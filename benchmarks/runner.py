"""Benchmarks of circuit_breakers against a bare call, a lock baseline and peer libraries.

Run from the repository root, as ``python -m benchmarks [options]`` or ``python benchmarks/run.py [options]``:

    python -m benchmarks                       # every case, full run (about 2 minutes on 2 cores)
    python -m benchmarks --quick               # every case, reduced run (a smoke test, not figures to quote)
    python -m benchmarks --case breaker-open   # one case (repeat --case, or separate names with commas)
    python -m benchmarks --json out.json       # also write every figure as JSON
    python -m benchmarks --without pybreaker,limits   # behave as if those peers were missing
    python -m benchmarks --without redis              # skip the redis case (as if redis-server were missing)
    python -m benchmarks --profile decorator          # cProfile 1e6 calls of one of our hot paths
    python -m benchmarks --profile check_order --profile-calls 100000   # ... or of a slower one
    python -m benchmarks --profile replay --profile-calls 20000         # replay 20,000 minute rows

``--help`` lists the cases.

Speed is measured and reported, never asserted: the "targets" section says met / not met. The
script fails only when a correctness check fails (can_trade() calling the provider, a rejection
path that does not reject). benchmarks/README.md says how to read every table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import circuit_breakers

from .cases import Context, closed_path, context_manager, open_rejection, threads_case, trading_case
from .harness import CaseResult, Settings
from .peers import PEER_MODULES, Peer, load_peers
from .ratelimit_cases import rate_limits_case
from .redis_cases import redis_case
from .replay_cases import REPLAY_HOT_PATHS, replay_case
from .subjects import HOT_PATHS, hot_path
from .targets import checks, targets


@dataclass(frozen=True)
class Case:
    """A benchmark case: the name ``--case`` takes (also its key in the JSON), and what it measures."""

    name: str
    run: Callable[[Context], CaseResult]
    about: str


CASES: Sequence[Case] = (
    Case("breaker-closed", closed_path, "@breaker, @circuit_breaker and breaker.call(f) while CLOSED; peers"),
    Case("breaker-open", open_rejection, "rejection while OPEN: @breaker, breaker.call(f), allow(); peers"),
    Case("breaker-with", context_manager, "`with breaker:` while CLOSED"),
    Case("trading", trading_case, "can_trade(), get_blocking_reasons(), check_order(), trade_guard()"),
    Case("rate-limits", rate_limits_case, "RateLimiter.try_acquire(), record_order(); exactness, memory; peers"),
    Case("threads", threads_case, "throughput of 1-8 threads through one breaker; 1 ms calls"),
    Case("redis", redis_case, "RedisStore paths across processes: round trips, decisions/s, exactness"),
    Case("replay", replay_case, "replay(): rows per second; the cost of check_now()"),
)
BY_NAME = {case.name: case for case in CASES}
BY_NUMBER = {str(index): case.name for index, case in enumerate(CASES, start=1)}
"""The numbers cases had before they had names (accepted by --case, with a note, for a while)."""
WITHOUT = (*PEER_MODULES, "redis")


class UsageError(Exception):
    """A bad command line (exit status 2, as argparse)."""


def select_cases(items: Sequence[str], notes: List[str]) -> List[Case]:
    """The cases named by ``--case`` (all when none), in the suite's order, each once.

    Old case numbers are translated, with a note appended to ``notes``; raises UsageError naming an unknown item.
    """
    names = [name.strip() for item in items for name in item.split(",") if name.strip()]
    if not names:
        return list(CASES)
    chosen = set()
    for given in names:
        name = BY_NUMBER.get(given, given)
        if name not in BY_NAME:
            raise UsageError(f"unknown case {given!r} in --case; choose from: {', '.join(BY_NAME)}")
        if name != given:
            notes.append(f"--case {given} is --case {name}; case numbers will stop being accepted")
        chosen.add(name)
    return [case for case in CASES if case.name in chosen]


# --- machine ------------------------------------------------------------------------------------------


def machine() -> Dict[str, Any]:
    try:
        usable: Optional[int] = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "compiler": platform.python_compiler(),
        "switch_interval_s": sys.getswitchinterval(),
        "load_average_at_start": load_average(),
        "package": os.path.dirname(os.path.abspath(circuit_breakers.__file__)),
    }


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def header(info: Dict[str, Any], peers: Dict[str, Peer], settings: Settings, cases: Sequence[Case]) -> List[str]:
    cpus = f"{info['cpu_count']} CPUs" + (f" ({info['usable_cpus']} usable)" if info["usable_cpus"] else "")
    versions = [f"circuit_breakers {circuit_breakers.__version__}"]
    for peer in peers.values():
        versions.append(f"{peer.name} {peer.version}" if peer.available else f"{peer.name} (skipped: {peer.reason})")
    mode = "quick run (--quick)" if settings.quick else "full run"
    load = info["load_average_at_start"]
    busy = load is not None and info["cpu_count"] and load > 0.5 * info["cpu_count"]
    load_line = f"load    : 1-minute load average {load} at the start" + (
        " (other programs are busy on this machine: expect noisy figures; compare medians with min-max)" if busy else ""
    )
    return [
        f"circuit_breakers benchmarks, {mode}",
        f"machine : {info['platform']}, {info['machine']}, {cpus}",
        f"python  : {info['implementation']} {info['python']} ({info['python_build']}) [{info['compiler']}]",
        f"package : {info['package']}",
        f"versions: {'; '.join(versions)}",
        f"cases   : {', '.join(case.name for case in cases)}",
        load_line,
        f"method  : each figure is the median of {settings.reps} repetitions of a tight loop of N calls (N calibrated",
        f"          so a repetition takes ~{settings.rep_seconds * 1000:g} ms), after calibration and one warm-up "
        "repetition; time.perf_counter_ns;",
        "          gc disabled while a repetition runs (as timeit). ns/call includes the loop; 'overhead ns' = ns/call",
        "          minus the bare call f() measured in the same case. Every ratio is between figures of this run.",
        "",
    ]


# --- profiling ----------------------------------------------------------------------------------------


PROFILED = {**HOT_PATHS, **REPLAY_HOT_PATHS}


def profile(name: str, calls: int, top: int) -> int:
    loop = hot_path(name) if name in HOT_PATHS else PROFILED[name]() if name in PROFILED else None
    if loop is None:
        print(f"unknown hot path {name!r}; choose from: {', '.join(PROFILED)}", file=sys.stderr)
        return 2
    loop(1000)  # warm-up, outside the profile
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(loop, calls)
    elapsed = time.perf_counter() - start
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    print(
        f"cProfile of {calls:,} calls of hot path {name!r} ({elapsed:.2f} s under the profiler), top {top} by tottime"
    )
    print(stream.getvalue().rstrip())
    return 0


# --- main ---------------------------------------------------------------------------------------------


def parser_for(prog: Optional[str]) -> argparse.ArgumentParser:
    width = max(len(case.name) for case in CASES)
    listing = "\n".join(f"  {case.name:<{width}}  {case.about}" for case in CASES)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=f"cases (all by default, in this order):\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="reduced run for a smoke test (about 20 s, every case)")
    parser.add_argument(
        "--case",
        metavar="NAMES",
        action="append",
        default=[],
        help="run only these cases: comma-separated names, or repeat the option (listed below)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure, ratio and target as JSON to PATH")
    parser.add_argument(
        "--without",
        metavar="PEERS",
        action="append",
        default=[],
        help=f"comma-separated peers to treat as missing, or redis to skip the redis case: {', '.join(WITHOUT)}",
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        choices=sorted(PROFILED),
        help=f"cProfile one of our hot paths instead of running the cases: {', '.join(PROFILED)}",
    )
    parser.add_argument("--profile-calls", type=int, default=1_000_000, help="calls under --profile (default 1e6)")
    parser.add_argument("--profile-top", type=int, default=15, help="functions listed by --profile (default 15)")
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run the cases chosen on the command line ``argv`` (sys.argv[1:] by default); the exit status."""
    parser = parser_for(prog)
    args = parser.parse_args(argv)
    if args.profile:
        return profile(args.profile, args.profile_calls, args.profile_top)
    disabled = {name.strip() for item in args.without for name in item.split(",") if name.strip()}
    unknown = disabled - set(WITHOUT)
    if unknown:
        parser.error(f"unknown names in --without: {', '.join(sorted(unknown))}; choose from: {', '.join(WITHOUT)}")
    notes: List[str] = []
    try:
        chosen = select_cases(args.case, notes)
    except UsageError as exc:
        parser.error(str(exc))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    started = time.perf_counter()
    settings = Settings.reduced() if args.quick else Settings.full()
    peers = load_peers(disabled)
    info = machine()
    for line in header(info, peers, settings, chosen):
        print(line)
    ctx = Context(settings, peers, frozenset(disabled))
    results: Dict[str, CaseResult] = {}
    for case in chosen:
        case_started = time.perf_counter()
        result = case.run(ctx)
        result.seconds = time.perf_counter() - case_started
        results[case.name] = result
        print("\n".join(result.render()), flush=True)

    speed, correctness = targets(results), checks(results)
    print("Targets")
    print("=======")
    for target in speed:
        print(target.render())
    print("  checks")
    for check in correctness:
        print(check.render())
    met = sum(1 for target in speed if target.met)
    missing = sum(1 for target in speed if target.met is None)
    elapsed = time.perf_counter() - started
    not_met = len(speed) - met - missing
    info["load_average_at_end"] = load_average()
    print(f"\n{met} of {len(speed)} targets met, {not_met} not met, {missing} n/a; run took {elapsed:.1f} s", end="")
    print(f" (load average at the end: {info['load_average_at_end']})")

    if args.json:
        document = {
            "machine": info,
            "mode": "quick" if settings.quick else "full",
            "settings": {key: value for key, value in vars(settings).items()},
            "versions": {"circuit_breakers": circuit_breakers.__version__},
            "peers": {name: peer.to_json() for name, peer in peers.items()},
            "cases": {key: result.to_json() for key, result in results.items()},
            "targets": [target.to_json() for target in speed],
            "checks": [check.to_json() for check in correctness],
            "elapsed_seconds": round(elapsed, 2),
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, default=str)
            handle.write("\n")
    return 0
