"""Benchmarks of circuit_breakers against a lock baseline and peer libraries. The one entry point.

    python benchmarks/run.py                  # full run (under 2 minutes on 2 cores), prints the tables
    python benchmarks/run.py --quick          # reduced run for CI smoke tests (under 20 s)
    python benchmarks/run.py --json out.json  # also write every figure as JSON
    python benchmarks/run.py --without pybreaker,limits   # behave as if those peers were missing
    python benchmarks/run.py --without redis              # skip case 7 (as if redis-server were missing)
    python benchmarks/run.py --profile decorator           # cProfile 1e6 calls of one of our hot paths
    python benchmarks/run.py --profile check_order --profile-calls 100000   # ... or of a slower one
    python benchmarks/run.py --profile replay --profile-calls 20000         # replay 20,000 minute rows

Speed is measured and reported, never asserted: the "targets" section says met / not met. The
script fails only when a correctness check fails (can_trade() calling the provider, a rejection
path that does not reject).
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

from cases import Context, closed_path, context_manager, open_rejection, threads_case, trading_case
from harness import CaseResult, Settings, ns
from peers import PEER_MODULES, Peer, load_peers
from ratelimit_cases import rate_limits_case
from redis_cases import redis_case
from replay_cases import REPLAY_HOT_PATHS, replay_case
from subjects import HOT_PATHS, hot_path

import circuit_breakers

CASES: Sequence[Callable[[Context], CaseResult]] = (
    closed_path,
    open_rejection,
    context_manager,
    trading_case,
    rate_limits_case,
    threads_case,
    redis_case,
    replay_case,
)
WITHOUT_CHOICES = (*PEER_MODULES, "redis")


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
    }


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def header(info: Dict[str, Any], peers: Dict[str, Peer], settings: Settings) -> List[str]:
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
        f"versions: {'; '.join(versions)}",
        load_line,
        f"method  : each figure is the median of {settings.reps} repetitions of a tight loop of N calls (N calibrated",
        f"          so a repetition takes ~{settings.rep_seconds * 1000:g} ms), after calibration and one warm-up "
        "repetition; time.perf_counter_ns;",
        "          gc disabled while a repetition runs (as timeit). ns/call includes the loop; 'overhead ns' = ns/call",
        "          minus the bare call f() measured in this run. Every ratio is between figures of this run.",
        "",
    ]


# --- targets ------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    goal: str
    value: Optional[float]
    shown: str
    met: Optional[bool]

    def render(self) -> str:
        verdict = {True: "met", False: "NOT MET", None: "n/a"}[self.met]
        return f"  [{verdict:>7}] {self.name:<66} {self.shown:>22}   goal {self.goal}"

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "goal": self.goal, "value": self.value, "shown": self.shown, "met": self.met}


def _ratio_of(case: CaseResult, label: str) -> Optional[float]:
    for ratio in case.ratios:
        if ratio.label == label:
            return ratio.value
    return None


def _at_least(name: str, value: Optional[float], goal: float, unit: str = "x") -> Target:
    shown = "n/a (not measured)" if value is None else f"{value:.2f}{unit}"
    return Target(name, f">= {goal:g}{unit}", value, shown, None if value is None else value >= goal)


def _at_most(name: str, value: Optional[float], goal: float, unit: str = "x", strict: bool = False) -> Target:
    shown = "n/a (not measured)" if value is None else f"{value:,.2f}{unit}"
    met = None if value is None else (value < goal if strict else value <= goal)
    return Target(name, f"{'<' if strict else '<='} {goal:g}{unit}", value, shown, met)


def _check(name: str, ok: Optional[bool], shown: str) -> Target:
    return Target(name, "yes", None, shown, ok)


def _equals(name: str, value: Optional[float], goal: float) -> Target:
    shown = "n/a (not measured)" if value is None else f"{value:.2f}"
    return Target(name, f"== {goal:g}", value, shown, None if value is None else abs(value - goal) < 0.005)


def redis_targets(redis: Optional[CaseResult]) -> List[Target]:
    extra = {} if redis is None else redis.extra
    trips = extra.get("round_trips", {}).get("ours_record_order", {}).get("round_trips_per_decision")
    out = [_equals("redis: round trips per record_order() decision", trips, 1)]
    for processes in (1, 4):
        label = f"decisions/s, admitting, {processes} proc: ours record_order() / limits"
        out.append(
            _at_least(
                f"redis, {processes} process{'es' if processes > 1 else ''}: ours decisions/s / limits' (admitting)",
                None if redis is None else _ratio_of(redis, label),
                1,
            )
        )
    return out


def targets(cases: Dict[str, CaseResult]) -> List[Target]:
    closed, rejection, trading = cases["closed_path"], cases["open_rejection"], cases["trading"]
    limits, threads = cases["rate_limits"], cases["threads"]
    closed_ns = ns(closed.results.get("ours_decorator"))
    allow_ns = ns(rejection.results.get("ours_allow"))
    out = [
        _at_most(
            "closed-path decorator overhead (@breaker) / lock-baseline overhead",
            _ratio_of(closed, "overhead: ours @breaker / lock baseline"),
            3,
        ),
        _at_least("pybreaker's decorator overhead / ours", _ratio_of(closed, "overhead: pybreaker / ours @breaker"), 2),
        _at_least(
            "circuitbreaker's decorator overhead / ours",
            _ratio_of(closed, "overhead: circuitbreaker / ours @breaker"),
            2,
        ),
        _at_most(
            "allow() while OPEN / closed-path call (ns/call)",
            None if allow_ns is None or closed_ns is None else allow_ns / closed_ns,
            1,
            strict=True,
        ),
        _at_least(
            "pybreaker's rejection / our raising rejection",
            _ratio_of(rejection, "ns/call: pybreaker rejection / ours raising rejection"),
            2,
        ),
        _at_least(
            "circuitbreaker's rejection / our raising rejection",
            _ratio_of(rejection, "ns/call: circuitbreaker rejection / ours raising rejection"),
            2,
        ),
    ]
    for key, label in (
        ("can_trade_clear", "can_trade(), all clear"),
        ("can_trade_clear_monitoring", "can_trade(), all clear, monitoring"),
        ("can_trade_tripped", "can_trade(), one breaker tripped"),
    ):
        out.append(_at_most(f"{label} (ns/call)", ns(trading.results.get(key)), 1000, unit=" ns", strict=True))
    out.append(
        _at_most(
            "check_order(), all checks on (ns/call)",
            ns(trading.results.get("check_order_all")),
            5000,
            unit=" ns",
            strict=True,
        )
    )
    for ours, peer in (
        ("try_acquire()", "limits"),
        ("try_acquire()", "pyrate-limiter"),
        ("record_order()", "limits"),
        ("record_order()", "pyrate-limiter"),
    ):
        value = _ratio_of(limits, f"ns/call, admitting: {peer} / ours {ours}")
        out.append(_at_least(f"{peer} / ours {ours}, admitting (ns/call)", value, 3))
    hammer = threads.extra.get("hammer", {}).get("ours @breaker", {})
    out.append(_at_least("ours: 8-thread throughput / single-thread", hammer.get("scaling"), 0.5))
    sleep = threads.extra.get("one_ms_calls", {}).get("ours @breaker", {})
    out.append(_at_least("ours: 1 ms calls, 8 threads, throughput / unprotected", sleep.get("vs_unprotected"), 0.9))
    out.extend(redis_targets(cases.get("redis")))
    calm = cases["replay"].extra.get("histories", {}).get("calm", {})
    goal = cases["replay"].extra.get("goal_rows_per_second", 50_000)
    rate = calm.get("rows_per_second")
    out.append(_at_least("replay(): rows replayed per second, calm history", rate, goal, " rows/s"))
    return out


def checks(cases: Dict[str, CaseResult]) -> List[Target]:
    """Correctness observed during the run (reported beside the speed targets)."""
    limits, trading = cases["rate_limits"], cases["trading"]
    out = []
    for name, check in limits.extra.get("exactness", {}).items():
        if name.startswith("ours"):
            exact = check["exact"]
            out.append(_check(f"exact: {name}", exact, {True: "yes", False: "no", None: "n/a"}[exact]))
    for name, reading in limits.extra.get("memory", {}).items():
        if name.startswith("ours"):
            bounded = reading["bounded"]
            shown = f"{reading['entries_kept']} entries, {reading['traced_growth_bytes_over_last_window']:+,} B"
            out.append(_check(f"memory bounded: {name}", bounded, shown))
    calls = sum(trading.extra.get("provider_calls_during_timed_loops", {}).values())
    out.append(_check("can_trade()/get_blocking_reasons() made no provider call", calls == 0, f"{calls} calls"))
    redis = cases.get("redis")
    for name, check in ({} if redis is None else redis.extra.get("exactness", {})).items():
        if name.startswith("ours"):
            shown = f"{check['admitted']} of {check['limit_per_minute']} admitted"
            out.append(_check(f"exact: redis, {name}", check["exact"], shown))
    if redis is None or redis.extra.get("skipped"):
        out.append(_check("exact: redis, ours record_order(), 4 processes", None, "n/a (skipped)"))
    return out


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


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced run for a CI smoke test (under 20 s)")
    parser.add_argument("--json", metavar="PATH", help="write every figure, ratio and target as JSON to PATH")
    parser.add_argument(
        "--without",
        metavar="PEERS",
        action="append",
        default=[],
        help=f"comma-separated peers to treat as missing, or redis to skip case 7 ({', '.join(WITHOUT_CHOICES)})",
    )
    parser.add_argument("--profile", metavar="PATH", choices=sorted(PROFILED), help="cProfile one of our hot paths")
    parser.add_argument("--profile-calls", type=int, default=1_000_000, help="calls under --profile (default 1e6)")
    parser.add_argument("--profile-top", type=int, default=15, help="functions listed by --profile (default 15)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.profile:
        return profile(args.profile, args.profile_calls, args.profile_top)
    disabled = {name.strip() for item in args.without for name in item.split(",") if name.strip()}
    unknown = disabled - set(WITHOUT_CHOICES)
    if unknown:
        print(f"unknown names in --without: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    settings = Settings.reduced() if args.quick else Settings.full()
    peers = load_peers(disabled)
    info = machine()
    for line in header(info, peers, settings):
        print(line)
    ctx = Context(settings, peers, frozenset(disabled))
    results: Dict[str, CaseResult] = {}
    for case in CASES:
        case_started = time.perf_counter()
        result = case(ctx)
        result.seconds = time.perf_counter() - case_started
        results[result.key] = result
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


if __name__ == "__main__":
    sys.exit(main())
