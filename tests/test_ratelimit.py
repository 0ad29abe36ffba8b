"""RateLimiter: exact sliding windows, several limits checked together, blocking acquire, threads."""

from __future__ import annotations

import json
import sys
import threading
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from circuit_breakers import ratelimit
from circuit_breakers.clock import ManualClock
from circuit_breakers.errors import ConfigError, ConfigTypeError, RateLimitExceeded
from circuit_breakers.ratelimit import Limit, RateLimiter

JOIN_SECONDS = 5.0


def make(*limits: Limit) -> Tuple[RateLimiter, ManualClock]:
    clock = ManualClock()
    return RateLimiter(*limits, name="test", clock=clock), clock


def admitted(limiter: RateLimiter, attempts: int) -> int:
    return sum(limiter.try_acquire() for _ in range(attempts))


def in_window(limiter: RateLimiter) -> List[int]:
    return [limit["calls_in_window"] for limit in limiter.status()["limits"]]


def start(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(JOIN_SECONDS)
    assert not thread.is_alive(), "thread did not finish"


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Limit(0, 60), ConfigError, "max_calls must be >= 1, got 0"),
        (lambda: Limit(-3, 60), ConfigError, "max_calls must be >= 1, got -3"),
        (lambda: Limit(True, 60), ConfigTypeError, "max_calls must be an int, got True"),
        (lambda: Limit(2.5, 60), ConfigTypeError, "max_calls must be an int, got 2.5"),
        (lambda: Limit(5, 0), ConfigError, "period_seconds must be > 0, got 0"),
        (lambda: Limit(5, -1.0), ConfigError, "period_seconds must be > 0, got -1.0"),
        (lambda: Limit(5, float("nan")), ConfigError, "period_seconds must be finite, got nan"),
        (lambda: Limit(5, float("inf")), ConfigError, "period_seconds must be finite, got inf"),
        (lambda: Limit(5, "60"), ConfigTypeError, "period_seconds must be a number, got '60'"),
        (lambda: Limit(5, False), ConfigTypeError, "period_seconds must be a number, got False"),
        (RateLimiter, ConfigError, "at least one Limit"),
        (lambda: RateLimiter(Limit(5, 60), Limit(9, 60.0)), ConfigError, "distinct periods, got 60s twice"),
        (lambda: RateLimiter([Limit(5, 60)]), ConfigTypeError, "must be Limit objects"),
        (lambda: RateLimiter(Limit(5, 60), name=""), ConfigError, "name must not be blank"),
        (lambda: RateLimiter(Limit(5, 60), name=7), ConfigTypeError, "name must be a str, got 7"),
        (lambda: RateLimiter(Limit(5, 60), clock=object()), ConfigTypeError, "clock must have monotonic"),
    ],
)
def test_bad_configuration_is_rejected(build: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ConfigError), (float("nan"), ConfigError), (float("inf"), ConfigError), ("1", ConfigTypeError)],
)
def test_acquire_rejects_bad_timeout(timeout: Any, error: type) -> None:
    limiter, _ = make(Limit(1, 60))
    with pytest.raises(error, match="timeout"):
        limiter.acquire(timeout)
    assert limiter.try_acquire(), "a rejected timeout must not take a permit"


def test_limit_is_frozen_and_stores_period_as_float() -> None:
    limit = Limit(10, Decimal("1.5"))
    assert limit == Limit(10, 1.5)
    assert isinstance(limit.period_seconds, float)
    with pytest.raises(AttributeError):
        limit.max_calls = 11  # type: ignore[misc]


def test_limits_and_repr_show_the_settings() -> None:
    limiter, _ = make(Limit(10, 60), Limit(100, 3600))
    assert limiter.limits == (Limit(10, 60.0), Limit(100, 3600.0))
    assert repr(limiter) == (
        "RateLimiter(Limit(max_calls=10, period_seconds=60.0), "
        "Limit(max_calls=100, period_seconds=3600.0), name='test')"
    )


# --- exact windows --------------------------------------------------------------------------------


def test_the_permit_after_max_calls_is_refused_until_the_oldest_leaves() -> None:
    limiter, clock = make(Limit(3, 60))
    assert admitted(limiter, 4) == 3
    clock.advance(59.5)
    assert not limiter.try_acquire()
    assert limiter.retry_after() == 0.5
    clock.advance(0.5)  # now == 60.0: the permits taken at 0.0 lie outside (0.0, 60.0]
    assert limiter.retry_after() == 0.0
    assert admitted(limiter, 4) == 3


def test_staggered_permits_free_one_at_a_time() -> None:
    limiter, clock = make(Limit(3, 60))
    for _ in range(3):
        assert limiter.try_acquire()
        clock.advance(10)
    # now 30: permits at 0, 10, 20
    assert not limiter.try_acquire()
    assert limiter.retry_after() == 30.0
    clock.advance(30)  # 60: the permit at 0 leaves exactly now
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(9.5)
    assert not limiter.try_acquire()
    assert limiter.retry_after() == 0.5
    clock.advance(0.5)  # 70: the permit at 10 leaves
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


def test_windows_work_with_negative_monotonic_times() -> None:
    clock = ManualClock(monotonic_start=-100.0)
    limiter = RateLimiter(Limit(1, 60), clock=clock)
    assert limiter.try_acquire()
    clock.advance(59.5)
    assert not limiter.try_acquire()
    clock.advance(0.5)
    assert limiter.try_acquire()


def test_refused_attempts_are_not_counted() -> None:
    limiter, clock = make(Limit(2, 60))
    assert admitted(limiter, 2) == 2
    clock.advance(30)
    assert admitted(limiter, 1000) == 0
    clock.advance(30)
    assert admitted(limiter, 3) == 2


def test_a_refusal_by_the_hour_limit_records_nothing_in_the_minute_window() -> None:
    limiter, clock = make(Limit(5, 60), Limit(6, 3600))
    assert admitted(limiter, 5) == 5
    clock.advance(60)
    assert admitted(limiter, 1) == 1
    assert admitted(limiter, 10) == 0  # refused by the hour limit alone
    assert in_window(limiter) == [1, 6]
    assert limiter.retry_after() == 3540.0


def test_a_refusal_by_the_minute_limit_records_nothing_in_the_hour_window() -> None:
    limiter, clock = make(Limit(5, 60), Limit(100, 3600))
    assert admitted(limiter, 50) == 5
    assert in_window(limiter) == [5, 5]
    clock.advance(60)
    assert admitted(limiter, 50) == 5
    assert in_window(limiter) == [5, 10]


def test_retry_after_is_the_longest_wait_over_the_full_limits() -> None:
    limiter, clock = make(Limit(2, 10), Limit(3, 100))
    assert admitted(limiter, 2) == 2
    clock.advance(10)
    assert admitted(limiter, 2) == 1  # the hour-like limit is now full
    assert limiter.retry_after() == 90.0
    clock.advance(90)
    assert limiter.retry_after() == 0.0


def test_memory_is_bounded_after_a_million_attempts() -> None:
    limiter, clock = make(Limit(7, 1.0), Limit(50, 60.0))
    try_acquire = limiter.try_acquire
    taken = 0
    for step in range(1000):
        taken += sum(try_acquire() for _ in range(1000))
        clock.advance(0.25 if step % 2 else 0.0)
    assert 0 < taken <= 150  # 125 s of clock time: at most 50 in each of three 60 s spans
    for window, max_calls, _ in limiter._windows:
        assert len(window) <= max_calls


def test_reset_clears_every_window() -> None:
    limiter, _ = make(Limit(2, 60), Limit(3, 3600))
    assert admitted(limiter, 5) == 2
    limiter.reset()
    assert in_window(limiter) == [0, 0]
    assert admitted(limiter, 5) == 2


def test_status_is_json_serialisable_and_reports_each_limit() -> None:
    limiter, clock = make(Limit(2, 60), Limit(10, 3600))
    assert admitted(limiter, 2) == 2
    clock.advance(15)
    status = limiter.status()
    assert json.loads(json.dumps(status)) == status
    assert status == {
        "name": "test",
        "seconds_until_permit": 45.0,
        "limits": [
            {"max_calls": 2, "period_seconds": 60.0, "calls_in_window": 2, "seconds_until_free": 45.0},
            {"max_calls": 10, "period_seconds": 3600.0, "calls_in_window": 2, "seconds_until_free": 0.0},
        ],
    }


def test_freezegun_drives_the_default_clock() -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        limiter = RateLimiter(Limit(2, 60))
        assert admitted(limiter, 3) == 2
        frozen.tick(59)
        assert not limiter.try_acquire()
        assert limiter.retry_after() == pytest.approx(1.0)
        frozen.tick(1)
        assert limiter.try_acquire()


# --- acquire ----------------------------------------------------------------------------------------


def test_acquire_takes_a_free_permit_at_once() -> None:
    limiter, _ = make(Limit(2, 60))
    limiter.acquire()
    limiter.acquire(timeout=0)
    assert not limiter.try_acquire()


def test_acquire_with_zero_timeout_raises_with_retry_after() -> None:
    limiter, clock = make(Limit(1, 60))
    limiter.acquire(0)
    clock.advance(20)
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire(timeout=0)
    assert caught.value.name == "test"
    assert caught.value.retry_after == 40.0
    assert in_window(limiter) == [1]


def test_acquire_raises_when_its_timeout_passes_first() -> None:
    limiter, clock = make(Limit(1, 60))
    assert limiter.try_acquire()
    errors: List[RateLimitExceeded] = []
    entered = threading.Event()

    def waiter() -> None:
        entered.set()
        try:
            limiter.acquire(timeout=5)
        except RateLimitExceeded as exc:
            errors.append(exc)

    thread = start(waiter)
    assert entered.wait(JOIN_SECONDS)
    assert not errors
    clock.advance(10)  # past the deadline (5 s), not yet at the free slot (60 s)
    join(thread)
    assert len(errors) == 1
    assert errors[0].retry_after == 50.0
    assert in_window(limiter) == [1]


def test_acquire_is_unblocked_when_another_thread_advances_the_clock() -> None:
    limiter, clock = make(Limit(1, 60))
    assert limiter.try_acquire()
    entered, done = threading.Event(), threading.Event()

    def waiter() -> None:
        entered.set()
        limiter.acquire(timeout=120)
        done.set()

    thread = start(waiter)
    assert entered.wait(JOIN_SECONDS)
    assert not done.wait(0.1), "acquire returned while the window was full"
    clock.advance(60)
    assert done.wait(JOIN_SECONDS)
    join(thread)
    assert in_window(limiter) == [1]
    assert not limiter.try_acquire()


def test_reset_wakes_blocked_acquire_without_waiting_for_a_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_MAX_WAIT", 60.0)  # only notify_all() can wake the waiters now
    limiter, _ = make(Limit(2, 60))
    assert admitted(limiter, 2) == 2
    done = threading.Barrier(3, timeout=JOIN_SECONDS)
    waiting = threading.Barrier(3, timeout=JOIN_SECONDS)

    def waiter() -> None:
        waiting.wait()
        limiter.acquire()
        done.wait()

    threads = [start(waiter) for _ in range(2)]
    waiting.wait()
    assert limiter.retry_after() == 60.0
    threading.Event().wait(0.1)  # let both threads reach the condition wait
    limiter.reset()
    done.wait()
    for thread in threads:
        join(thread)
    assert in_window(limiter) == [2]


# --- threads ----------------------------------------------------------------------------------------


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, so that an unlocked check-then-record would interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("repeat", range(10))  # a lost race shows up in some runs, not all
def test_concurrent_try_acquire_admits_exactly_max_calls(repeat: int) -> None:
    limiter, _ = make(Limit(50, 60))
    threads_count, attempts = 16, 200
    barrier = threading.Barrier(threads_count, timeout=JOIN_SECONDS)
    counts: List[int] = []
    counts_lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        taken = admitted(limiter, attempts)
        with counts_lock:
            counts.append(taken)

    threads = [start(worker) for _ in range(threads_count)]
    for thread in threads:
        join(thread)
    assert len(counts) == threads_count
    assert sum(counts) == 50
    assert in_window(limiter) == [50]


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_acquire_over_two_limits_admits_exactly_the_tighter_count() -> None:
    limiter, _ = make(Limit(30, 60), Limit(20, 3600))
    barrier = threading.Barrier(8, timeout=JOIN_SECONDS)
    results: List[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(100):
            try:
                limiter.acquire(timeout=0)
                ok = True
            except RateLimitExceeded:
                ok = False
            with lock:
                results.append(ok)

    threads = [start(worker) for _ in range(8)]
    for thread in threads:
        join(thread)
    assert results.count(True) == 20
    assert in_window(limiter) == [20, 20]


# --- against a model that keeps every admitted time ------------------------------------------------


class NaiveModel:
    """Keeps every admitted time and counts the ones still in each window, from scratch."""

    def __init__(self, limits: List[Tuple[int, float]]) -> None:
        self.limits = limits
        self.times: List[float] = []

    def try_acquire(self, now: float) -> bool:
        for max_calls, period in self.limits:
            if sum(1 for t in self.times if t + period > now) >= max_calls:
                return False
        self.times.append(now)
        return True


steps = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0]), st.floats(min_value=0.0, max_value=25.0)),
        st.integers(min_value=1, max_value=4),
    ),
    max_size=80,
)
limit_sets = st.lists(
    st.tuples(st.integers(min_value=1, max_value=6), st.sampled_from([1.0, 5.0, 10.0, 20.0, 7.3])),
    min_size=1,
    max_size=3,
    unique_by=lambda limit: limit[1],
)


@settings(max_examples=300, deadline=None)
@given(limits=limit_sets, steps=steps)
def test_decisions_match_a_naive_model(limits: List[Tuple[int, float]], steps: List[Tuple[float, int]]) -> None:
    limiter, clock = make(*(Limit(max_calls, period) for max_calls, period in limits))
    model = NaiveModel(limits)
    decisions: Dict[str, List[bool]] = {"limiter": [], "model": []}
    for advance, attempts in steps:
        clock.advance(advance)
        now = clock.monotonic()
        for _ in range(attempts):
            decisions["limiter"].append(limiter.try_acquire())
            decisions["model"].append(model.try_acquire(now))
    assert decisions["limiter"] == decisions["model"]
    for max_calls, period in limits:
        for i, end in enumerate(model.times):
            assert sum(1 for t in model.times[: i + 1] if t + period > end) <= max_calls
