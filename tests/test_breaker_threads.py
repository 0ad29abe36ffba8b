"""One breaker under many threads: exact counters, the half-open limit, no lock during calls, no deadlock.

Every test starts its threads on a Barrier and joins them with a timeout; nothing sleeps to wait for a state.
"""

from __future__ import annotations

import threading
from typing import Callable, List

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    ManualClock,
)

from .breakers import MakeAny
from .conftest import Boom

JOIN_TIMEOUT = 10


def run_threads(count: int, target: Callable[[int], None]) -> List[BaseException]:
    """Run ``target(index)`` on ``count`` threads; return what they raised. Fails if any is still alive."""
    errors: List[BaseException] = []
    errors_lock = threading.Lock()

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            with errors_lock:
                errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), name=f"worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"
    return errors


def _ok() -> str:
    return "ok"


def _raise(exc: BaseException) -> None:
    raise exc


def test_counters_are_exact_under_contention(clock: ManualClock) -> None:
    threads, calls = 16, 1000
    config = CircuitBreakerConfig(
        failure_threshold=10**9, minimum_calls=10**9, failure_rate_threshold=1.0, excluded_exceptions=(KeyError,)
    )
    breaker = CircuitBreaker("contended", config=config, clock=clock)
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)

    def work(index: int) -> None:
        start.wait()
        for i in range(calls):
            kind = i % 3
            if kind == 0:
                breaker.call(_ok)
            else:
                exc_type = Boom if kind == 1 else KeyError
                with pytest.raises(exc_type):
                    breaker.call(_raise, exc_type("x"))

    assert run_threads(threads, work) == []
    successes, failures, ignored = threads * 334, threads * 333, threads * 333
    metrics = breaker.metrics
    assert metrics.successful_requests == successes
    assert metrics.failed_requests == failures
    assert metrics.ignored_requests == ignored
    assert metrics.rejected_requests == 0
    assert metrics.total_requests == threads * calls
    status = breaker.get_status()
    assert status["state"] == "closed"
    assert (status["calls_in_window"], status["failures_in_window"]) == (successes + failures, failures)


@pytest.mark.parametrize("limit", [1, 3])
def test_half_open_never_admits_more_than_limit(make_any: MakeAny, clock: ManualClock, limit: int) -> None:
    """Both implementations: the Redis breaker's permits are counted by the server."""
    threads = 16
    breaker = make_any("half_open", failure_threshold=1, half_open_max_calls=limit, success_threshold=limit)
    breaker.record_failure("trip")
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN

    lock = threading.Lock()
    counts = {"current": 0, "peak": 0, "admitted": 0, "rejected": 0}
    decided = threading.Event()  # every thread has been admitted or rejected
    retry_afters: List[object] = []
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)

    def note_decision(kind: str) -> None:
        with lock:
            counts[kind] += 1
            if counts["admitted"] + counts["rejected"] == threads:
                decided.set()

    def trial() -> str:
        with lock:
            counts["current"] += 1
            counts["peak"] = max(counts["peak"], counts["current"])
        note_decision("admitted")
        try:
            assert decided.wait(timeout=JOIN_TIMEOUT), "other threads were never decided"
        finally:
            with lock:
                counts["current"] -= 1
        return "ok"

    def work(index: int) -> None:
        start.wait()
        try:
            breaker.call(trial)
        except CircuitOpenException as exc:
            retry_afters.append(exc.retry_after)
            note_decision("rejected")

    assert run_threads(threads, work) == []
    assert counts["peak"] == limit
    assert counts["admitted"] == limit
    assert counts["rejected"] == threads - limit
    assert retry_afters == [0.0] * (threads - limit)
    assert breaker.metrics.rejected_requests == threads - limit
    assert breaker.state is CircuitState.CLOSED


def test_lock_is_not_held_during_protected_call(clock: ManualClock) -> None:
    threads = 8
    breaker = CircuitBreaker("parallel", config=CircuitBreakerConfig(failure_threshold=100), clock=clock)
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)
    inside = threading.Barrier(threads, timeout=5)  # passes only if all 8 are inside at once
    results: List[str] = []

    def protected() -> str:
        inside.wait()
        return "ok"

    def work(index: int) -> None:
        start.wait()
        results.append(breaker.call(protected))

    assert run_threads(threads, work) == []
    assert results == ["ok"] * threads
    assert breaker.metrics.successful_requests == threads


def test_lock_is_not_held_during_half_open_trials(clock: ManualClock) -> None:
    threads = 8
    config = CircuitBreakerConfig(failure_threshold=1, half_open_max_calls=threads, success_threshold=threads)
    breaker = CircuitBreaker("parallel_trials", config=config, clock=clock)
    breaker.record_failure("trip")
    clock.advance(60)
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)
    inside = threading.Barrier(threads, timeout=5)

    def work(index: int) -> None:
        start.wait()
        breaker.call(inside.wait)

    assert run_threads(threads, work) == []
    assert breaker.state is CircuitState.CLOSED


def test_concurrent_failures_trip_once(clock: ManualClock) -> None:
    threads = 16
    breaker = CircuitBreaker("trip_once", config=CircuitBreakerConfig(failure_threshold=1), clock=clock)
    trips: List[str] = []
    breaker.register_trip_callback(lambda name, kind: trips.append(name))
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)
    inside = threading.Barrier(threads, timeout=5)  # all admitted while CLOSED, then all fail

    def failing() -> None:
        inside.wait()
        raise Boom("down")

    def work(index: int) -> None:
        start.wait()
        with pytest.raises(Boom):
            breaker.call(failing)

    assert run_threads(threads, work) == []
    assert trips == ["trip_once"]
    assert breaker.metrics.circuit_trips == 1
    assert breaker.metrics.failed_requests == threads
    assert breaker.get_status()["consecutive_trips"] == 1


def test_manual_control_races_with_calls_without_deadlock(clock: ManualClock) -> None:
    workers, calls = 32, 200
    config = CircuitBreakerConfig(
        failure_threshold=3, open_timeout_seconds=2, max_backoff_seconds=8, half_open_max_calls=2, success_threshold=2
    )
    breaker = CircuitBreaker("raced", config=config, clock=clock)
    start = threading.Barrier(workers + 1, timeout=JOIN_TIMEOUT)
    done = threading.Event()
    finished = [0]
    finished_lock = threading.Lock()
    bad_states: List[object] = []

    def work(index: int) -> None:
        if index == workers:  # the controller
            start.wait()
            step = 0
            while not done.is_set():
                (breaker.force_open, breaker.force_close, breaker.reset)[step % 3]()
                clock.advance(0.5)
                breaker.get_status()
                step += 1
            return
        start.wait()
        try:
            for i in range(calls):
                try:
                    if (i + index) % 2:
                        breaker.call(_ok)
                    else:
                        breaker.call(_raise, Boom("x"))
                except (Boom, CircuitOpenException):
                    pass
                state = breaker.state
                if not isinstance(state, CircuitState):
                    bad_states.append(state)
        finally:
            with finished_lock:
                finished[0] += 1
                if finished[0] == workers:
                    done.set()

    assert run_threads(workers + 1, work) == []
    assert bad_states == []
    metrics = breaker.metrics
    assert metrics.total_requests == (
        metrics.successful_requests + metrics.failed_requests + metrics.rejected_requests + metrics.ignored_requests
    )
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(_ok) == "ok"
