"""Benchmark case ``rate-limits``: rate limiters. Speed (admitting and refusing), exactness, and memory.

Peers: limits' in-memory moving window (``MovingWindowRateLimiter(MemoryStorage())``, ``hit(item)``)
and pyrate-limiter's in-memory limiter (v4 API: ``Limiter(Rate(n, Duration.MINUTE))``,
``try_acquire(name, 1, False)``: non-blocking, so a refusal returns False instead of sleeping).
"""

from __future__ import annotations

import functools
import gc
import random
import threading
import time
import tracemalloc
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from circuit_breakers import Limit, ManualClock, RateLimiter, TradingBreakerConfig, TradingCircuitBreakers

from .cases import Context, calls, ns_ratio, peer_bench, timing_table
from .harness import Bench, CaseResult, Loop, Settings, Table, call_loop, measure_group
from .peers import Peer
from .subjects import ADMIT_ALL, CountingProvider, trading, trivial

Attempt = Callable[[], bool]
"""One non-blocking attempt to take a permit: True if admitted."""

PYRATE_NAME = "bench"


# --- the limiters under test ------------------------------------------------------------------------


def ours_limiter(max_calls: int, period: float) -> Tuple[Attempt, Callable[[], Optional[int]]]:
    limiter = RateLimiter(Limit(max_calls, period))
    return limiter.try_acquire, lambda: _ours_entries(limiter)


def ours_record_order(per_minute: int, per_hour: int) -> Tuple[Attempt, Callable[[], Optional[int]]]:
    breakers, _ = trading(orders_per_minute=per_minute, orders_per_hour=per_hour)
    return breakers.record_order, lambda: _ours_entries(getattr(breakers, "_limiter", None))


def _ours_entries(limiter: object) -> Optional[int]:
    windows = getattr(limiter, "_windows", None)  # private, read only to show what is kept (None if renamed)
    return None if windows is None else sum(len(window[0]) for window in windows)


def limits_limiter(module: Any, spec: str) -> Tuple[Attempt, Callable[[], Optional[int]]]:
    storage = module.storage.MemoryStorage()
    limiter = module.strategies.MovingWindowRateLimiter(storage)
    item = module.parse(spec)
    hit = limiter.hit

    def entries() -> Optional[int]:
        events = getattr(storage, "events", None)
        return None if events is None else sum(len(value) for value in events.values())

    return lambda: bool(hit(item)), entries


def pyrate_limiter(
    module: Any, limit: int, interval_ms: int, closers: List[Callable[[], None]]
) -> Tuple[Attempt, Callable[[], Optional[int]]]:
    limiter = module.Limiter(module.Rate(limit, interval_ms))
    closers.append(getattr(limiter, "close", lambda: None))
    acquire = limiter.try_acquire

    def entries() -> Optional[int]:
        try:
            return sum(len(bucket.items) for bucket in limiter.buckets())
        except AttributeError:
            return None

    return lambda: bool(acquire(PYRATE_NAME, 1, False)), entries


def filled(attempt: Attempt, limit: int) -> Attempt:
    """Take every permit of the window, so that the next attempts are refused."""
    for _ in range(limit):
        if not attempt():
            raise AssertionError("a fresh limiter refused a permit")
    if attempt():
        raise AssertionError("a full limiter admitted a permit")
    return attempt


# --- speed ------------------------------------------------------------------------------------------


def _limits_bench(module: Any, admit: bool) -> Bench:
    strategy, storage = module.strategies.MovingWindowRateLimiter, module.storage.MemoryStorage
    if admit:
        item = module.parse(f"{ADMIT_ALL}/minute")
        return Bench(lambda: call_loop(strategy(storage()).hit, item), fresh=True)
    return calls(filled(limits_limiter(module, "10/minute")[0], 10))


def _pyrate_bench(module: Any, admit: bool, closers: List[Callable[[], None]]) -> Bench:
    if admit:
        previous: List[Any] = []

        def build() -> Loop:
            close_last()  # the limiter of the last repetition: stop its leaker thread
            limiter = module.Limiter(module.Rate(ADMIT_ALL, module.Duration.MINUTE))
            if hasattr(limiter, "close"):
                previous.append(limiter)
            return call_loop(limiter.try_acquire, PYRATE_NAME, 1, False)

        def close_last() -> None:
            while previous:
                previous.pop().close()

        closers.append(close_last)
        return Bench(build, fresh=True)
    return calls(filled(pyrate_limiter(module, 10, 60_000, closers)[0], 10))


def _speed(ctx: Context, case: CaseResult, closers: List[Callable[[], None]]) -> None:
    limits_peer, pyrate_peer = ctx.peer("limits"), ctx.peer("pyrate-limiter")
    res = case.results = measure_group(
        {
            "bare": calls(trivial),
            "ours_try_acquire": Bench(lambda: call_loop(RateLimiter(Limit(ADMIT_ALL, 60)).try_acquire), fresh=True),
            "ours_record_order": Bench(
                lambda: call_loop(trading(orders_per_minute=ADMIT_ALL, orders_per_hour=ADMIT_ALL)[0].record_order),
                fresh=True,
            ),
            "limits": peer_bench(limits_peer, lambda module: _limits_bench(module, True)),
            "pyrate_limiter": peer_bench(pyrate_peer, lambda module: _pyrate_bench(module, True, closers)),
            "ours_try_acquire_refused": calls(filled(RateLimiter(Limit(10, 60)).try_acquire, 10)),
            "ours_record_order_refused": calls(filled(trading()[0].record_order, 10)),
            "limits_refused": peer_bench(limits_peer, lambda module: _limits_bench(module, False)),
            "pyrate_limiter_refused": peer_bench(pyrate_peer, lambda module: _pyrate_bench(module, False, closers)),
        },
        ctx.settings,
    )
    rows = [
        ("bare call f()", res["bare"]),
        ("ours RateLimiter.try_acquire(), admitting", res["ours_try_acquire"]),
        ("ours TradingCircuitBreakers.record_order(), admitting", res["ours_record_order"]),
        ("limits moving window hit(), admitting", res["limits"]),
        ("pyrate-limiter try_acquire(), admitting", res["pyrate_limiter"]),
        ("ours RateLimiter.try_acquire(), refusing", res["ours_try_acquire_refused"]),
        ("ours record_order(), refusing", res["ours_record_order_refused"]),
        ("limits moving window hit(), refusing", res["limits_refused"]),
        ("pyrate-limiter try_acquire(), refusing", res["pyrate_limiter_refused"]),
    ]
    case.tables.append(timing_table("speed", rows, res["bare"], case.notes))
    admit, refuse = "ns/call, admitting:", "ns/call, refusing:"
    case.ratios = [
        ns_ratio(f"{admit} limits / ours try_acquire()", res["limits"], res["ours_try_acquire"]),
        ns_ratio(f"{admit} pyrate-limiter / ours try_acquire()", res["pyrate_limiter"], res["ours_try_acquire"]),
        ns_ratio(f"{admit} limits / ours record_order()", res["limits"], res["ours_record_order"]),
        ns_ratio(f"{admit} pyrate-limiter / ours record_order()", res["pyrate_limiter"], res["ours_record_order"]),
        ns_ratio(f"{refuse} limits / ours try_acquire()", res["limits_refused"], res["ours_try_acquire_refused"]),
        ns_ratio(
            f"{refuse} pyrate-limiter / ours try_acquire()",
            res["pyrate_limiter_refused"],
            res["ours_try_acquire_refused"],
        ),
    ]
    case.notes.append(
        f"admitting: limit {ADMIT_ALL:,} per minute (record_order: per minute and per hour), a fresh limiter for "
        "every repetition; refusing: limit 10 per minute, already full"
    )
    case.notes.append(
        "limits' MemoryStorage inserts each admitted entry at the front of a Python list, so its admitting cost "
        "grows with the number of entries in the window; its figure is the mean over a window filling from 0 to "
        "calls/rep entries"
    )


# --- exactness --------------------------------------------------------------------------------------


@dataclass
class Exactness:
    """Whether a limiter ever admitted more than ``limit`` permits in a window of ``period`` seconds."""

    limiter: str
    clock: str
    limits: Sequence[Tuple[int, float]]
    attempts: int = 0
    admitted: int = 0
    shortest_spans: Optional[List[float]] = None  # per limit: shortest span of limit+1 admissions, seconds
    skipped: Optional[str] = None

    @property
    def exact(self) -> Optional[bool]:
        if self.shortest_spans is None:
            return None
        return all(span >= period for span, (_, period) in zip(self.shortest_spans, self.limits))

    def to_json(self) -> Dict[str, Any]:
        return {
            "clock": self.clock,
            "limits": [{"max_calls": n, "period_seconds": p} for n, p in self.limits],
            "attempts": self.attempts,
            "admitted": self.admitted,
            "shortest_span_seconds": self.shortest_spans,
            "exact": self.exact,
            "skipped": self.skipped,
        }


def shortest_span(starts: Sequence[float], ends: Sequence[float], limit: int) -> float:
    """Shortest time from the start of admission i to the end of admission i+limit (inf if too few).

    Each admission happened somewhere between the start and the end of its call, so a span shorter
    than the period proves that limit+1 permits were admitted within one window.
    """
    spans = [ends[i + limit] - starts[i] for i in range(len(starts) - limit)]
    return min(spans, default=float("inf"))


def real_time_check(result: Exactness, attempt: Attempt, duration: float) -> Exactness:
    """Attempt in bursts of two, 0.5 ms apart, for ``duration`` seconds of real (monotonic) time."""
    starts: List[float] = []
    ends: List[float] = []
    clock = time.perf_counter
    deadline = clock() + duration
    while clock() < deadline:
        for _ in range(2):
            start = clock()
            admitted = attempt()
            end = clock()
            result.attempts += 1
            if admitted:
                starts.append(start)
                ends.append(end)
        time.sleep(0.0005)
    result.admitted = len(starts)
    result.shortest_spans = [shortest_span(starts, ends, limit) for limit, _ in result.limits]
    return result


def driven_check(result: Exactness, attempt: Attempt, clock: ManualClock, unit: float, steps: int) -> Exactness:
    """Drive a ManualClock in binary-exact and random steps (``unit`` = period / 8), bursts of 0-3 attempts."""
    rng = random.Random(20240601)
    times: List[float] = []
    for _ in range(steps):
        clock.advance(rng.choice([0.0, unit, 2 * unit, 8 * unit, rng.uniform(0.0, 2 * unit)]))
        for _ in range(rng.randint(0, 3)):
            result.attempts += 1
            if attempt():
                times.append(clock.monotonic())
    result.admitted = len(times)
    result.shortest_spans = [shortest_span(times, times, limit) for limit, _ in result.limits]
    return result


def _run_concurrently(jobs: List[Tuple[Exactness, Attempt]], duration: float) -> None:
    """Run the real-time checks side by side (each sleeps between bursts, so they barely compete)."""

    def run(check: Exactness, attempt: Attempt) -> None:
        try:
            real_time_check(check, attempt, duration)
        except Exception as exc:
            check.skipped = f"failed: {type(exc).__name__}: {exc}"
            check.shortest_spans = None

    threads = [threading.Thread(target=run, args=job, name=f"exactness-{job[0].limiter}") for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _exactness(ctx: Context, closers: List[Callable[[], None]]) -> List[Exactness]:
    settings = ctx.settings
    period, n = settings.exact_period, 5
    limits_peer, pyrate_peer = ctx.peer("limits"), ctx.peer("pyrate-limiter")

    ours = Exactness("ours RateLimiter", "monotonic", [(n, period)])
    limits_check = Exactness("limits moving window", "time.time() (wall)", [(n, period)])
    pyrate_check = Exactness("pyrate-limiter", "monotonic, ms ticks", [(n, period)])
    jobs: List[Tuple[Exactness, Attempt]] = [(ours, RateLimiter(Limit(n, period)).try_acquire)]
    spec = f"{n} per {period:g} second"  # limits counts whole seconds: keep exact_period a whole number
    peer_jobs: List[Tuple[Peer, Exactness, Callable[[Any], Attempt]]] = [
        (limits_peer, limits_check, lambda module: limits_limiter(module, spec)[0]),
        (pyrate_peer, pyrate_check, lambda module: pyrate_limiter(module, n, round(period * 1000), closers)[0]),
    ]
    for peer, check, build in peer_jobs:
        if not peer.available:
            check.skipped = peer.skip_reason()
            continue
        try:
            jobs.append((check, build(peer.module)))
        except Exception as exc:
            check.skipped = f"{peer.name} failed: {type(exc).__name__}: {exc}"
    _run_concurrently(jobs, settings.exact_duration)

    manual = ManualClock()
    driven = Exactness("ours RateLimiter", "ManualClock, driven", [(n, period)])
    driven_check(driven, RateLimiter(Limit(n, period), clock=manual).try_acquire, manual, period / 8, 4000)

    manual = ManualClock()
    config = TradingBreakerConfig(max_orders_per_minute=10, max_orders_per_hour=100)
    breakers = TradingCircuitBreakers(CountingProvider(), config, clock=manual)
    orders = Exactness("ours record_order()", "ManualClock, driven", [(10, 60.0), (100, 3600.0)])
    driven_check(orders, breakers.record_order, manual, 7.5, 4000)
    return [ours, driven, orders, limits_check, pyrate_check]


def _exactness_table(checks: List[Exactness]) -> Table:
    table = Table(
        "exactness: never more than N admitted in any window of the period",
        ["limiter", "clock", "limit", "attempts", "admitted", "shortest span of N+1", "exact"],
    )
    for check in checks:
        limits = ", ".join(f"{n}/{p:g}s" for n, p in check.limits)
        if check.skipped is not None:
            table.rows.append([check.limiter, check.clock, limits, "-", "-", "-", "skipped"])
            continue
        spans = ", ".join(_seconds(span) for span in check.shortest_spans or [])
        exact = {True: "yes", False: "NO", None: "-"}[check.exact]
        table.rows.append(
            [check.limiter, check.clock, limits, f"{check.attempts:,}", f"{check.admitted:,}", spans, exact]
        )
    return table


def _seconds(value: float) -> str:
    return "never" if value == float("inf") else f"{value:.4f} s"


# --- memory -----------------------------------------------------------------------------------------


@dataclass
class MemoryReading:
    limiter: str
    attempts: int = 0
    admitted: int = 0
    entries: Optional[int] = None
    entries_bound: Optional[int] = None
    first_bytes: Optional[int] = None  # traced: construction plus the first window of attempts
    growth_bytes: Optional[int] = None  # traced: net growth over the last window of attempts
    threshold: int = 0
    skipped: Optional[str] = None

    @property
    def bounded(self) -> Optional[bool]:
        if self.growth_bytes is None:
            return None
        entries_ok = self.entries is None or self.entries_bound is None or self.entries <= self.entries_bound
        return entries_ok and self.growth_bytes <= self.threshold

    def to_json(self) -> Dict[str, Any]:
        return {
            "attempts": self.attempts,
            "admitted": self.admitted,
            "entries_kept": self.entries,
            "entries_bound": self.entries_bound,
            "traced_bytes_after_first_window": self.first_bytes,
            "traced_growth_bytes_over_last_window": self.growth_bytes,
            "growth_threshold_bytes": self.threshold,
            "bounded": self.bounded,
            "skipped": self.skipped,
        }


def _count_admitted(attempt: Attempt, n: int) -> int:
    admitted = 0
    for _ in repeat(None, n):
        if attempt():
            admitted += 1
    return admitted


def memory_check(
    reading: MemoryReading, build: Callable[[], Tuple[Attempt, Callable[[], Optional[int]]]], settings: Settings
) -> MemoryReading:
    """Attempts with tracemalloc on for the first and the last window only (tracing all would take minutes)."""
    window, total = settings.memory_window, settings.memory_attempts
    reading.threshold = max(16_384, window)
    tracemalloc.start()
    try:
        attempt, entries = build()
        reading.admitted = _count_admitted(attempt, window)
        gc.collect()
        reading.first_bytes = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    reading.admitted += _count_admitted(attempt, total - 2 * window)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        reading.admitted += _count_admitted(attempt, window)
        gc.collect()
        reading.growth_bytes = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    reading.attempts = total
    reading.entries = entries()
    return reading


def _memory(ctx: Context, closers: List[Callable[[], None]]) -> List[MemoryReading]:
    settings = ctx.settings
    readings = [
        memory_check(
            MemoryReading("ours RateLimiter 10/min", entries_bound=10), lambda: ours_limiter(10, 60), settings
        ),
        memory_check(
            MemoryReading("ours record_order() 10/min, 100/h", entries_bound=110),
            lambda: ours_record_order(10, 100),
            settings,
        ),
    ]
    peers: List[Tuple[Peer, str, Callable[[Any], Tuple[Attempt, Callable[[], Optional[int]]]]]] = [
        (ctx.peer("limits"), "limits moving window 10/minute", lambda module: limits_limiter(module, "10/minute")),
        (
            ctx.peer("pyrate-limiter"),
            "pyrate-limiter Rate(10, MINUTE)",
            lambda m: pyrate_limiter(m, 10, 60_000, closers),
        ),
    ]
    for peer, label, build in peers:
        reading = MemoryReading(label, entries_bound=10)
        if not peer.available:
            reading.skipped = peer.skip_reason()
            readings.append(reading)
            continue
        try:
            readings.append(memory_check(reading, functools.partial(build, peer.module), settings))
        except Exception as exc:  # a peer whose API changed: skipped with the error, never faked
            reading.skipped = f"{peer.name} failed: {type(exc).__name__}: {exc}"
            readings.append(reading)
    return readings


def _memory_table(readings: List[MemoryReading], settings: Settings) -> Table:
    window = settings.memory_window
    table = Table(
        f"memory after {settings.memory_attempts:,} attempts (tracemalloc on for the first and last {window:,})",
        ["limiter", "attempts", "admitted", "entries kept", "traced after first", "growth over last", "bounded"],
    )
    for reading in readings:
        if reading.skipped is not None:
            table.rows.append([reading.limiter, "-", "-", "-", "-", "-", "skipped"])
            continue
        entries = "-" if reading.entries is None else f"{reading.entries:,}"
        bounded = {True: "yes", False: "NO", None: "-"}[reading.bounded]
        table.rows.append(
            [
                reading.limiter,
                f"{reading.attempts:,}",
                f"{reading.admitted:,}",
                entries,
                f"{reading.first_bytes or 0:,} B",
                f"{reading.growth_bytes or 0:+,} B",
                bounded,
            ]
        )
    return table


# --- the case ---------------------------------------------------------------------------------------


def rate_limits_case(ctx: Context) -> CaseResult:
    case = CaseResult("rate-limits", "rate-limits: RateLimiter.try_acquire(), record_order() and peers")
    closers: List[Callable[[], None]] = []
    try:
        _speed(ctx, case, closers)
        checks = _exactness(ctx, closers)
        readings = _memory(ctx, closers)
    finally:
        for close in closers:
            close()
    case.tables.append(_exactness_table(checks))
    case.tables.append(_memory_table(readings, ctx.settings))
    for check in checks:
        if check.skipped is not None:
            case.notes.append(f"exactness, {check.limiter}: {check.skipped}")
    for reading in readings:
        if reading.skipped is not None:
            case.notes.append(f"memory, {reading.limiter}: {reading.skipped}")
    case.notes.append(
        "exactness, real time: the three real-time checks run side by side, each in bursts of 2 attempts every "
        "0.5 ms; the shortest span runs from the start of the call "
        "that admitted permit i to the end of the call that admitted permit i+N, so a span below the period proves "
        "N+1 admissions in one window (exact = no such span)"
    )
    case.notes.append(
        "memory: 'growth over last' is the net traced allocation of the last window of attempts; bounded = growth "
        f"<= {max(16_384, ctx.settings.memory_window):,} B and entries kept <= the limit (sum over the limiter's "
        "windows)"
    )
    case.extra["exactness"] = {f"{check.limiter} [{check.clock}]": check.to_json() for check in checks}
    case.extra["memory"] = {reading.limiter: reading.to_json() for reading in readings}
    return case
