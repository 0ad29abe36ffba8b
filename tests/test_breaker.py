"""What only the in-process CircuitBreaker does: its construction, its clock, and freezegun.

The rules every breaker follows are tested once for every implementation, in the contract suite
(tests/test_breaker_contract.py, tests/test_breaker_contract_api.py); the lock-free paths in
tests/test_fast_path.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

import pytest
from freezegun import freeze_time

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerError,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ConfigError,
    ConfigTypeError,
    ManualClock,
)

MakeBreaker = Callable[..., CircuitBreaker]
Drive = Callable[..., None]

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def test_circuit_open_exception_is_a_library_error() -> None:
    assert issubclass(CircuitOpenException, CircuitBreakerError)


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError):
        CircuitBreaker(name)


@pytest.mark.parametrize("circuit_type", ["generic", None, 1])
def test_non_circuit_type_is_rejected(circuit_type: object) -> None:
    with pytest.raises(ConfigTypeError):
        CircuitBreaker("b", circuit_type)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", [{"failure_threshold": 3}, "config", 5])
def test_wrong_config_type_is_rejected(config: object) -> None:
    with pytest.raises(ConfigTypeError):
        CircuitBreaker("b", CircuitType.GENERIC, config)  # type: ignore[arg-type]


class _OnlyMonotonic:
    def monotonic(self) -> float:
        return 0.0


@pytest.mark.parametrize("bad_clock", [object(), _OnlyMonotonic(), 3.0])
def test_clock_without_methods_is_rejected(bad_clock: object) -> None:
    with pytest.raises(ConfigTypeError):
        CircuitBreaker("b", clock=bad_clock)  # type: ignore[arg-type]


def test_defaults_are_generic_type_and_default_config() -> None:
    breaker = CircuitBreaker("b")
    assert breaker.circuit_type is CircuitType.GENERIC
    assert breaker.config == CircuitBreakerConfig()
    assert breaker.name == "b"


def test_repr_names_breaker(make_breaker: MakeBreaker) -> None:
    assert "orders" in repr(make_breaker("orders"))


def test_decimal_failure_window_is_usable(clock: ManualClock) -> None:
    config = CircuitBreakerConfig(failure_window_seconds=Decimal("60"))
    breaker = CircuitBreaker("decimal", config=config, clock=clock)
    assert breaker.call(lambda: 1) == 1


def test_failures_expire_with_negative_monotonic_clock(fail: Drive) -> None:
    clock = ManualClock(monotonic_start=-1000.0)
    breaker = CircuitBreaker("neg", config=CircuitBreakerConfig(failure_threshold=2), clock=clock)
    fail(breaker)
    clock.advance(120)
    fail(breaker)
    assert breaker.state is CLOSED


# --- the default clock under freezegun --------------------------------------------------------


def test_freezegun_drives_open_timeout(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=60))
        fail(breaker)
        frozen.tick(59)
        assert breaker.state is OPEN
        frozen.tick(1)
        assert breaker.state is HALF_OPEN


def test_freezegun_drives_failure_window(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=2, failure_window_seconds=60))
        fail(breaker)
        frozen.tick(61)
        fail(breaker)
        assert breaker.state is CLOSED
        frozen.tick(1)
        fail(breaker)
        assert breaker.state is OPEN


def test_freezegun_drives_wall_times_and_retry(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=1))
        fail(breaker)
        frozen.tick(15)
        status = breaker.get_status()
    assert status["opened_at"] == "2026-01-05T14:30:00+00:00"
    assert status["last_failure_time"] == "2026-01-05T14:30:00+00:00"
    assert status["seconds_until_retry"] == pytest.approx(45.0)


def test_freezegun_half_open_timeout(fail: Drive) -> None:
    with freeze_time("2026-01-05 14:30:00") as frozen:
        breaker = CircuitBreaker("fg", config=CircuitBreakerConfig(failure_threshold=1, half_open_timeout_seconds=30))
        fail(breaker)
        frozen.tick(60)
        with breaker:
            frozen.tick(30)
            assert breaker.state is OPEN
        assert breaker.get_status()["seconds_until_retry"] == pytest.approx(120.0)
