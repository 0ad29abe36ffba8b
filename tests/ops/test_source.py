"""LocalSource: the status document and the metric families of objects in this process."""

from __future__ import annotations

from typing import Any, Callable, Dict

import pytest

from circuit_breakers import (
    CircuitBreakerManager,
    ConfigError,
    ConfigTypeError,
    ManualClock,
    default_manager,
)
from circuit_breakers.ops import LocalSource, StatusSource

from .conftest import MakeBreakers


def test_a_desk_and_a_manager(make_breakers: MakeBreakers, clock: ManualClock, fail: Callable[..., None]) -> None:
    desk = make_breakers(max_orders_per_minute=4)
    desk.check_now()
    assert desk.record_order()
    desk.engage_kill_switch("risk desk", actor="alice")
    manager = CircuitBreakerManager(clock=clock)
    fail(manager.create_circuit_breaker("broker", config=None), 5)
    source = LocalSource(trading=desk, manager=manager, clock=clock)
    assert isinstance(source, StatusSource)
    document = source.status()
    assert document["generated_at"] == "2026-01-05T14:30:00+00:00"
    assert document["desk"] == "default"
    assert document["trading_state"] == "halted"
    assert document["kill_switch_active"] is True
    assert document["reasons"] == ["max_drawdown: kill switch engaged: risk desk"]
    assert document["latches"] == [
        {"name": "max_drawdown", "reason": "risk desk", "since": "2026-01-05T14:30:00+00:00"}
    ]
    assert document["rate_limit"]["windows"][0] == {
        "window": "minute",
        "max_calls": 4,
        "period_seconds": 60.0,
        "calls_in_window": 1,
    }
    states = {breaker["name"]: breaker["state"] for breaker in document["breakers"]}
    assert states == {
        "daily_loss": "closed",
        "max_drawdown": "forced_open",
        "volatility": "closed",
        "connection": "closed",
        "broker": "open",
    }
    names = {labels.get("name") for each in source.metric_families() for labels, _ in each.samples}
    assert {"broker", "max_drawdown", None} <= names  # None: the trading_* series have no name label


def test_a_named_desk_labels_its_series(make_breakers: MakeBreakers) -> None:
    source = LocalSource(trading=make_breakers(), desk="eu")
    assert source.status()["desk"] == "eu"
    assert all(labels["desk"] == "eu" for each in source.metric_families() for labels, _ in each.samples)
    assert source.manager is None  # a desk alone: the default manager is not exported


def test_nothing_given_means_the_default_manager() -> None:
    source = LocalSource()
    assert source.manager is default_manager
    assert source.status()["trading_state"] is None


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"trading": "desk"}, ConfigTypeError, "trading must be a TradingCircuitBreakers, got 'desk'"),
        ({"manager": 3}, ConfigTypeError, "manager must be a CircuitBreakerManager, got 3"),
        ({"desk": 3}, ConfigTypeError, "desk must be a str, got 3"),
        ({"desk": " "}, ConfigError, "desk must not be empty, got ' '"),
        ({"clock": "now"}, ConfigTypeError, "clock must be a Clock, got 'now'"),
    ],
)
def test_bad_arguments(arguments: Dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        LocalSource(**arguments)
