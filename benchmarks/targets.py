"""The speed targets and correctness checks printed after the tables, each computed from the case it belongs to.

A case left out with ``--case`` contributes neither targets nor checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from .harness import CaseResult, ns


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


# --- speed targets, by case ---------------------------------------------------------------------------


def _breaker_closed(closed: CaseResult) -> List[Target]:
    return [
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
    ]


def _breaker_open(rejection: CaseResult) -> List[Target]:
    return [
        _at_most(
            "allow() while OPEN / closed-path call (ns/call)",
            _ratio_of(rejection, "ns/call: ours allow() while OPEN / ours closed-path call"),
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


def _trading(trading: CaseResult) -> List[Target]:
    out = []
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
    return out


def _rate_limits(limits: CaseResult) -> List[Target]:
    out = []
    for ours, peer in (
        ("try_acquire()", "limits"),
        ("try_acquire()", "pyrate-limiter"),
        ("record_order()", "limits"),
        ("record_order()", "pyrate-limiter"),
    ):
        value = _ratio_of(limits, f"ns/call, admitting: {peer} / ours {ours}")
        out.append(_at_least(f"{peer} / ours {ours}, admitting (ns/call)", value, 3))
    return out


def _threads(threads: CaseResult) -> List[Target]:
    hammer = threads.extra.get("hammer", {}).get("ours @breaker", {})
    sleep = threads.extra.get("one_ms_calls", {}).get("ours @breaker", {})
    return [
        _at_least("ours: 8-thread throughput / single-thread", hammer.get("scaling"), 0.5),
        _at_least("ours: 1 ms calls, 8 threads, throughput / unprotected", sleep.get("vs_unprotected"), 0.9),
    ]


def _redis(redis: CaseResult) -> List[Target]:
    trips = redis.extra.get("round_trips", {}).get("ours_record_order", {}).get("round_trips_per_decision")
    out = [_equals("redis: round trips per record_order() decision", trips, 1)]
    for processes in (1, 4):
        label = f"decisions/s, admitting, {processes} proc: ours record_order() / limits"
        out.append(
            _at_least(
                f"redis, {processes} process{'es' if processes > 1 else ''}: ours decisions/s / limits' (admitting)",
                _ratio_of(redis, label),
                1,
            )
        )
    return out


def _replay(replay: CaseResult) -> List[Target]:
    calm = replay.extra.get("histories", {}).get("calm", {})
    goal = replay.extra.get("goal_rows_per_second", 50_000)
    return [_at_least("replay(): rows replayed per second, calm history", calm.get("rows_per_second"), goal, " rows/s")]


TARGETS: Dict[str, Callable[[CaseResult], List[Target]]] = {
    "breaker-closed": _breaker_closed,
    "breaker-open": _breaker_open,
    "trading": _trading,
    "rate-limits": _rate_limits,
    "threads": _threads,
    "redis": _redis,
    "replay": _replay,
}


def targets(cases: Dict[str, CaseResult]) -> List[Target]:
    """The speed targets of the cases that ran, in the order of the cases."""
    return [target for name, build in TARGETS.items() if name in cases for target in build(cases[name])]


# --- correctness checks -------------------------------------------------------------------------------


def checks(cases: Dict[str, CaseResult]) -> List[Target]:
    """Correctness observed during the run (reported beside the speed targets)."""
    out = []
    limits = cases.get("rate-limits")
    if limits is not None:
        for name, check in limits.extra.get("exactness", {}).items():
            if name.startswith("ours"):
                exact = check["exact"]
                out.append(_check(f"exact: {name}", exact, {True: "yes", False: "no", None: "n/a"}[exact]))
        for name, reading in limits.extra.get("memory", {}).items():
            if name.startswith("ours"):
                bounded = reading["bounded"]
                shown = f"{reading['entries_kept']} entries, {reading['traced_growth_bytes_over_last_window']:+,} B"
                out.append(_check(f"memory bounded: {name}", bounded, shown))
    trading = cases.get("trading")
    if trading is not None:
        calls = sum(trading.extra.get("provider_calls_during_timed_loops", {}).values())
        out.append(_check("can_trade()/get_blocking_reasons() made no provider call", calls == 0, f"{calls} calls"))
    redis = cases.get("redis")
    if redis is not None:
        for name, check in redis.extra.get("exactness", {}).items():
            if name.startswith("ours"):
                shown = f"{check['admitted']} of {check['limit_per_minute']} admitted"
                out.append(_check(f"exact: redis, {name}", check["exact"], shown))
        if redis.extra.get("skipped"):
            out.append(_check("exact: redis, ours record_order(), 4 processes", None, "n/a (skipped)"))
    return out
