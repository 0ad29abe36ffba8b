"""Metric families built from real breakers, real trading desks and hand-built statuses."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, FrozenSet, List, Tuple

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerManager,
    ConfigError,
    ConfigTypeError,
    ManualClock,
    RejectReason,
    TradingState,
)
from circuit_breakers.ops.desks import families, name_desks
from circuit_breakers.ops.metrics import (
    FAMILY_NAMES,
    MetricFamily,
    breaker_families,
    merge,
    trading_families,
    window_name,
)

from .conftest import MakeBreakers, trading_status

Key = Tuple[str, FrozenSet[Tuple[str, str]]]


def flat(built: List[MetricFamily]) -> Dict[Key, float]:
    """Every sample as {(family name, labels): value}; fails on a repeated series."""
    found: Dict[Key, float] = {}
    for each in built:
        for labels, value in each.samples:
            key = (each.name, frozenset(labels.items()))
            assert key not in found, f"series exported twice: {key}"
            found[key] = value
    return found


def at(found: Dict[Key, float], metric: str, /, **labels: str) -> float:
    return found[(metric, frozenset(labels.items()))]


def series(found: Dict[Key, float], metric: str) -> Dict[FrozenSet[Tuple[str, str]], float]:
    return {labels: value for (family, labels), value in found.items() if family == metric}


def test_breaker_families_follow_a_breaker_through_a_trip(
    make_breaker: Callable[..., CircuitBreaker], fail: Callable[..., None], succeed: Callable[..., None]
) -> None:
    breaker = make_breaker("broker", failure_threshold=5, open_timeout_seconds=30)
    succeed(breaker, 3)
    fail(breaker, 2)
    closed = flat(breaker_families([breaker.get_status()]))
    assert at(closed, "circuit_breakers_state", name="broker", state="closed") == 1
    assert at(closed, "circuit_breakers_failure_rate", name="broker") == pytest.approx(2 / 5)
    assert at(closed, "circuit_breakers_trips_total", name="broker") == 0
    fail(breaker, 3)  # five failures in the window: trips
    assert not breaker.allow()  # one call refused while open
    found = flat(breaker_families([breaker.get_status()]))
    assert {k: v for k, v in series(found, "circuit_breakers_state").items() if v} == {
        frozenset({("name", "broker"), ("state", "open")}): 1.0
    }
    assert len(series(found, "circuit_breakers_state")) == 4  # closed, open, half_open, forced_open
    assert at(found, "circuit_breakers_calls_total", name="broker", kind="successful") == 3
    assert at(found, "circuit_breakers_calls_total", name="broker", kind="failed") == 5
    assert at(found, "circuit_breakers_calls_total", name="broker", kind="ignored") == 0
    assert at(found, "circuit_breakers_calls_total", name="broker", kind="not_permitted") == 1
    assert at(found, "circuit_breakers_trips_total", name="broker") == 1


def test_a_forced_open_breaker_is_forced_open_and_not_open(make_breaker: Callable[..., CircuitBreaker]) -> None:
    breaker = make_breaker("venue")
    breaker.force_open()
    found = flat(breaker_families([breaker.get_status()]))
    assert at(found, "circuit_breakers_state", name="venue", state="forced_open") == 1
    assert at(found, "circuit_breakers_state", name="venue", state="open") == 0
    assert at(found, "circuit_breakers_state", name="venue", state="closed") == 0


def test_values_a_store_cannot_give_are_left_out() -> None:
    status: Dict[str, Any] = {  # a shared breaker's status while its store is down
        "name": "shared",
        "state": "open",
        "forced_open": False,
        "failure_rate": None,
        "successful_requests": 4,
        "failed_requests": 1,
        "ignored_requests": None,
        "rejected_requests": 2,
        "circuit_trips": None,
    }
    found = flat(breaker_families([status]))
    assert at(found, "circuit_breakers_state", name="shared", state="open") == 1
    assert set(series(found, "circuit_breakers_calls_total")) == {
        frozenset({("name", "shared"), ("kind", kind)}) for kind in ("successful", "failed", "not_permitted")
    }
    assert series(found, "circuit_breakers_failure_rate") == {}
    assert series(found, "circuit_breakers_trips_total") == {}


def test_trading_families_of_a_halted_desk(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    desk = make_breakers(max_orders_per_minute=5, max_orders_per_hour=50)
    desk.check_now()
    for _ in range(2):
        assert desk.record_order()
    desk.engage_kill_switch("risk desk")
    clock.advance(4)
    found = flat(trading_families(desk.get_status()))
    assert {state: at(found, "trading_state", state=state) for state in ("active", "reducing", "halted")} == {
        "active": 0,
        "reducing": 0,
        "halted": 1,
    }
    assert at(found, "trading_kill_switch_engaged") == 1
    assert at(found, "trading_breaker_tripped", breaker="max_drawdown") == 1
    assert at(found, "trading_breaker_tripped", breaker="daily_loss") == 0
    assert at(found, "trading_breaker_tripped", breaker="connection") == 0
    assert at(found, "trading_orders_in_window", window="minute") == 2
    assert at(found, "trading_orders_in_window", window="hour") == 2
    assert at(found, "trading_order_limit", window="minute") == 5
    assert at(found, "trading_order_limit", window="hour") == 50
    assert at(found, "trading_last_reading_age_seconds") == 4
    decisions = series(found, "trading_order_decisions_total")
    assert {dict(labels)["reason"] for labels in decisions} >= {"accepted", "trading_halted", "rate_limit"}
    assert set(decisions.values()) == {0.0}  # no order went through trade_guard


def test_order_decisions_are_read_when_the_status_has_them() -> None:
    decisions = {"accepted": 12, "rate_limit": 3, "price_collar": 1, "future_reason": 2}
    status = trading_status(details={"orders": {"decisions": decisions}})
    found = flat(trading_families(status))
    counts = {dict(labels)["reason"]: value for labels, value in series(found, "trading_order_decisions_total").items()}
    expected = {"accepted": 12, **{reason.value: 0 for reason in RejectReason}, "future_reason": 2}
    expected.update(rate_limit=3, price_collar=1)
    assert counts == expected


def test_reducing_desk_and_a_fail_closed_condition() -> None:
    status = trading_status(
        state=TradingState.HALTED,
        blocking=("daily_loss", "provider"),
        reasons=("daily_loss: P&L -2.10%", "provider: unreachable"),
        last_reading_age=None,
        details={"daily_loss": {"tripped": True}, "rate_limit": {"limits": None, "error": "redis down"}},
    )
    found = flat(trading_families(status, {"desk": "eu"}))
    assert at(found, "trading_state", desk="eu", state="halted") == 1
    assert at(found, "trading_breaker_tripped", desk="eu", breaker="daily_loss") == 1
    assert at(found, "trading_breaker_tripped", desk="eu", breaker="provider") == 1
    assert at(found, "trading_breaker_tripped", desk="eu", breaker="volatility") == 0
    assert series(found, "trading_orders_in_window") == {}  # the store cannot say: nothing, not zero
    assert series(found, "trading_order_limit") == {}
    assert at(found, "trading_last_reading_age_seconds", desk="eu") == math.inf
    assert all(dict(labels).get("desk") == "eu" for (_, labels) in found)


def test_window_names() -> None:
    assert [window_name(60), window_name(3600.0), window_name(300), window_name(None)] == [
        "minute",
        "hour",
        "300s",
        "unknown",
    ]


def test_several_desks_are_told_apart_by_a_desk_label(make_breakers: MakeBreakers) -> None:
    eu, us = make_breakers(), make_breakers()
    us.engage_kill_switch("us risk")
    manager = CircuitBreakerManager()
    manager.create_circuit_breaker("connection")  # the same name as each desk's own breaker
    found = flat(families(manager, name_desks([eu, us], ["eu", "us"])))  # flat() fails on a repeated series
    assert at(found, "trading_kill_switch_engaged", desk="eu") == 0
    assert at(found, "trading_kill_switch_engaged", desk="us") == 1
    assert at(found, "circuit_breakers_state", desk="us", name="max_drawdown", state="forced_open") == 1
    assert at(found, "circuit_breakers_state", name="connection", state="closed") == 1  # the manager's: no desk
    assert at(found, "circuit_breakers_state", desk="eu", name="connection", state="closed") == 1


def test_one_unnamed_desk_has_no_desk_label(make_breakers: MakeBreakers) -> None:
    built = families(None, name_desks(make_breakers()))
    assert [each.name for each in built] == list(FAMILY_NAMES)
    assert all("desk" not in labels for each in built for labels, _ in each.samples)


@pytest.mark.parametrize(
    ("count", "desks", "error", "match"),
    [
        (2, None, ConfigError, "desks must name each of the 2"),
        (2, ["eu"], ConfigError, "desks must name each of the 2"),
        (2, ["eu", "eu"], ConfigError, "desk names must differ"),
        (1, [""], ConfigError, "must not be empty"),
        (1, [7], ConfigTypeError, "desks must be str names, got 7"),
    ],
)
def test_desk_names_are_checked(make_breakers: MakeBreakers, count: int, desks: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        name_desks([make_breakers() for _ in range(count)], desks)


def test_the_same_desk_twice_and_other_objects_are_refused(make_breakers: MakeBreakers) -> None:
    desk = make_breakers()
    with pytest.raises(ConfigError, match="the same TradingCircuitBreakers twice"):
        name_desks([desk, desk], ["a", "b"])
    with pytest.raises(ConfigTypeError, match="trading must hold TradingCircuitBreakers, got 'x'"):
        name_desks(["x"])  # type: ignore[list-item]
    with pytest.raises(ConfigTypeError, match="trading must be TradingCircuitBreakers or several, got 5"):
        name_desks(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("bad name", "gauge", ""), ConfigError, "metric name must match"),
        (("x", "histogram", ""), ConfigError, "must be 'gauge' or 'counter', got 'histogram'"),
        (("calls", "counter", ""), ConfigError, "counter name must end in _total, got 'calls'"),
        (("x", "gauge", 5), ConfigTypeError, "help of x must be a str"),
        (("x", "gauge", "", (({"bad-label": "v"}, 1.0),)), ConfigError, "label name in x must match"),
        (("x", "gauge", "", (({"__name__": "v"}, 1.0),)), ConfigError, "'__name__'"),
        (("x", "gauge", "", (({"a": 1}, 1.0),)), ConfigTypeError, "label a of x must be a str, got 1"),
        (("x", "gauge", "", (({}, True),)), ConfigTypeError, "sample value of x must be a number, got True"),
        (("x", "gauge", "", (({}, "1"),)), ConfigTypeError, "sample value of x must be a number, got '1'"),
    ],
)
def test_metric_family_checks_its_parts(args: Tuple[Any, ...], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        MetricFamily(*args)


def test_a_family_copies_its_samples() -> None:
    labels = {"name": "a"}
    built = MetricFamily("x", "gauge", "", ((labels, 1),))
    labels["name"] = "changed"
    assert built.samples == (({"name": "a"}, 1.0),)


def test_merge_keeps_the_first_of_a_repeated_series_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    first = breaker_families([{"name": "twin", "state": "closed", "circuit_trips": 1}])
    second = breaker_families([{"name": "twin", "state": "open", "circuit_trips": 5}])
    with caplog.at_level(logging.WARNING, logger="circuit_breakers.ops.metrics"):
        merged = merge([first, second])
        merge([first, second])
    found = flat(merged)
    assert at(found, "circuit_breakers_trips_total", name="twin") == 1
    assert at(found, "circuit_breakers_state", name="twin", state="closed") == 1
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        "two objects export the series of name='twin'; the second's are dropped (give them distinct names)"
    ]


def test_merge_refuses_one_name_with_two_types() -> None:
    with pytest.raises(ConfigError, match="two types or help texts"):
        merge([[MetricFamily("x_total", "counter", "")], [MetricFamily("x_total", "counter", "other help")]])
