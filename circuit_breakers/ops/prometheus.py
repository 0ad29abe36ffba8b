"""A prometheus_client collector that turns the metric families into client metrics at scrape time.

Needs the ``prometheus`` extra (``pip install 'circuit_breakers[prometheus]'``); it is imported
only when :func:`register` is called, so this module imports without it.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.ops.desks import Desk, families, name_desks
from circuit_breakers.ops.metrics import COUNTER, FAMILY_NAMES, TYPES, MetricFamily
from circuit_breakers.ops.source import exported_manager
from circuit_breakers.registry import CircuitBreakerManager
from circuit_breakers.trading.breakers import TradingCircuitBreakers

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

EXTRA_HINT = "pip install 'circuit_breakers[prometheus]'"

_lock = threading.Lock()  # guards _collectors
_collectors: weakref.WeakKeyDictionary[Any, Collector] = weakref.WeakKeyDictionary()


def _client(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"circuit_breakers.ops.prometheus needs prometheus-client: {EXTRA_HINT} ({exc})") from exc


def to_client_metric(each: MetricFamily) -> Metric:
    """One family as a prometheus_client GaugeMetricFamily or CounterMetricFamily with its samples."""
    core = _client("prometheus_client.core")
    if each.type == COUNTER:
        metric: Metric = core.CounterMetricFamily(each.name, each.help)  # the client strips "_total"
    else:
        metric = core.GaugeMetricFamily(each.name, each.help)
    for labels, value in each.samples:
        # add_sample, not add_metric: samples of one family may differ in labels (a desk label or not)
        metric.add_sample(each.name, labels, value)
    return metric


class Collector:
    """Exports a manager's breakers and named trading desks to one prometheus_client registry.

    Built by :func:`register`. ``collect()`` runs at every scrape, on the scraping thread: it reads
    one status snapshot per object and holds no lock beyond those reads.
    """

    def __init__(
        self, manager: Optional[CircuitBreakerManager], desks: Sequence[Desk], registry: CollectorRegistry
    ) -> None:
        self.manager = manager
        self.desks = tuple(desks)
        self.registry = registry
        self._registered = True

    def families(self) -> List[MetricFamily]:
        """The families as they stand now."""
        return families(self.manager, self.desks)

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's hook: the families, converted, at scrape time."""
        for each in self.families():
            yield to_client_metric(each)

    def describe(self) -> Iterator[Metric]:
        """prometheus_client's hook at registration: the names, without reading any status."""
        for name in FAMILY_NAMES:
            yield to_client_metric(MetricFamily(name, TYPES[name], ""))

    def unregister(self) -> None:
        """Remove this collector from its registry; idempotent."""
        with _lock:
            if not self._registered:
                return
            self._registered = False
            if _collectors.get(self.registry) is self:
                del _collectors[self.registry]
        with contextlib.suppress(KeyError):  # already taken off the registry directly
            self.registry.unregister(self)

    def __repr__(self) -> str:
        names = ", ".join(desk.name for desk in self.desks)
        return f"<circuit_breakers Collector manager={self.manager!r} desks=[{names}]>"


def register(
    *,
    manager: Optional[CircuitBreakerManager] = None,
    trading: Union[TradingCircuitBreakers, Iterable[TradingCircuitBreakers]] = (),
    registry: Optional[CollectorRegistry] = None,
    desks: Union[str, Sequence[str], None] = None,
) -> Collector:
    """Register a collector of the circuit_breakers metrics on ``registry`` (default: prometheus_client's REGISTRY).

    ``manager=None`` exports ``circuit_breakers.default_manager`` (the breakers made by
    ``@circuit_breaker(name)``) when no ``trading`` is given, and no manager otherwise: pass
    ``manager=default_manager`` to export it beside desks. ``trading`` is one or several
    TradingCircuitBreakers; ``desks`` names them in the same order (required for several: their
    series then carry a ``desk`` label). One collector per registry, so every desk goes in one
    call: a second registration raises ConfigError naming the first, until ``unregister()``.
    Raises ImportError naming the extra when prometheus-client is missing.
    """
    named = name_desks(trading, desks)
    chosen = exported_manager(manager, with_desks=bool(named))
    client_registry = _client("prometheus_client.registry")
    if registry is None:
        registry = client_registry.REGISTRY
    elif not isinstance(registry, client_registry.CollectorRegistry):
        raise ConfigTypeError(f"registry must be a prometheus_client CollectorRegistry, got {registry!r}")
    with _lock:
        existing = _collectors.get(registry)
        if existing is not None:
            raise ConfigError(
                f"circuit_breakers metrics are already registered on this registry ({existing!r}); "
                "export every manager and desk from one register() call, or unregister() the first"
            )
        collector = Collector(chosen, named, registry)
        try:
            registry.register(collector)
        except ValueError as exc:  # another collector already exports one of these names
            raise ConfigError(f"cannot register circuit_breakers metrics on {registry!r}: {exc}") from exc
        _collectors[registry] = collector
    return collector


def unregister(collector: Collector) -> None:
    """Remove ``collector`` from its registry (same as ``collector.unregister()``); idempotent."""
    collector.unregister()
