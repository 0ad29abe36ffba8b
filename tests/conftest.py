"""Shared fixtures: a manual clock, a breaker factory and helpers that drive calls through a breaker."""

from __future__ import annotations

from typing import Callable, Type

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerManager,
    CircuitType,
    ManualClock,
)

pytest_plugins = ["tests.redis_server", "tests.breakers"]


class Boom(RuntimeError):
    """The failure raised by the helpers below."""


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_breaker(clock: ManualClock) -> Callable[..., CircuitBreaker]:
    """Build a breaker on the manual clock; keyword arguments are CircuitBreakerConfig fields."""

    def make(name: str = "test", circuit_type: CircuitType = CircuitType.GENERIC, **fields: object) -> CircuitBreaker:
        return CircuitBreaker(name, circuit_type, CircuitBreakerConfig(**fields), clock=clock)  # type: ignore[arg-type]

    return make


@pytest.fixture
def manager(clock: ManualClock) -> CircuitBreakerManager:
    return CircuitBreakerManager(clock=clock)


@pytest.fixture
def fail() -> Callable[..., None]:
    """``fail(breaker, times=1, exc_type=Boom)``: make ``times`` calls that raise through the breaker."""

    def do_fail(breaker: CircuitBreaker, times: int = 1, exc_type: Type[BaseException] = Boom) -> None:
        for _ in range(times):
            with pytest.raises(exc_type):
                breaker.call(_raise, exc_type("boom"))

    return do_fail


@pytest.fixture
def succeed() -> Callable[..., None]:
    """``succeed(breaker, times=1)``: make ``times`` calls that succeed through the breaker."""

    def do_succeed(breaker: CircuitBreaker, times: int = 1) -> None:
        for _ in range(times):
            assert breaker.call(lambda: "ok") == "ok"

    return do_succeed
