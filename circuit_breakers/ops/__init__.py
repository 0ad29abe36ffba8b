"""Observability for operations staff: Prometheus metrics, a live status page, a Grafana dashboard.

Nothing here changes trading state: every piece reads status snapshots. The prometheus_client
collector (:func:`register`) needs the ``prometheus`` extra; the rest is stdlib only.
"""

from circuit_breakers.ops.desks import DEFAULT_DESK, Desk
from circuit_breakers.ops.document import status_document
from circuit_breakers.ops.exposition import CONTENT_TYPE, render_text
from circuit_breakers.ops.metrics import FAMILY_NAMES, MetricFamily, breaker_families, trading_families
from circuit_breakers.ops.page import render_page
from circuit_breakers.ops.prometheus import Collector, register, unregister
from circuit_breakers.ops.server import StatusServer, serve_status
from circuit_breakers.ops.source import LocalSource, StatusSource

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_DESK",
    "FAMILY_NAMES",
    "Collector",
    "Desk",
    "LocalSource",
    "MetricFamily",
    "StatusServer",
    "StatusSource",
    "breaker_families",
    "register",
    "render_page",
    "render_text",
    "serve_status",
    "status_document",
    "trading_families",
    "unregister",
]
