"""The page's HTML from status documents: banners, sections, escaping, and documents with holes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, Dict, List, Optional

import pytest

from circuit_breakers.ops.page import render_page, title_of

FULL: Dict[str, Any] = {
    "generated_at": "2026-12-01T22:00:00+00:00",
    "desk": "eu-equities",
    "store": {"kind": "redis", "where": "redis 10.0.0.5:6379/0", "healthy": False, "error": "connection refused"},
    "trading_state": "halted",
    "kill_switch_active": True,
    "reasons": ["max_drawdown: kill switch engaged: risk desk"],
    "latches": [
        {
            "name": "max_drawdown",
            "reason": "risk desk",
            "since": "2026-12-01T21:58:00+00:00",
            "actor": "alice",
            "trading_day": "2026-12-01",
        }
    ],
    "rate_limit": {
        "windows": [
            {"window": "minute", "max_calls": 10, "period_seconds": 60, "calls_in_window": 10},
            {"window": "hour", "max_calls": 100, "period_seconds": 3600, "calls_in_window": 85},
        ],
        "error": None,
    },
    "breakers": [
        {"name": "connection", "state": "open", "failures_in_window": 0, "calls_in_window": 0, "failure_rate": 0.0,
         "seconds_until_retry": 12.5},
        {"name": "broker_api", "state": "half_open", "failures_in_window": 2, "calls_in_window": 8,
         "failure_rate": 0.25, "seconds_until_retry": None},
    ],
    "processes": [
        {"id": "host-a:1234", "host": "host-a", "pid": 1234, "last_heartbeat": "2026-12-01T21:59:59+00:00",
         "age_seconds": 0.4, "stale": False, "trading_state": "halted", "kill_switch_active": True, "reasons": []},
        {"id": "host-b:99", "age_seconds": 95.0, "stale": True, "trading_state": "active"},
    ],
}  # fmt: skip


class Text(HTMLParser):
    """The text a person reads (no script or style), one string."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: List[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def text_of(page: str) -> str:
    parser = Text()
    parser.feed(page)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


def banner_of(page: str) -> Optional[str]:
    found = re.search(r'<section class="banner (\w+)"', page)
    return found.group(1) if found else None


def test_everything_a_full_document_holds_is_shown() -> None:
    page = render_page(FULL)
    text = text_of(page)
    assert banner_of(page) == "halted"
    for shown in (
        "HALTED",
        "KILL SWITCH ENGAGED",
        "max_drawdown: kill switch engaged: risk desk",
        "eu-equities",
        "updated 22:00:00 UTC",
        "since 2026-12-01 21:58:00 UTC · by alice · trading day 2026-12-01",
        "orders per minute",
        "10 / 10",
        "85 / 100",
        "connection",
        "retry in 12 s",
        "2 of 8 calls failed (25%)",
        "half open",
        "host-a:1234",
        "heartbeat 0.4 s ago · kill switch engaged",
        "heartbeat 95 s ago",
        "stale",
        "redis 10.0.0.5:6379/0",
        "connection refused",
        "unreachable",
    ):
        assert shown in text, shown
    assert 'data-breaker="connection" data-state="open"' in page
    assert 'data-breaker="broker_api" data-state="half_open"' in page
    assert '<span class="full" style="width:100%">' in page  # the minute window is full
    assert '<span class="high" style="width:85%">' in page
    assert title_of(FULL) == "HALTED · desk eu-equities"


@pytest.mark.parametrize(
    ("state", "kind", "words"),
    [
        ("halted", "halted", "HALTED"),
        ("reducing", "reducing", "REDUCE ONLY"),
        ("active", "active", "ACTIVE"),
        ("sideways", "unknown", "UNKNOWN"),
        (7, "unknown", "UNKNOWN"),
    ],
)
def test_banners(state: Any, kind: str, words: str) -> None:
    page = render_page({"trading_state": state})
    assert banner_of(page) == kind
    assert f"<h1>{words}</h1>" in page


def test_breakers_without_a_desk() -> None:
    closed = render_page({"trading_state": None, "breakers": [{"name": "a", "state": "closed"}]})
    assert banner_of(closed) == "active"
    assert "ALL BREAKERS CLOSED" in closed
    opened = render_page(
        {"trading_state": None, "breakers": [{"name": "a", "state": "open"}, {"name": "b", "state": "forced_open"}]}
    )
    assert banner_of(opened) == "reducing"
    assert "2 BREAKERS OPEN" in opened
    assert "forced open" in text_of(opened)
    assert "no breakers registered" in text_of(render_page({"trading_state": None, "breakers": []}))


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"trading_state": "halted", "reasons": None, "latches": None, "rate_limit": None, "breakers": None},
        {"trading_state": "halted", "reasons": "not a list", "latches": [None, 3, {}], "processes": [{}]},
        {"trading_state": "active", "rate_limit": {"windows": [{"max_calls": 0}], "error": None}, "store": {}},
        {"trading_state": "active", "breakers": [{"state": None, "calls_in_window": "x"}], "generated_at": 5},
        {"trading_state": "active", "generated_at": "not a time", "desk": None, "store": {"healthy": True}},
    ],
)
def test_documents_with_holes_still_render(document: Dict[str, Any]) -> None:
    page = render_page(document)
    assert page.startswith("<!doctype html>")
    assert page.endswith("</html>")
    assert banner_of(page) in ("halted", "active", "unknown")


def test_the_unavailable_page() -> None:
    page = render_page(None, error="ConnectionError: redis down")
    assert "status unavailable: ConnectionError: redis down" in text_of(page)
    assert "STATUS UNAVAILABLE" in page
    assert title_of(None) == "Status unavailable"


def test_every_value_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    document = {
        "trading_state": "halted",
        "desk": evil,
        "reasons": [evil],
        "latches": [{"name": evil, "reason": evil, "actor": evil}],
        "rate_limit": {"windows": [{"window": evil}], "error": evil},
        "breakers": [{"name": evil, "state": evil}],
        "processes": [{"id": evil, "reasons": [evil], "trading_state": evil}],
        "store": {"where": evil, "error": evil, "healthy": False},
    }
    page = render_page(document)
    assert page.count("<script>") == 1  # the page's own
    assert page.count("&lt;script&gt;") >= 10
    assert "<script>alert" not in render_page(None, error=evil)


def test_the_page_is_made_for_a_phone() -> None:
    page = render_page(FULL)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media (max-width:480px)" in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
