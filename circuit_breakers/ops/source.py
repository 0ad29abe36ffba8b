"""Where the status page and /metrics get their data: the StatusSource protocol and LocalSource.

A source answers two questions, each time it is asked: the status document
(:mod:`circuit_breakers.ops.document`) and the metric families. :class:`LocalSource` reads objects
in this process; a source that reads shared state from a store has the same two methods.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, runtime_checkable

from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.ops import desks as _desks
from circuit_breakers.ops import render
from circuit_breakers.ops.document import status_document
from circuit_breakers.ops.metrics import MetricFamily, trading_families
from circuit_breakers.ops.state import DeskState
from circuit_breakers.registry import CircuitBreakerManager, default_manager
from circuit_breakers.trading.breakers import TradingCircuitBreakers


@runtime_checkable
class StatusSource(Protocol):
    """What the status server reads. Both methods are called from request threads, concurrently.

    Either may raise: the server then answers 503 with the error's text (never a traceback).
    """

    def status(self) -> Dict[str, Any]:
        """The status document (a JSON-ready dict with at least ``trading_state``)."""
        ...

    def metric_families(self) -> List[MetricFamily]:
        """The metric families for /metrics."""
        ...


def exported_manager(manager: Optional[CircuitBreakerManager], *, with_desks: bool) -> Optional[CircuitBreakerManager]:
    """The manager to export: ``manager``; when None, ``default_manager`` unless desks are exported.

    A desk brings its own breakers; the process-wide default manager (the one behind
    ``@circuit_breaker(name)``) joins them only when asked for by name, so that its breakers and a
    desk's (both may hold a ``connection``) never collide by accident.
    """
    manager = _desks.check_manager(manager)
    if manager is None and not with_desks:
        return default_manager
    return manager


class LocalSource:
    """A StatusSource over objects in this process: a TradingCircuitBreakers, a manager, or both.

    ``desk`` names the desk (the document's ``desk``; with a name, metric series carry a ``desk``
    label); ``manager=None`` means ``default_manager`` when no ``trading`` is given, else no manager.
    ``clock`` stamps ``generated_at``. Thread-safe: every call reads fresh status snapshots and
    blocks only as long as those reads (``get_status()``) do. Raises ConfigTypeError for bad
    arguments at construction.
    """

    def __init__(
        self,
        *,
        trading: Optional[TradingCircuitBreakers] = None,
        manager: Optional[CircuitBreakerManager] = None,
        desk: Optional[str] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        if trading is not None and not isinstance(trading, TradingCircuitBreakers):
            raise ConfigTypeError(f"trading must be a TradingCircuitBreakers, got {trading!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must be a Clock, got {clock!r}")
        if desk is not None and not isinstance(desk, str):
            raise ConfigTypeError(f"desk must be a str, got {desk!r}")
        if desk is not None and not desk.strip():
            raise ConfigError(f"desk must not be empty, got {desk!r}")
        self._desks = _desks.name_desks(trading, desk) if trading is not None else []
        self._manager = exported_manager(manager, with_desks=trading is not None)
        self._clock = SYSTEM_CLOCK if clock is None else clock
        self.trading = trading
        self.manager = self._manager
        self.desk = desk if desk is not None else _desks.DEFAULT_DESK

    def status(self) -> Dict[str, Any]:
        """The status document: the desk's TradingStatus and every breaker's status."""
        statuses: List[Dict[str, Any]] = []
        trading = None
        if self.trading is not None:
            trading = self.trading.get_status()
            statuses.extend(breaker.get_status() for breaker in self.trading.manager)
        if self._manager is not None:
            statuses.extend(breaker.get_status() for breaker in self._manager)
        return status_document(now=self._clock.now(), desk=self.desk, trading=trading, breakers=statuses)

    def metric_families(self) -> List[MetricFamily]:
        """The metric families of the desk and the manager."""
        return _desks.families(self._manager, self._desks)

    def __repr__(self) -> str:
        return f"<LocalSource desk={self.desk!r} trading={self.trading!r} manager={self._manager!r}>"


class StoreSource:
    """A StatusSource over a desk's shared state (``circuit-breakers serve``): what its store shows.

    Each call reads the store once; the trading families come from the desk-level view (latches,
    and the processes' heartbeats). Raises what the store raises (the server answers 503).
    """

    def __init__(self, desk: DeskState) -> None:
        self.desk = desk

    def status(self) -> Dict[str, Any]:
        return render.document(self.desk.snapshot())

    def metric_families(self) -> List[MetricFamily]:
        return trading_families(self.desk.snapshot().status)
