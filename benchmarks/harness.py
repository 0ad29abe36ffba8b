"""Timing machinery: timeit-style loops, medians of repetitions, thread throughput, and result records.

Every figure is the median of several repetitions of a tight loop of ``n`` calls, timed with
``time.perf_counter_ns``. ``n`` is calibrated so that one repetition takes about
``Settings.rep_seconds``; calibration runs, plus one more repetition, serve as the warm-up. As in
``timeit``, the garbage collector is disabled while a repetition runs (and collected before it).
Nothing is subtracted implicitly: the loop's own cost is part of every figure, and overheads are
computed explicitly against the bare call measured in the same run.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

Loop = Callable[[int], None]
"""Runs its operation ``n`` times."""


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure (``--quick`` shrinks every figure)."""

    quick: bool
    reps: int  # repetitions per figure (the median is reported)
    rep_seconds: float  # target duration of one repetition
    thread_reps: int  # repetitions per thread-throughput figure
    thread_rep_seconds: float  # target duration of one single-thread hammering repetition
    thread_counts: Tuple[int, ...]
    sleep_threads: int  # threads making 1 ms calls
    sleep_calls_per_thread: int
    exact_period: float  # exactness check: limit 5 per exact_period seconds, real time
    exact_duration: float  # ... attempted for this long
    memory_attempts: int  # refused attempts before the memory reading (limit 10/minute)
    memory_window: int  # attempts traced by tracemalloc at the start and at the end
    redis_count: int  # decisions whose round trips the Redis case counts
    redis_reps: int  # timed runs per Redis throughput figure (the median is reported)
    redis_seconds: float  # duration of one timed Redis run
    redis_exact_seconds: float  # processes hammering one shared Redis limit for this long

    @classmethod
    def full(cls) -> Settings:
        return cls(
            quick=False,
            reps=7,
            rep_seconds=0.07,
            thread_reps=5,
            thread_rep_seconds=0.06,
            thread_counts=(1, 2, 4, 8),
            sleep_threads=8,
            sleep_calls_per_thread=50,
            exact_period=1.0,
            exact_duration=2.5,
            memory_attempts=1_000_000,
            memory_window=10_000,
            redis_count=2_000,
            redis_reps=7,
            redis_seconds=0.15,
            redis_exact_seconds=1.0,
        )

    @classmethod
    def reduced(cls) -> Settings:
        return cls(
            quick=True,
            reps=3,
            rep_seconds=0.01,
            thread_reps=3,
            thread_rep_seconds=0.015,
            thread_counts=(1, 2, 4, 8),
            sleep_threads=8,
            sleep_calls_per_thread=8,
            exact_period=1.0,
            exact_duration=1.1,
            memory_attempts=10_000,
            memory_window=1_000,
            redis_count=200,
            redis_reps=1,
            redis_seconds=0.05,
            redis_exact_seconds=0.2,
        )


# --- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """The median of ``reps`` repetitions of ``calls`` calls each, in ns per call."""

    ns_per_call: float
    min_ns: float
    max_ns: float
    calls: int
    reps: int

    def to_json(self) -> Dict[str, Any]:
        return {
            "ns_per_call": round(self.ns_per_call, 2),
            "min_ns_per_call": round(self.min_ns, 2),
            "max_ns_per_call": round(self.max_ns, 2),
            "calls_per_repetition": self.calls,
            "repetitions": self.reps,
        }


@dataclass(frozen=True)
class Skipped:
    """A figure that was not measured, and why (a peer that is not importable, or that failed)."""

    reason: str

    def to_json(self) -> Dict[str, Any]:
        return {"skipped": self.reason}


Result = Union[Stat, Skipped]


@dataclass
class Table:
    """A printable table: a title, column headers and rows of already formatted cells."""

    title: str
    headers: List[str]
    rows: List[List[str]] = field(default_factory=list)

    def render(self) -> List[str]:
        widths = [len(header) for header in self.headers]
        for row in self.rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
            return "  " + "  ".join([first, *rest]).rstrip()

        out = [f"  {self.title}"] if self.title else []
        out.append(line(self.headers))
        out.append("  " + "  ".join("-" * width for width in widths))
        out.extend(line(row) for row in self.rows)
        return out


@dataclass
class Ratio:
    """A named ratio; ``value`` is None when a side is skipped or not positive (``why`` says which)."""

    label: str
    value: Optional[float]
    why: str = ""

    def render(self) -> str:
        shown = f"{self.value:.2f}x" if self.value is not None else f"n/a ({self.why})"
        return f"{self.label:<62} {shown}"


@dataclass
class CaseResult:
    """What one benchmark case produced: tables and ratios to print, figures for targets and JSON."""

    key: str
    title: str
    tables: List[Table] = field(default_factory=list)
    ratios: List[Ratio] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    results: Dict[str, Result] = field(default_factory=dict)  # timing figures by id
    extra: Dict[str, Any] = field(default_factory=dict)  # other JSON-ready data (threads, exactness, memory)
    seconds: float = 0.0  # how long the case took

    def to_json(self) -> Dict[str, Any]:
        return {
            "title": self.title,
            "measurements": {key: result.to_json() for key, result in self.results.items()},
            "ratios": {ratio.label: None if ratio.value is None else round(ratio.value, 4) for ratio in self.ratios},
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            **self.extra,
        }

    def render(self) -> List[str]:
        out = [self.title, "=" * len(self.title)]
        for table in self.tables:
            out.extend(table.render())
            out.append("")
        if self.ratios:
            out.append("  ratios")
            out.extend(f"    {ratio.render()}" for ratio in self.ratios)
            out.append("")
        out.extend(f"  note: {note}" for note in self.notes)
        out.append(f"  (case took {self.seconds:.1f} s)")
        out.append("")
        return out


def ns(result: Optional[Result]) -> Optional[float]:
    """ns per call of a measured figure; None if skipped or missing."""
    return result.ns_per_call if isinstance(result, Stat) else None


def why_missing(*results: Optional[Result]) -> str:
    for result in results:
        if isinstance(result, Skipped):
            return result.reason
        if result is None:
            return "not measured"
    return "a side is not positive"


def ratio(label: str, top: Optional[float], bottom: Optional[float], *sources: Optional[Result]) -> Ratio:
    """``top / bottom``, or a ratio with no value (and the reason) when either is missing or ``bottom <= 0``."""
    if top is None or bottom is None or bottom <= 0 or top < 0:
        return Ratio(label, None, why_missing(*sources))
    return Ratio(label, top / bottom)


def fmt_ns(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.1f}"


def fmt_int(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


# --- loops ----------------------------------------------------------------------------------------


def call_loop(func: Callable[..., object], *args: object) -> Loop:
    """A loop calling ``func(*args)``; specialised by arity so no packing cost is added to the call."""
    if not args:

        def loop0(n: int) -> None:
            for _ in repeat(None, n):
                func()

        return loop0
    if len(args) == 1:
        (a,) = args

        def loop1(n: int) -> None:
            for _ in repeat(None, n):
                func(a)

        return loop1
    if len(args) == 3:
        a, b, c = args

        def loop3(n: int) -> None:
            for _ in repeat(None, n):
                func(a, b, c)

        return loop3
    raise ValueError(f"call_loop supports 0, 1 or 3 arguments, got {len(args)}")


def catch_loop(func: Callable[..., object], exc_type: Type[BaseException], *args: object) -> Loop:
    """A loop calling ``func(*args)`` and catching ``exc_type`` (the rejection path of an open breaker);
    specialised by arity, as ``call_loop``."""
    if not args:

        def loop0(n: int) -> None:
            for _ in repeat(None, n):
                try:  # noqa: SIM105 - contextlib.suppress would add its own cost to every call
                    func()
                except exc_type:
                    pass

        return loop0
    if len(args) == 1:
        (a,) = args

        def loop1(n: int) -> None:
            for _ in repeat(None, n):
                try:  # noqa: SIM105 - as above
                    func(a)
                except exc_type:
                    pass

        return loop1
    raise ValueError(f"catch_loop supports 0 or 1 argument, got {len(args)}")


def with_loop(manager: Any, func: Callable[[], object]) -> Loop:
    """A loop running ``with manager: func()``."""

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            with manager:
                func()

    return loop


# --- timing ---------------------------------------------------------------------------------------


def time_loop(loop: Loop, n: int) -> int:
    """Run ``loop(n)`` once with the collector disabled (as timeit does); return the elapsed ns."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        loop(n)
        return time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()


def calibrate(make: Callable[[], Loop], target_ns: float, *, fresh: bool) -> int:
    """Find ``n`` such that ``loop(n)`` takes about ``target_ns``.

    Grows ``n`` until a run lasts at least a fifth of the target, scales it to the target, and checks
    the scaled ``n`` once more. Each step takes the faster of two runs, so that one run slowed down
    by another program (a preemption on a busy machine) cannot shrink ``n`` to a handful of calls.
    """

    def fastest(n: int) -> int:
        timings = []
        for _ in range(2):
            timings.append(time_loop(make() if fresh else loop, n))
        return max(1, min(timings))

    loop = make()
    n = 8
    elapsed = fastest(n)
    while elapsed < target_ns / 5 and n < 1 << 30:
        n *= max(2, min(10, int(target_ns / 5 / elapsed) + 1))
        elapsed = fastest(n)
    for refinement in range(4):
        scaled = max(1, round(n * target_ns / elapsed))
        if abs(scaled - n) <= n // 2:  # within 50 % of the target: done
            return scaled
        # The first step scales fully (exact for a constant cost per call); later ones take the geometric
        # mean, which settles a cost that grows with n (limits' list insertion) instead of oscillating.
        n = scaled if refinement == 0 else max(1, round((n * scaled) ** 0.5))
        elapsed = fastest(n)
    return n


@dataclass(frozen=True)
class Bench:
    """A figure to measure: ``make()`` builds the loop; with ``fresh`` it is rebuilt (untimed) before every
    repetition, so that each starts from the same state (rate limiters keep every admitted permit)."""

    make: Callable[[], Loop]
    fresh: bool = False


def measure_group(benches: Dict[str, Union[Bench, Skipped]], settings: Settings) -> Dict[str, Result]:
    """Median ns per call of each bench, their repetitions interleaved.

    Every bench is calibrated and warmed up, then each round times one repetition of every bench
    (the order rotating from round to round), so that a disturbance from outside the process
    (another program taking a core for a while) hits the figures being compared alike.
    A bench whose construction or calibration raises becomes a Skipped figure naming the error.
    """
    target_ns = settings.rep_seconds * 1e9
    gc.collect()
    results: Dict[str, Result] = {}
    ready: Dict[str, Tuple[Bench, Loop, int]] = {}
    for key, bench in benches.items():
        if isinstance(bench, Skipped):
            results[key] = bench
            continue
        try:
            n = calibrate(bench.make, target_ns, fresh=bench.fresh)
            loop = bench.make()
            time_loop(loop, n)  # warm-up repetition
        except Exception as exc:
            results[key] = Skipped(f"{key} failed: {type(exc).__name__}: {exc}")
            continue
        ready[key] = (bench, loop, n)
    per_call: Dict[str, List[float]] = {key: [] for key in ready}
    keys = list(ready)
    for round_index in range(settings.reps):
        shift = round_index % max(1, len(keys))
        for key in keys[shift:] + keys[:shift]:
            bench, loop, n = ready[key]
            if bench.fresh:
                loop = bench.make()
            per_call[key].append(time_loop(loop, n) / n)
    for key, values in per_call.items():
        results[key] = Stat(statistics.median(values), min(values), max(values), ready[key][2], len(values))
    return {key: results[key] for key in benches}


def measure(make: Callable[[], Loop], settings: Settings, *, fresh: bool = False) -> Stat:
    """Median ns per call of one loop (a group of one)."""
    result = measure_group({"figure": Bench(make, fresh)}, settings)["figure"]
    if not isinstance(result, Stat):
        raise RuntimeError(result.reason)
    return result


# --- threads --------------------------------------------------------------------------------------


def thread_seconds(func: Callable[[], object], threads: int, calls_per_thread: int) -> float:
    """Seconds for ``threads`` threads, released together, to make ``calls_per_thread`` calls each."""
    loop = call_loop(func)
    barrier = threading.Barrier(threads + 1)
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            loop(calls_per_thread)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, name=f"bench-{index}") for index in range(threads)]
    for thread in workers:
        thread.start()
    enabled = gc.isenabled()
    gc.disable()
    try:
        barrier.wait()
        start = time.perf_counter_ns()
        for thread in workers:
            thread.join()
        elapsed = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    if errors:
        raise errors[0]
    return elapsed / 1e9


def calls_for(func: Callable[[], object], seconds: float) -> int:
    """How many single-thread calls of ``func`` take about ``seconds``."""
    n = 64
    while True:
        elapsed = thread_seconds(func, 1, n)
        if elapsed >= seconds / 5:
            return max(1, round(n * seconds / elapsed))
        n *= 4
