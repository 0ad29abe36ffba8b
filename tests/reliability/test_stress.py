"""Concurrency: 32 threads on one breaker, half-open trials under load, record_order() over sliding
windows, and the monitor thread racing resets, trips and stop_monitoring().

Every thread starts on a Barrier and is joined with a bound; no test sleeps to wait for a state.
Existing coverage this builds on: tests/test_breaker_threads.py (16 threads, exact counters without
trips; one half-open burst; manual control races), tests/trading/test_gate_threads.py (one burst of
orders at a fixed time).
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from decimal import Decimal
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    ManualClock,
    TradingCircuitBreakers,
)

from ..trading.conftest import RESET_KEY, FakeProvider
from .conftest import WAIT, MakeBreakers, join_all

D = Decimal
THREADS = 32


class Boom(RuntimeError):
    pass


class Skip(LookupError):
    """Excluded: counts as neither success nor failure."""


def _raise(exc: BaseException) -> None:
    raise exc


def run_together(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` on ``count`` threads started together; re-raise the first error; bounded join."""
    start = threading.Barrier(count, timeout=WAIT)
    errors: List[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=4 * WAIT)
    if errors:
        raise errors[0]


def check_legal(status: Dict[str, object], limit: int) -> None:
    """What must hold in any status snapshot, whatever the interleaving."""
    state = status["state"]
    assert state in ("closed", "open", "half_open"), state
    in_flight = status["half_open_in_flight"]
    assert isinstance(in_flight, int)
    assert 0 <= in_flight <= limit, status
    if state != "half_open":
        assert in_flight == 0, status
    retry = status["seconds_until_retry"]
    if state == "closed":
        assert retry is None, status
    elif state == "half_open":
        assert retry == 0.0, status
    else:
        assert status["forced_open"] or (isinstance(retry, float) and retry >= 0), status
    total = status["total_requests"]
    parts = ("successful_requests", "failed_requests", "rejected_requests", "ignored_requests")
    assert total == sum(status[name] for name in parts), status  # type: ignore[misc]


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Switch threads every 10 µs instead of 5 ms, so that the interleavings actually happen."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


# --- one breaker, 32 threads ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_32_threads_mixed_outcomes_exact_totals_and_legal_states(clock: ManualClock, seed: int) -> None:
    limit = 2
    config = CircuitBreakerConfig(
        failure_threshold=5,
        minimum_calls=20,
        failure_rate_threshold=0.5,
        success_threshold=2,
        half_open_max_calls=limit,
        open_timeout_seconds=1,
        max_backoff_seconds=4,
        half_open_timeout_seconds=2,
        failure_exceptions=(Boom,),
        excluded_exceptions=(Skip,),
    )
    breaker = CircuitBreaker("stress", config=config, clock=clock)
    calls = 500
    tallies: List[Counter[str]] = [Counter() for _ in range(THREADS)]
    bad: List[object] = []

    def work(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        tally = tallies[index]
        for step in range(calls):
            kind = rng.choice("ssssffx")
            try:
                if kind == "s":
                    breaker.call(lambda: None)
                elif kind == "f":
                    breaker.call(_raise, Boom("down"))
                else:
                    breaker.call(_raise, Skip("excluded"))
                tally["successful_requests"] += 1
            except Boom:
                tally["failed_requests"] += 1
            except Skip:
                tally["ignored_requests"] += 1
            except CircuitOpenException:
                tally["rejected_requests"] += 1
            if index == 0 and step % 4 == 0:
                clock.advance(0.25)  # one thread moves time: trips, half-opens and timeouts all happen
            if step % 10 == 0:
                try:
                    check_legal(breaker.get_status(), limit)
                except AssertionError as exc:
                    bad.append(exc)

    run_together(THREADS, work)
    assert bad == []
    expected = sum(tallies, Counter())
    metrics = breaker.metrics
    assert metrics.successful_requests == expected["successful_requests"]
    assert metrics.failed_requests == expected["failed_requests"]
    assert metrics.ignored_requests == expected["ignored_requests"]
    assert metrics.rejected_requests == expected["rejected_requests"]
    assert metrics.total_requests == THREADS * calls
    assert metrics.circuit_trips >= 1  # the mix does trip it
    check_legal(breaker.get_status(), limit)


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_half_open_never_runs_more_trials_than_allowed_over_many_permits(clock: ManualClock, limit: int) -> None:
    # success_threshold is out of reach and failures are excluded, so the breaker stays in one
    # HALF_OPEN period: every admitted call is a trial of it, and permits are given back and
    # taken again thousands of times.
    config = CircuitBreakerConfig(
        failure_threshold=1,
        half_open_max_calls=limit,
        success_threshold=10**9,
        half_open_timeout_seconds=10**6,
        max_backoff_seconds=10**6,
        excluded_exceptions=(Skip,),
    )
    breaker = CircuitBreaker("trials", config=config, clock=clock)
    breaker.record_failure("trip")
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN
    lock = threading.Lock()
    running = [0, 0]  # now, peak
    admitted = [0]
    holders = [limit]  # the first `limit` trials hold their permits until someone has been refused
    all_held = threading.Barrier(limit, timeout=WAIT)
    refused = threading.Event()

    def trial(fail: bool) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running)
            admitted[0] += 1
            hold = holders[0] > 0
            holders[0] -= hold
        try:
            if hold:
                all_held.wait()
                assert refused.wait(WAIT), "no call was refused while every permit was out"
            if fail:
                raise Skip("neither")
        finally:
            with lock:
                running[0] -= 1

    def work(index: int) -> None:
        for step in range(150):
            try:
                breaker.call(trial, (index + step) % 3 == 0)
            except CircuitOpenException:
                refused.set()
            except Skip:
                continue

    run_together(THREADS, work)
    assert running[1] == limit  # reached (the holders), never exceeded
    metrics = breaker.metrics
    assert metrics.rejected_requests >= 1
    assert admitted[0] == metrics.successful_requests + metrics.ignored_requests
    assert metrics.total_requests == THREADS * 150 + 1  # and the failure that tripped it
    status = breaker.get_status()
    assert status["state"] == "half_open"
    assert status["half_open_in_flight"] == 0  # every permit came back


# --- record_order() over sliding windows ----------------------------------------------------------


def test_record_order_from_many_threads_never_exceeds_either_window(
    make_breakers: MakeBreakers, clock: ManualClock
) -> None:
    per_minute, per_hour = 7, 40
    breakers = make_breakers(max_orders_per_minute=per_minute, max_orders_per_hour=per_hour)
    rng = random.Random(6)
    admitted: List[Tuple[float, int]] = []  # (time, orders admitted at that time)
    now = 0.0
    results: List[bool] = []
    results_lock = threading.Lock()

    def work(index: int) -> None:
        for _ in range(3):
            ok = breakers.record_order()
            with results_lock:
                results.append(ok)

    for _ in range(60):
        # Every thread tries at the same fixed time; the clock moves only between rounds, so each
        # admission time is known exactly.
        results.clear()
        run_together(16, work)
        got = sum(results)
        in_minute = sum(n for t, n in admitted if now - t < 60)
        in_hour = sum(n for t, n in admitted if now - t < 3600)
        room = min(per_minute - in_minute, per_hour - in_hour)
        assert got == room, f"at {now}s: admitted {got}, room was {room}"  # never more, never fewer
        admitted.append((now, got))
        step = rng.choice([1, 5, 20, 59, 60, 61, 300])
        clock.advance(step)
        now += step
    for t, _ in admitted:
        assert sum(n for u, n in admitted if t - 60 < u <= t) <= per_minute
        assert sum(n for u, n in admitted if t - 3600 < u <= t) <= per_hour
    assert sum(n for _, n in admitted) > per_hour  # the hour window slid too


# --- the monitor thread against everything else ---------------------------------------------------


class EventCounter:
    """Counts facade callbacks by ``kind:name``, thread-safely."""

    def __init__(self, breakers: TradingCircuitBreakers) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        breakers.register_trip_callback(self._recorder("trip"))
        breakers.register_recovery_callback(self._recorder("recovery"))

    def _recorder(self, kind: str) -> Callable[..., None]:
        def record(name: str, *rest: object) -> None:
            with self._lock:
                self._counts[f"{kind}:{name}"] += 1

        return record

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]


def storm(breakers: TradingCircuitBreakers, index: int, rounds: int = 150) -> None:
    """One thread's share of the storm: resets, stops and starts, readings and status reads."""
    rng = random.Random(index)
    for _ in range(rounds):
        action = rng.randrange(6) if index else 5
        if action == 0:
            breakers.reset_breaker("daily_loss")
        elif action == 1:
            breakers.reset_all()
        elif action == 2:
            breakers.stop_monitoring(timeout=WAIT)
        elif action == 3:
            breakers.start_monitoring()
        elif action == 4:
            breakers.check_now()
        else:
            breakers.can_trade()
            status = breakers.get_status()
            assert status.can_trade == (not status.reasons)


def test_monitor_races_resets_trips_and_stops_without_deadlock_or_lost_trip(
    make_breakers: MakeBreakers, provider: FakeProvider
) -> None:
    breakers = make_breakers(clock_=None, reset_key=RESET_KEY, check_interval_seconds=0.001)
    events = EventCounter(breakers)
    breakers.start_monitoring()
    stop = threading.Event()

    def flip_figures() -> None:
        rng = random.Random(1)
        while not stop.is_set():
            provider.daily_pnl_pct = rng.choice([D(0), D(-3)])

    flipper = threading.Thread(target=flip_figures, name="flipper")
    flipper.start()
    try:
        run_together(8, lambda index: storm(breakers, index))
        # The kill switch is engaged mid-storm, by hand, and nothing in the storm may release it.
        engager = threading.Thread(target=breakers.engage_kill_switch, args=("mid-storm",), name="engager")
        engager.start()
        run_together(8, lambda index: storm(breakers, index))
        join_all([engager])
    finally:
        stop.set()
        join_all([flipper])
    assert breakers.kill_switch_active
    # A trip read now must not be lost, whatever the storm left behind.
    breakers.start_monitoring()
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    status = breakers.get_status()
    assert not status.can_trade
    assert status.details["daily_loss"]["tripped"]
    assert breakers.manager.get_circuit_breaker("daily_loss").state is CircuitState.OPEN  # type: ignore[union-attr]
    assert status.monitor_alive
    assert breakers.stop_monitoring(timeout=WAIT)
    # Every daily-loss trip but the last was followed by exactly one recovery; the kill switch tripped once.
    assert events["trip:daily_loss"] == events["recovery:daily_loss"] + 1
    assert (events["trip:max_drawdown"], events["recovery:max_drawdown"]) == (1, 0)
    assert breakers.reset_kill_switch(RESET_KEY)
    provider.daily_pnl_pct = D(0)
    breakers.reset_breaker("daily_loss")
    breakers.check_now()
    assert breakers.can_trade(), breakers.get_blocking_reasons()
