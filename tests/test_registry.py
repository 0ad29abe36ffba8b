"""CircuitBreakerManager: registration, lookup, system status and bulk reset."""

from __future__ import annotations

import json
import threading
from typing import Callable, Dict, List

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerManager,
    CircuitState,
    CircuitType,
    DuplicateBreakerError,
    ManualClock,
    default_manager,
)

Drive = Callable[..., None]

SYSTEM_KEYS = {"total_circuit_breakers", "open_breakers", "closed_breakers", "half_open_breakers", "circuit_breakers"}


@pytest.fixture
def three_states(manager: CircuitBreakerManager, clock: ManualClock, fail: Drive) -> Dict[str, CircuitBreaker]:
    """One closed, one open and one half-open breaker, all in ``manager``."""
    closed = manager.create_circuit_breaker("closed_one")
    half_open = manager.create_circuit_breaker("half_open_one", config=CircuitBreakerConfig(failure_threshold=1))
    fail(half_open)
    clock.advance(60)
    opened = manager.create_circuit_breaker("open_one", config=CircuitBreakerConfig(failure_threshold=1))
    fail(opened)
    return {"closed": closed, "open": opened, "half_open": half_open}


def test_create_returns_configured_breaker(manager: CircuitBreakerManager) -> None:
    config = CircuitBreakerConfig(failure_threshold=2)
    breaker = manager.create_circuit_breaker("broker", CircuitType.CONNECTION_FAILURE, config)
    assert breaker.name == "broker"
    assert breaker.circuit_type is CircuitType.CONNECTION_FAILURE
    assert breaker.config is config


def test_create_registers_breaker(manager: CircuitBreakerManager) -> None:
    breaker = manager.create_circuit_breaker("broker")
    assert manager.get_circuit_breaker("broker") is breaker
    assert "broker" in manager
    assert len(manager) == 1


def test_create_defaults_to_generic_type_and_default_config(manager: CircuitBreakerManager) -> None:
    breaker = manager.create_circuit_breaker("plain")
    assert breaker.circuit_type is CircuitType.GENERIC
    assert breaker.config == CircuitBreakerConfig()


def test_create_duplicate_raises_and_keeps_original(manager: CircuitBreakerManager) -> None:
    original = manager.create_circuit_breaker("broker")
    with pytest.raises(DuplicateBreakerError) as info:
        manager.create_circuit_breaker("broker")
    assert isinstance(info.value, ValueError)
    assert "broker" in str(info.value)
    assert manager.get_circuit_breaker("broker") is original


def test_get_unknown_returns_none(manager: CircuitBreakerManager) -> None:
    assert manager.get_circuit_breaker("nope") is None


def test_manager_clock_drives_its_breakers(manager: CircuitBreakerManager, clock: ManualClock, fail: Drive) -> None:
    breaker = manager.create_circuit_breaker("timed", config=CircuitBreakerConfig(failure_threshold=1))
    fail(breaker)
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN


def test_add_registers_existing_breaker(manager: CircuitBreakerManager) -> None:
    breaker = CircuitBreaker("external")
    manager.add(breaker)
    assert manager.get_circuit_breaker("external") is breaker
    with pytest.raises(DuplicateBreakerError):
        manager.add(CircuitBreaker("external"))


def test_remove_unregisters(manager: CircuitBreakerManager) -> None:
    breaker = manager.create_circuit_breaker("gone")
    assert manager.remove("gone") is breaker
    assert manager.get_circuit_breaker("gone") is None
    assert manager.remove("gone") is None


def test_iteration_lists_breakers(manager: CircuitBreakerManager) -> None:
    a, b = manager.create_circuit_breaker("a"), manager.create_circuit_breaker("b")
    assert list(manager) == [a, b]


def test_get_or_create_creates_then_reuses(manager: CircuitBreakerManager) -> None:
    created = manager.get_or_create("x", CircuitType.VOLATILITY, CircuitBreakerConfig(failure_threshold=2))
    assert manager.get_or_create("x") is created
    assert manager.get_or_create("x", CircuitType.VOLATILITY, CircuitBreakerConfig(failure_threshold=2)) is created


def test_get_or_create_with_other_config_raises(manager: CircuitBreakerManager) -> None:
    manager.get_or_create("x", config=CircuitBreakerConfig(failure_threshold=2))
    with pytest.raises(DuplicateBreakerError):
        manager.get_or_create("x", config=CircuitBreakerConfig(failure_threshold=3))


def test_get_or_create_with_other_type_raises(manager: CircuitBreakerManager) -> None:
    manager.get_or_create("x", CircuitType.DAILY_LOSS)
    with pytest.raises(DuplicateBreakerError):
        manager.get_or_create("x", CircuitType.MAX_DRAWDOWN)


def test_system_status_of_empty_manager(manager: CircuitBreakerManager) -> None:
    assert manager.get_system_status() == {
        "total_circuit_breakers": 0,
        "open_breakers": 0,
        "closed_breakers": 0,
        "half_open_breakers": 0,
        "circuit_breakers": {},
    }


def test_system_status_counts_states(manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]) -> None:
    status = manager.get_system_status()
    assert set(status) == SYSTEM_KEYS
    assert status["total_circuit_breakers"] == 3
    assert (status["open_breakers"], status["closed_breakers"], status["half_open_breakers"]) == (1, 1, 1)


def test_system_status_maps_names_to_breaker_status(
    manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]
) -> None:
    breakers = manager.get_system_status()["circuit_breakers"]
    assert set(breakers) == {"closed_one", "open_one", "half_open_one"}
    assert breakers["open_one"]["state"] == "open"
    assert breakers["half_open_one"]["state"] == "half_open"
    assert breakers["closed_one"] == three_states["closed"].get_status()


def test_system_status_is_json_serialisable(
    manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]
) -> None:
    status = manager.get_system_status()
    assert json.loads(json.dumps(status)) == status


def test_any_open_false_when_none_open(manager: CircuitBreakerManager) -> None:
    manager.create_circuit_breaker("a")
    assert manager.any_open() is False
    assert CircuitBreakerManager().any_open() is False


def test_any_open_true_with_an_open_breaker(
    manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]
) -> None:
    assert manager.any_open() is True


def test_half_open_is_not_open(manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]) -> None:
    three_states["open"].force_close()
    assert manager.any_open() is False
    assert manager.get_open_breakers() == []


def test_get_open_breakers_lists_names(manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]) -> None:
    assert manager.get_open_breakers() == ["open_one"]
    three_states["closed"].force_open()
    assert sorted(manager.get_open_breakers()) == ["closed_one", "open_one"]


def test_reset_all_closes_and_zeroes_every_breaker(
    manager: CircuitBreakerManager, three_states: Dict[str, CircuitBreaker]
) -> None:
    three_states["closed"].force_open()
    manager.reset_all()
    for breaker in three_states.values():
        assert breaker.state is CircuitState.CLOSED
        assert breaker.metrics.total_requests == 0
    assert manager.get_system_status()["closed_breakers"] == 3


def test_callback_may_use_manager_without_deadlock(manager: CircuitBreakerManager, fail: Drive) -> None:
    breaker = manager.create_circuit_breaker("cb", config=CircuitBreakerConfig(failure_threshold=1))
    seen: List[object] = []
    breaker.register_trip_callback(lambda name, kind: seen.append(manager.get_system_status()["open_breakers"]))
    breaker.register_trip_callback(lambda name, kind: manager.reset_all())
    worker = threading.Thread(target=fail, args=(breaker,))
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert seen == [1]
    assert breaker.state is CircuitState.CLOSED


def test_default_manager_is_a_manager() -> None:
    assert isinstance(default_manager, CircuitBreakerManager)


def test_repr_counts_breakers(manager: CircuitBreakerManager) -> None:
    manager.create_circuit_breaker("a")
    assert "1" in repr(manager)
