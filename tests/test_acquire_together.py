"""acquire_together: every lock it takes is released exactly once on every exit, and callers whose
limiter sets overlap in any order neither deadlock nor lose or double a permit."""

from __future__ import annotations

import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

import pytest

from circuit_breakers.clock import ManualClock
from circuit_breakers.errors import StateStoreError
from circuit_breakers.ratelimit import Limit, Permits, RateLimiter, acquire_together

WAIT = 10.0  # bound for joins; never reached when nothing deadlocks


class Remote:
    """A limiter of another kind (as a shared one is): answers ``answer``, or raises it."""

    name = "remote"

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls = 0

    @property
    def limits(self) -> Tuple[Limit, ...]:
        return (Limit(1, 60),)

    def try_acquire(self) -> bool:
        self.calls += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        return bool(self.answer)

    def retry_after(self) -> float:
        return 0.0

    def status(self) -> Dict[str, Any]:
        return {}

    def reset(self) -> None:
        pass


def used(limiter: RateLimiter) -> int:
    return int(limiter.status()["limits"][0]["calls_in_window"])


def assert_unlocked(*limiters: RateLimiter) -> None:
    for limiter in limiters:
        # Released exactly once: free now (not held), and a second release would have raised already.
        assert limiter._lock.acquire(timeout=WAIT)
        limiter._lock.release()
        assert not limiter._lock.locked()


@pytest.fixture
def pair() -> Tuple[RateLimiter, RateLimiter]:
    clock = ManualClock()
    return RateLimiter(Limit(2, 60), name="a", clock=clock), RateLimiter(Limit(3, 60), name="b", clock=clock)


def test_success_takes_one_permit_from_each_and_releases_both(pair: Tuple[RateLimiter, RateLimiter]) -> None:
    a, b = pair
    assert acquire_together(a, b, a) is None  # a limiter named twice gives one permit
    assert (used(a), used(b)) == (1, 1)
    assert_unlocked(a, b)


def test_a_local_refusal_takes_nothing_and_releases_both(pair: Tuple[RateLimiter, RateLimiter]) -> None:
    a, b = pair
    assert acquire_together(a, b) is None
    assert acquire_together(a, b) is None
    assert acquire_together(b, a) is a
    assert (used(a), used(b)) == (2, 2)
    assert_unlocked(a, b)


def test_a_remote_refusal_takes_nothing_and_releases_both(pair: Tuple[RateLimiter, RateLimiter]) -> None:
    a, b = pair
    remote = Remote(False)
    assert acquire_together(a, remote, b) is remote
    assert remote.calls == 1
    assert (used(a), used(b)) == (0, 0)
    assert_unlocked(a, b)


@pytest.mark.parametrize("error", [StateStoreError("store down"), KeyboardInterrupt()])
def test_a_remote_that_raises_takes_nothing_and_releases_both(
    pair: Tuple[RateLimiter, RateLimiter], error: BaseException
) -> None:
    a, b = pair
    with pytest.raises(type(error)):
        acquire_together(a, b, Remote(error))
    assert (used(a), used(b)) == (0, 0)
    assert_unlocked(a, b)
    assert acquire_together(a, b) is None  # and the next caller is served


def test_callers_with_overlapping_sets_in_any_order_neither_deadlock_nor_miscount() -> None:
    clock = ManualClock()
    limiters = [RateLimiter(Limit(100_000, 60), name=f"l{i}", clock=clock) for i in range(3)]
    x, y, z = limiters
    orders: List[Tuple[Permits, ...]] = [(x, y), (y, x), (y, z, x), (z, x), (x, z, y)]
    rounds = 300
    start = threading.Barrier(len(orders))
    answers: List[List[Optional[Permits]]] = [[] for _ in orders]

    def caller(index: int) -> None:
        start.wait(WAIT)
        for _ in range(rounds):
            answers[index].append(acquire_together(*orders[index]))

    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over inside the calls, so that they interleave
    try:
        threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(len(orders))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads), "deadlocked"
    finally:
        sys.setswitchinterval(saved)
    assert all(answer == [None] * rounds for answer in answers)
    expected = {id(limiter): 0 for limiter in limiters}
    for order in orders:
        for limiter in set(order):
            expected[id(limiter)] += rounds
    assert [used(limiter) for limiter in limiters] == [expected[id(limiter)] for limiter in limiters]
    assert_unlocked(*limiters)
