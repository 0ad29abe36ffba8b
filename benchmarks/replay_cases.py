"""Benchmark case ``replay``: rows per second through replay(), and what one row costs inside the breakers.

Two synthetic minute histories (seeded random walks, 390 rows a trading day): a calm one that never
trips (the desk stays ACTIVE: the common path) and a turbulent one whose daily-loss limit trips most
days and whose kill switch engages early and is never reset (the halted path). Every row is evaluated
by ``TradingCircuitBreakers.refresh()`` (``check_now()`` without the status it builds); the figures
below it say what that call costs, beside ``check_now()``.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import random
import statistics
import tempfile
import time
from decimal import Decimal
from typing import Dict, List, Tuple
from zoneinfo import ZoneInfo

from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.replay import HistoryRow, read_csv, replay
from circuit_breakers.replay.provider import HistoryProvider

from .cases import Context
from .harness import Bench, CaseResult, Loop, Table, call_loop, fmt_int, fmt_ns, measure_group, ns

GOAL_ROWS_PER_SECOND = 50_000
_NEW_YORK = ZoneInfo("America/New_York")


def minute_history(rows: int, *, turbulent: bool, seed: int = 5) -> List[HistoryRow]:
    """``rows`` minute rows from 09:30 New York on weekdays; calm: 0.03 % a minute; turbulent: 0.2 %."""
    rng = random.Random(seed)
    sigma = 0.002 if turbulent else 0.0003
    day = dt.date(2024, 1, 2)
    equity = 1_000_000.0
    out: List[HistoryRow] = []
    while len(out) < rows:
        if day.weekday() < 5:
            start = dt.datetime(day.year, day.month, day.day, 9, 30, tzinfo=_NEW_YORK)
            for minute in range(min(390, rows - len(out))):
                equity *= 1 + rng.gauss(0.0, sigma)
                out.append(HistoryRow(start + dt.timedelta(minutes=minute), Decimal(f"{equity:.2f}")))
        day += dt.timedelta(days=1)
    return out


def _rows_per_second(history: List[HistoryRow], reps: int) -> Tuple[float, float, float, Dict[str, int]]:
    """(median, min, max) rows/s of ``reps`` replays, and the trips of one."""
    rates = []
    trips: Dict[str, int] = {}
    for _ in range(reps):
        started = time.perf_counter()
        result = replay(history)
        rates.append(len(history) / (time.perf_counter() - started))
        trips = dict(result.summary.trips)
    return statistics.median(rates), min(rates), max(rates), trips


def _csv_rows_per_second(history: List[HistoryRow]) -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "history.csv")
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["time", "equity"])
            writer.writerows((row.time.isoformat(), str(row.equity)) for row in history)
        started = time.perf_counter()
        read_csv(path)
        return len(history) / (time.perf_counter() - started)


def breakers_at(drawdown: bool) -> TradingCircuitBreakers:
    """Breakers over a history provider holding 20 completed days, all clear or with the kill switch engaged."""
    provider = HistoryProvider(20)
    day = dt.date(2024, 1, 2)
    for offset, value in enumerate([100000, 100400, 99900, 100700, 100300, 100900] * 4):
        provider.advance(day + dt.timedelta(days=offset), Decimal(value), Decimal(0))
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(), clock=ManualClock())
    breakers.check_now()
    if drawdown:
        provider.advance(day + dt.timedelta(days=30), Decimal(85000), Decimal(0))
        breakers.check_now()
        if not breakers.kill_switch_active:
            raise AssertionError("the kill switch did not engage at -15 %")
    return breakers


def _replay_loop(history: List[HistoryRow]) -> Loop:
    def loop(n: int) -> None:
        replay(history[:n])

    return loop


def replay_hot_path() -> Loop:
    """``run.py --profile replay --profile-calls N``: replay N rows of the calm history."""
    return _replay_loop(minute_history(200_000, turbulent=False))


def check_now_hot_path() -> Loop:
    """``run.py --profile check_now``: check_now() with every breaker clear."""
    return call_loop(breakers_at(drawdown=False).check_now)


def refresh_hot_path() -> Loop:
    """``run.py --profile refresh``: refresh() with every breaker clear (what replay() calls per row)."""
    return call_loop(breakers_at(drawdown=False).refresh)


REPLAY_HOT_PATHS = {"replay": replay_hot_path, "check_now": check_now_hot_path, "refresh": refresh_hot_path}


def replay_case(ctx: Context) -> CaseResult:
    audit = logging.getLogger("circuit_breakers")
    level = audit.level
    audit.setLevel(logging.CRITICAL + 1)  # the kill switch's audit lines would land in the tables
    try:
        return _replay_case(ctx)
    finally:
        audit.setLevel(level)


def _replay_case(ctx: Context) -> CaseResult:
    settings = ctx.settings
    rows = 2_000 if settings.quick else 10_000
    reps = 1 if settings.quick else 3
    case = CaseResult("replay", "replay: a history through the real breakers, one refresh() per row")
    table = Table(
        f"replay() of {rows:,} minute rows ({reps} run{'s' if reps > 1 else ''}, median; min-max)",
        ["history", "rows/s", "min-max", "us per row", "trips"],
    )
    figures: Dict[str, Dict[str, object]] = {}
    for name, turbulent in (("calm (always ACTIVE)", False), ("turbulent (kill switch engaged)", True)):
        history = minute_history(rows, turbulent=turbulent)
        median, low, high, trips = _rows_per_second(history, reps)
        shown_trips = ", ".join(f"{key} {value}" for key, value in trips.items()) or "none"
        spread = f"{fmt_int(low)}-{fmt_int(high)}"
        table.rows.append([name, fmt_int(median), spread, f"{1e6 / median:.1f}", shown_trips])
        figures["calm" if not turbulent else "turbulent"] = {
            "rows": rows,
            "rows_per_second": round(median),
            "min_rows_per_second": round(low),
            "max_rows_per_second": round(high),
            "trips": trips,
        }
    case.tables.append(table)
    csv_rate = _csv_rows_per_second(minute_history(rows, turbulent=False))
    case.notes.append(f"reading the history CSV: {csv_rate:,.0f} rows/s (not included above)")

    clear, killed = breakers_at(drawdown=False), breakers_at(drawdown=True)
    res = case.results = measure_group(
        {
            "refresh": Bench(lambda: call_loop(clear.refresh)),
            "check_now": Bench(lambda: call_loop(clear.check_now)),
            "get_status": Bench(lambda: call_loop(clear.get_status)),
            "refresh_killed": Bench(lambda: call_loop(killed.refresh)),
            "trading_state_killed": Bench(lambda: call_loop(lambda: killed.trading_state)),
        },
        settings,
    )
    inside = Table("what a row costs inside TradingCircuitBreakers", ["call", "ns/call", "rows/s at most"])
    for key, label in (
        ("refresh", "refresh(), all clear (what the replay calls for each row)"),
        ("check_now", "check_now(), all clear: refresh() and get_status()"),
        ("get_status", "get_status() alone"),
        ("refresh_killed", "refresh(), kill switch engaged"),
        ("trading_state_killed", "trading_state, kill switch engaged (the replay asks before each halted row)"),
    ):
        value = ns(res[key])
        inside.rows.append([label, fmt_ns(value), "-" if not value else fmt_int(1e9 / value)])
    case.tables.append(inside)
    refresh_ns = ns(res["refresh"])
    calm = figures["calm"]["rows_per_second"]
    if refresh_ns and isinstance(calm, int):
        row_ns = 1e9 / calm
        case.extra["refresh_share_of_calm_row"] = round(refresh_ns / row_ns, 3)
        case.notes.append(
            f"a calm row takes {row_ns / 1000:.1f} us in all; refresh() alone {refresh_ns / 1000:.1f} us with 20 "
            "completed days of returns (fewer, early in a history, make it cheaper); the rest is the replay's "
            "own bookkeeping (clock, provider, the two equity curves)"
        )
    case.notes.append(
        f"goal: {GOAL_ROWS_PER_SECOND:,} rows/s = {1e6 / GOAL_ROWS_PER_SECOND:.0f} us per row, refresh() included; "
        "`python -m benchmarks --profile replay --profile-calls 20000` shows where the time goes"
    )
    case.extra["histories"] = figures
    case.extra["csv_rows_per_second"] = round(csv_rate)
    case.extra["goal_rows_per_second"] = GOAL_ROWS_PER_SECOND
    return case
