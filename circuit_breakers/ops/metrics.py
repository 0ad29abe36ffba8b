"""Metric families: plain data built from status snapshots, named like resilience4j's metric set.

A :class:`MetricFamily` is a name, a type (``gauge`` or ``counter``), a help text and its samples,
``(labels, value)`` pairs. The builders read snapshots only (``CircuitBreaker.get_status()``,
``TradingCircuitBreakers.get_status()``), so they hold no lock longer than a status read does; the
exposition writer (:mod:`circuit_breakers.ops.exposition`) and the prometheus_client collector
(:mod:`circuit_breakers.ops.prometheus`) turn the families into text or client objects.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.trading.orders import RejectReason
from circuit_breakers.trading.status import TradingStatus

logger = logging.getLogger(__name__)

GAUGE = "gauge"
COUNTER = "counter"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

Sample = Tuple[Dict[str, str], float]

BREAKER_STATES = ("closed", "open", "half_open", "forced_open")
CALL_KINDS = {
    "successful": "successful_requests",
    "failed": "failed_requests",
    "ignored": "ignored_requests",
    "not_permitted": "rejected_requests",
}
TRADING_STATES = ("active", "reducing", "halted")
TRADING_BREAKERS = ("daily_loss", "max_drawdown", "volatility", "connection")
DECISIONS = ("accepted", *(reason.value for reason in RejectReason))
_WINDOWS = {60.0: "minute", 3600.0: "hour"}

HELP = {
    "circuit_breakers_state": "1 for the breaker's state (closed, open, half_open, forced_open), 0 for the others",
    "circuit_breakers_calls_total": "Calls through the breaker by outcome: successful, failed, ignored, not_permitted",
    "circuit_breakers_failure_rate": "Failed calls over all calls in the breaker's failure window (0 to 1)",
    "circuit_breakers_trips_total": "Times the breaker has opened",
    "trading_state": "1 for the desk's current trading state (active, reducing, halted), 0 for the others",
    "trading_kill_switch_engaged": "1 while the kill switch is engaged",
    "trading_breaker_tripped": "1 while the trading breaker (or fail-closed condition) blocks trading",
    "trading_order_decisions_total": "Pre-trade decisions: accepted orders, and refused ones by reason",
    "trading_orders_in_window": "Orders recorded in the order-rate window (minute, hour)",
    "trading_order_limit": "Most orders allowed in the order-rate window (minute, hour)",
    "trading_last_reading_age_seconds": "Seconds since the last good portfolio reading (+Inf before the first)",
}
TYPES = {name: COUNTER if name.endswith("_total") else GAUGE for name in HELP}
FAMILY_NAMES = tuple(HELP)
"""Every family this module can build, in output order."""


@dataclass(frozen=True)
class MetricFamily:
    """One metric family: name, ``gauge`` or ``counter``, help text and ``(labels, value)`` samples.

    Construction checks the names (Prometheus' rules; counters end in ``_total``) and raises
    ConfigError or ConfigTypeError naming the bad part. Immutable, so safe to share between threads.
    """

    name: str
    type: str
    help: str
    samples: Tuple[Sample, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"metric name must match {_NAME.pattern}, got {self.name!r}")
        if self.type not in (GAUGE, COUNTER):
            raise ConfigError(f"metric type of {self.name} must be 'gauge' or 'counter', got {self.type!r}")
        if self.type == COUNTER and not self.name.endswith("_total"):
            raise ConfigError(f"counter name must end in _total, got {self.name!r}")
        if not isinstance(self.help, str):
            raise ConfigTypeError(f"help of {self.name} must be a str, got {self.help!r}")
        samples: List[Sample] = []
        for labels, value in self.samples:
            for key, text in labels.items():
                if not isinstance(key, str) or not _LABEL.match(key) or key.startswith("__"):
                    raise ConfigError(f"label name in {self.name} must match {_LABEL.pattern}, got {key!r}")
                if not isinstance(text, str):
                    raise ConfigTypeError(f"label {key} of {self.name} must be a str, got {text!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigTypeError(f"sample value of {self.name} must be a number, got {value!r}")
            samples.append((dict(labels), float(value)))
        object.__setattr__(self, "samples", tuple(samples))


def family(name: str, samples: Iterable[Sample]) -> MetricFamily:
    """One of this module's families (type and help from :data:`HELP`) with the given samples."""
    return MetricFamily(name, TYPES[name], HELP[name], tuple(samples))


def _number(value: Any) -> Optional[float]:
    """``value`` as a float, or None when it is missing or not a number (a store that cannot say)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def breaker_families(
    statuses: Iterable[Mapping[str, Any]], labels: Optional[Mapping[str, str]] = None
) -> List[MetricFamily]:
    """The ``circuit_breakers_*`` families from breakers' ``get_status()`` dicts.

    ``labels`` (such as ``{"desk": "eu"}``) are added to every sample. A value a status leaves
    None (a shared breaker whose store cannot answer) gives no sample; nothing here raises for it.
    """
    extra = dict(labels or {})
    state: List[Sample] = []
    calls: List[Sample] = []
    rate: List[Sample] = []
    trips: List[Sample] = []
    for status in statuses:
        own = {**extra, "name": str(status.get("name"))}
        current = "forced_open" if status.get("forced_open") else status.get("state")
        if current in BREAKER_STATES:
            state.extend(({**own, "state": each}, 1.0 if each == current else 0.0) for each in BREAKER_STATES)
        for kind, key in CALL_KINDS.items():
            count = _number(status.get(key))
            if count is not None:
                calls.append(({**own, "kind": kind}, count))
        failure_rate = _number(status.get("failure_rate"))
        if failure_rate is not None:
            rate.append((own, failure_rate))
        tripped = _number(status.get("circuit_trips"))
        if tripped is not None:
            trips.append((own, tripped))
    return [
        family("circuit_breakers_state", state),
        family("circuit_breakers_calls_total", calls),
        family("circuit_breakers_failure_rate", rate),
        family("circuit_breakers_trips_total", trips),
    ]


def window_name(period_seconds: Any) -> str:
    """``minute`` for a 60 s window, ``hour`` for 3600 s, else the period in seconds (``"300s"``)."""
    period = _number(period_seconds)
    if period is None:
        return "unknown"
    return _WINDOWS.get(period) or f"{period:g}s"


def trading_families(status: TradingStatus, labels: Optional[Mapping[str, str]] = None) -> List[MetricFamily]:
    """The ``trading_*`` families from a :class:`TradingStatus` (``labels`` added to every sample)."""
    extra = dict(labels or {})
    details: Mapping[str, Any] = status.details
    current = status.trading_state.value
    states = [({**extra, "state": each}, 1.0 if each == current else 0.0) for each in TRADING_STATES]
    blocking = set(status.blocking_breakers)
    tripped = [
        ({**extra, "breaker": name}, 1.0 if name in blocking or _detail(details, name, "tripped") else 0.0)
        for name in TRADING_BREAKERS
    ]
    others = [name for name in status.blocking_breakers if name not in TRADING_BREAKERS]  # provider, monitor, state
    tripped.extend(({**extra, "breaker": name}, 1.0) for name in others)
    decisions: List[Sample] = []
    counts = _detail(details, "orders", "decisions")
    if isinstance(counts, Mapping):
        reasons = [*DECISIONS, *sorted(str(key) for key in counts if str(key) not in DECISIONS)]
        for reason in reasons:
            count = _number(counts.get(reason, 0))
            if count is not None:
                decisions.append(({**extra, "reason": reason}, count))
    in_window: List[Sample] = []
    limit: List[Sample] = []
    windows = _detail(details, "rate_limit", "limits")
    if isinstance(windows, Sequence):
        for window in windows:
            if not isinstance(window, Mapping):
                continue
            name = {**extra, "window": window_name(window.get("period_seconds"))}
            calls, most = _number(window.get("calls_in_window")), _number(window.get("max_calls"))
            if calls is not None:
                in_window.append((name, calls))
            if most is not None:
                limit.append((name, most))
    age = status.last_reading_age
    return [
        family("trading_state", states),
        family("trading_kill_switch_engaged", [(extra, 1.0 if status.kill_switch_active else 0.0)]),
        family("trading_breaker_tripped", tripped),
        family("trading_order_decisions_total", decisions),
        family("trading_orders_in_window", in_window),
        family("trading_order_limit", limit),
        family("trading_last_reading_age_seconds", [(extra, math.inf if age is None else age)]),
    ]


def _detail(details: Mapping[str, Any], section: str, key: str) -> Any:
    part = details.get(section)
    return part.get(key) if isinstance(part, Mapping) else None


_warned: Set[Tuple[Tuple[str, str], ...]] = set()
_warned_lock = threading.Lock()


def merge(groups: Iterable[Iterable[MetricFamily]]) -> List[MetricFamily]:
    """One family per name from several builders' lists, in :data:`FAMILY_NAMES` order, then others.

    Two samples with the same name and labels cannot both be exposed: the first is kept and the
    duplicate is dropped, with a warning logged once per object (give desks names to keep them apart).
    """
    merged: Dict[str, Tuple[MetricFamily, List[Sample], Set[Tuple[Tuple[str, str], ...]]]] = {}
    for group in groups:
        for each in group:
            first, samples, seen = merged.setdefault(each.name, (each, [], set()))
            if (first.type, first.help) != (each.type, each.help):
                raise ConfigError(f"metric {each.name} built with two types or help texts: {first.type}, {each.type}")
            for labels, value in each.samples:
                key = tuple(sorted(labels.items()))
                if key in seen:
                    _warn_once(each.name, key)
                    continue
                seen.add(key)
                samples.append((labels, value))
    order = {name: index for index, name in enumerate(FAMILY_NAMES)}
    names = sorted(merged, key=lambda name: (order.get(name, len(order)), name))
    return [MetricFamily(name, merged[name][0].type, merged[name][0].help, tuple(merged[name][1])) for name in names]


def _warn_once(name: str, key: Tuple[Tuple[str, str], ...]) -> None:
    """One warning per object (its desk and name labels), not one per series it would have had."""
    ident = tuple(item for item in key if item[0] in ("desk", "name")) or (("family", name),)
    with _warned_lock:
        if ident in _warned or len(_warned) >= 1000:
            return
        _warned.add(ident)
    labels = ", ".join(f"{label}={value!r}" for label, value in ident)
    logger.warning("two objects export the series of %s; the second's are dropped (give them distinct names)", labels)
