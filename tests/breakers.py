"""Every breaker implementation, for the contract suite: the ``make_any`` fixture (a pytest plugin).

The contract is breaker.py's state x event table, which every implementation follows. Its tests
take ``make_any`` and run once per implementation: ``[in_process]`` builds a CircuitBreaker,
``[redis]`` a RedisCircuitBreaker against a real redis-server, its store on the test's ManualClock
(the ``clock`` fixture), so that time moves alike for both. They live in
tests/test_breaker_contract.py, tests/test_breaker_contract_api.py, and the call styles and
refusals of tests/test_call_styles.py and tests/test_breaker_refusals.py. What one implementation
alone does is tested in its own file (tests/test_breaker.py, tests/redis/test_breaker.py).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, Iterator, List, Union

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ManualClock,
    RedisCircuitBreaker,
    RedisStore,
)

AnyBreaker = Union[CircuitBreaker, RedisCircuitBreaker]
MakeAny = Callable[..., Any]
"""``make_any(name="test", circuit_type=GENERIC, *, backoff=None, **config_fields)``: a new breaker of the
implementation under test."""

IMPLEMENTATIONS = ["in_process", "redis"]


@pytest.fixture(params=IMPLEMENTATIONS)
def make_any(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[MakeAny]:
    """Build breakers of one implementation on the test's ManualClock; keywords are CircuitBreakerConfig fields.

    Redis breakers built by one test share a namespace of the test's own (so two built with one
    name are one shared breaker) on a session-wide redis-server that keeps nothing on disk.
    """
    if request.param == "in_process":

        def local(
            name: str = "test", circuit_type: CircuitType = CircuitType.GENERIC, *, backoff: Any = None, **fields: Any
        ) -> AnyBreaker:
            return CircuitBreaker(name, circuit_type, CircuitBreakerConfig(**fields), clock=clock, backoff=backoff)

        yield local
        return
    client = request.getfixturevalue("memory_redis_server").client()
    namespace = f"contract-{uuid.uuid4().hex[:12]}"

    def shared(
        name: str = "test", circuit_type: CircuitType = CircuitType.GENERIC, *, backoff: Any = None, **fields: Any
    ) -> AnyBreaker:
        store = RedisStore(client, namespace, clock=clock)
        return RedisCircuitBreaker(name, circuit_type, CircuitBreakerConfig(**fields), store=store, backoff=backoff)

    yield shared
    client.close()


def rejection(breaker: AnyBreaker) -> CircuitOpenException:
    """Make a call that must be rejected without running; return the CircuitOpenException."""
    called: List[int] = []
    with pytest.raises(CircuitOpenException) as info:
        breaker.call(called.append, 1)
    assert called == []
    return info.value


def join_or_fail(thread: threading.Thread) -> None:
    thread.join(timeout=10)
    assert not thread.is_alive(), "thread still running: deadlock?"


def trip_again_from_half_open(breaker: AnyBreaker, clock: ManualClock, fail: Callable[..., None]) -> None:
    """Wait out the open timeout, then fail the half-open trial: the next trip in a row."""
    clock.advance(breaker.current_backoff)
    assert breaker.state is CircuitState.HALF_OPEN
    fail(breaker)
