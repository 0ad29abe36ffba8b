"""The prometheus_client collector: registered on fresh registries, scraped with generate_latest."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, FrozenSet, Iterator, Tuple

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerManager,
    ConfigError,
    ConfigTypeError,
    ManualClock,
    circuit_breaker,
    default_manager,
)
from circuit_breakers.ops import FAMILY_NAMES, register, render_text, unregister

from .conftest import MakeBreakers

ROOT = Path(__file__).resolve().parents[2]
Series = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def generate_latest(registry: Any) -> str:
    """The registry's text exposition, as prometheus_client writes it."""
    return importlib.import_module("prometheus_client").generate_latest(registry).decode("utf-8")  # type: ignore[no-any-return]


@pytest.fixture
def registry(prometheus_client: ModuleType) -> Any:
    return prometheus_client.CollectorRegistry()


def scrape(registry: Any) -> Series:
    """generate_latest() of the registry, read back with prometheus_client's parser."""
    client = importlib.import_module("prometheus_client.parser")
    found: Series = {}
    for each in client.text_string_to_metric_families(generate_latest(registry)):
        for sample in each.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Series, metric: str, /, **labels: str) -> float:
    return found[(metric, frozenset(labels.items()))]


def test_a_registered_manager_is_scraped_as_it_changes(
    registry: Any, clock: ManualClock, fail: Callable[..., None], succeed: Callable[..., None]
) -> None:
    manager = CircuitBreakerManager(clock=clock)
    broker = manager.create_circuit_breaker("broker")
    succeed(broker, 2)
    collector = register(manager=manager, registry=registry)
    before = scrape(registry)
    assert value(before, "circuit_breakers_state", name="broker", state="closed") == 1
    assert value(before, "circuit_breakers_calls_total", name="broker", kind="successful") == 2
    assert value(before, "circuit_breakers_trips_total", name="broker") == 0
    fail(broker, 5)
    after = scrape(registry)
    assert value(after, "circuit_breakers_state", name="broker", state="open") == 1
    assert value(after, "circuit_breakers_calls_total", name="broker", kind="failed") == 5
    assert value(after, "circuit_breakers_trips_total", name="broker") == 1
    assert collector.manager is manager


def test_generate_latest_matches_our_own_writer(registry: Any, make_breakers: MakeBreakers) -> None:
    desk = make_breakers()
    desk.check_now()
    collector = register(trading=desk, registry=registry)
    client_text = generate_latest(registry)
    ours = render_text(collector.families())
    # Same lines, except the value formatting (the client writes 1.0 where we write 1) and the
    # client's extra *_created series, which it only adds to counters it made itself.
    assert [line.rsplit(" ", 1)[0] for line in client_text.splitlines()] == [
        line.rsplit(" ", 1)[0] for line in ours.splitlines()
    ]
    for theirs, mine in zip(client_text.splitlines(), ours.splitlines()):
        if not theirs.startswith("#"):
            assert float(theirs.rsplit(" ", 1)[1]) == float(mine.rsplit(" ", 1)[1])


def test_several_desks_in_one_registration(registry: Any, make_breakers: MakeBreakers) -> None:
    eu, us = make_breakers(), make_breakers()
    us.engage_kill_switch("us risk")
    register(trading=[eu, us], desks=["eu", "us"], registry=registry)
    found = scrape(registry)
    assert value(found, "trading_kill_switch_engaged", desk="eu") == 0
    assert value(found, "trading_kill_switch_engaged", desk="us") == 1
    assert value(found, "trading_state", desk="us", state="halted") == 1
    assert value(found, "circuit_breakers_state", desk="us", name="max_drawdown", state="forced_open") == 1


def test_registering_twice_on_one_registry_is_refused_until_unregistered(
    registry: Any, make_breakers: MakeBreakers
) -> None:
    desk = make_breakers()
    first = register(trading=desk, registry=registry)
    with pytest.raises(ConfigError, match=r"already registered on this registry.*unregister"):
        register(trading=desk, registry=registry)
    with pytest.raises(ConfigError, match="already registered on this registry"):
        register(manager=CircuitBreakerManager(), registry=registry)
    unregister(first)
    first.unregister()  # idempotent
    second = register(trading=desk, registry=registry)
    assert value(scrape(registry), "trading_state", state="active") == 1
    second.unregister()
    assert scrape(registry) == {}


def test_another_collector_with_these_names_is_a_clear_error(prometheus_client: ModuleType, registry: Any) -> None:
    prometheus_client.Gauge("trading_state", "someone else's", registry=registry)
    with pytest.raises(ConfigError, match=r"cannot register circuit_breakers metrics.*trading_state"):
        register(registry=registry)


def test_the_default_manager_is_exported_when_no_desk_is_given(
    registry: Any, make_breakers: MakeBreakers, fail: Callable[..., None]
) -> None:
    name = "ops-test-default-manager"

    @circuit_breaker(name, failure_threshold=1)
    def flaky() -> None:
        raise RuntimeError("down")

    try:
        with pytest.raises(RuntimeError):
            flaky()
        collector = register(registry=registry)
        assert collector.manager is default_manager
        assert value(scrape(registry), "circuit_breakers_state", name=name, state="open") == 1
        collector.unregister()
        with_desk = register(trading=make_breakers(), registry=registry)
        assert with_desk.manager is None
        assert not any(dict(labels).get("name") == name for _, labels in scrape(registry))
        with_desk.unregister()
        both = register(manager=default_manager, trading=make_breakers(), registry=registry)
        assert both.manager is default_manager
    finally:
        default_manager.remove(name)


def test_the_default_registry_is_used_when_none_is_given(prometheus_client: ModuleType) -> None:
    collector = register(manager=CircuitBreakerManager())
    try:
        assert collector.registry is prometheus_client.REGISTRY
        assert "# TYPE circuit_breakers_state gauge" in generate_latest(prometheus_client.REGISTRY)
    finally:
        collector.unregister()
    assert "circuit_breakers_state" not in generate_latest(prometheus_client.REGISTRY)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"manager": "m"}, ConfigTypeError, "manager must be a CircuitBreakerManager, got 'm'"),
        ({"registry": object()}, ConfigTypeError, "registry must be a prometheus_client CollectorRegistry"),
        ({"trading": [1]}, ConfigTypeError, "trading must hold TradingCircuitBreakers, got 1"),
    ],
)
def test_bad_arguments(prometheus_client: ModuleType, arguments: Dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        register(**arguments)


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("prometheus_client", "prometheus_client.core", "prometheus_client.registry"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"needs prometheus-client: pip install 'circuit_breakers\[prometheus\]'"):
        register(manager=CircuitBreakerManager())


def test_importing_ops_does_not_import_prometheus_client() -> None:
    code = "import sys, circuit_breakers.ops\nassert 'prometheus_client' not in sys.modules\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stderr


def test_describe_names_every_family_without_reading_status(prometheus_client: ModuleType) -> None:
    class Exploding(CircuitBreakerManager):
        def __iter__(self) -> Iterator[CircuitBreaker]:
            raise AssertionError("status read at registration")

    registry = prometheus_client.CollectorRegistry(auto_describe=True)
    collector = register(manager=Exploding(), registry=registry)
    try:
        described = {metric.name for metric in collector.describe()}
        assert described == {name.removesuffix("_total") for name in FAMILY_NAMES}
    finally:
        collector.unregister()
