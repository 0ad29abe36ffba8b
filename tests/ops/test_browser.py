"""The status page in a real headless Chromium, phone-sized: what a person sees, and that it refreshes.

Skipped without chromium (Debian: ``apt-get install -y chromium``); in CI a missing chromium fails.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from circuit_breakers import CircuitBreakerConfig, CircuitBreakerManager, ManualClock, TradingCircuitBreakers
from circuit_breakers.ops import LocalSource, MetricFamily, StatusServer, serve_status

from .browser import DevTools, dump_dom, pixel, read_png, screenshot
from .conftest import MakeBreakers

PHONE = (375, 800)
AFTER_A_REFRESH = 2500  # ms of virtual time: the page refreshes every 1000 ms


@pytest.fixture
def halted(make_breakers: MakeBreakers, clock: ManualClock, fail: Callable[..., None]) -> LocalSource:
    """A desk halted by its kill switch and its connection breaker, beside a half-open broker breaker."""
    desk = make_breakers()
    desk.check_now()
    for _ in range(3):
        assert desk.record_order()
    desk.engage_kill_switch("risk desk: flatten everything", actor="alice")
    for _ in range(desk.config.connection_failure_threshold):
        desk.record_connection_failure(ConnectionError("broker timeout"))
    manager = CircuitBreakerManager(clock=clock)
    broker = manager.create_circuit_breaker("broker_api", config=CircuitBreakerConfig(open_timeout_seconds=10))
    fail(broker, 5)
    clock.advance(10)  # the broker breaker is half-open on the next look; the connection's 30 s run on
    return LocalSource(trading=desk, manager=manager, clock=clock, desk="eu-equities")


@pytest.fixture
def serve() -> Iterator[Callable[[Any], StatusServer]]:
    started: List[StatusServer] = []

    def start(source: Any) -> StatusServer:
        started.append(serve_status(source, port=0))
        return started[-1]

    yield start
    for server in started:
        server.close()


def visible_text(dom: str) -> str:
    """The page's text with tags, the style sheet and the script removed, whitespace collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    dom = re.sub(r'<p id="conn"[^>]*hidden[^>]*>.*?</p>', " ", dom, flags=re.S)  # hidden: not seen
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).replace("&amp;", "&")


def breaker_states(dom: str) -> Dict[str, str]:
    return dict(re.findall(r'data-breaker="([^"]+)" data-state="([^"]+)"', dom))


def test_a_halted_desk_as_a_person_sees_it(
    chromium: str, halted: LocalSource, serve: Callable[[Any], StatusServer], tmp_path: Path
) -> None:
    server = serve(halted)
    dom = dump_dom(chromium, server.url, tmp_path / "profile", budget_ms=AFTER_A_REFRESH)
    text = visible_text(dom)
    assert "<title>HALTED · desk eu-equities</title>" in dom
    assert '<section class="banner halted"' in dom
    assert "HALTED No orders pass. KILL SWITCH ENGAGED" in text
    assert "max_drawdown: kill switch engaged: risk desk: flatten everything" in text
    assert "connection: 3 failures in the last minute (threshold 3); last: ConnectionError: broker timeout" in text
    assert "orders per minute 3 / 10" in text
    assert breaker_states(dom) == {
        "daily_loss": "closed",
        "max_drawdown": "forced_open",
        "volatility": "closed",
        "connection": "open",
        "broker_api": "half_open",
    }
    for name, words in [("max_drawdown", "forced open"), ("connection", "open"), ("broker_api", "half open")]:
        assert re.search(rf"{name} .*?{words}", text), (name, words)

    shot = tmp_path / "halted.png"
    screenshot(chromium, server.url, shot, tmp_path / "profile2", size=PHONE, budget_ms=AFTER_A_REFRESH)
    width, height, rows = read_png(shot)
    assert (width, height) == PHONE
    red = pixel(rows, 340, 80)  # inside the banner, right of the word HALTED
    assert red[0] > 150, red
    assert max(red[1:]) < 60, red
    background = pixel(rows, 2, height - 2)
    assert min(background) > 200, background  # a light page behind the cards


def test_a_change_in_the_source_shows_after_a_refresh(
    chromium: str, make_breakers: MakeBreakers, serve: Callable[[Any], StatusServer], tmp_path: Path
) -> None:
    desk = make_breakers()
    desk.check_now()
    source = ChangesAfterFirstLook(LocalSource(trading=desk), desk)
    server = serve(source)
    dom = dump_dom(chromium, server.url, tmp_path / "profile", budget_ms=AFTER_A_REFRESH)
    assert source.seen[0] == "active"  # the page was loaded showing an active desk...
    assert len(source.seen) > 1  # ...then fetched again
    assert set(source.seen[1:]) == {"halted"}
    assert '<section class="banner halted"' in dom  # and shows what changed
    assert "max_drawdown: kill switch engaged: engaged while the page was open" in visible_text(dom)
    assert "<title>HALTED · desk default</title>" in dom


class ChangesAfterFirstLook:
    """A source that engages the kill switch right after answering its first status read."""

    def __init__(self, inner: LocalSource, desk: TradingCircuitBreakers) -> None:
        self.inner, self.desk = inner, desk
        self.seen: List[str] = []
        self._lock = threading.Lock()

    def status(self) -> Dict[str, Any]:
        document = self.inner.status()
        with self._lock:
            self.seen.append(document["trading_state"])
            first = len(self.seen) == 1
        if first:
            self.desk.engage_kill_switch("engaged while the page was open")
        return document

    def metric_families(self) -> List[MetricFamily]:
        return self.inner.metric_families()


def test_a_lost_server_leaves_the_last_state_dimmed_under_a_notice(
    chromium: str, make_breakers: MakeBreakers, tmp_path: Path
) -> None:
    desk = make_breakers()
    desk.check_now()
    inner = LocalSource(trading=desk)
    server: List[StatusServer] = []

    class GoesAway:
        def status(self) -> Dict[str, Any]:
            server[0].close()  # from the request's own thread: gone before this first answer is sent
            return inner.status()

        def metric_families(self) -> List[MetricFamily]:
            return []

    server.append(serve_status(GoesAway(), port=0))
    try:
        dom = dump_dom(chromium, server[0].url, tmp_path / "profile", budget_ms=AFTER_A_REFRESH)
    finally:
        server[0].close()
    assert '<body class="stale">' in dom
    assert re.search(r'<p id="conn" role="alert">Connection to the status server lost', dom)
    assert '<section class="banner active"' in dom  # the last state received stays


def test_an_unavailable_source_says_so(chromium: str, serve: Callable[[Any], StatusServer], tmp_path: Path) -> None:
    class Down:
        def status(self) -> Dict[str, Any]:
            raise ConnectionError("redis 127.0.0.1:6379: connection refused")

        def metric_families(self) -> List[MetricFamily]:
            return []

    server = serve(Down())
    dom = dump_dom(chromium, server.url, tmp_path / "profile", budget_ms=AFTER_A_REFRESH)
    assert "status unavailable: ConnectionError: redis 127.0.0.1:6379: connection refused" in visible_text(dom)
    assert "Traceback" not in dom


def test_no_horizontal_scroll_on_a_phone(
    chromium: str, halted: LocalSource, serve: Callable[[Any], StatusServer], tmp_path: Path
) -> None:
    long_words = {
        "trading_state": "halted",
        "desk": "a-desk-name-" + "x" * 80,
        "reasons": ["provider: " + "unbroken" * 40],
        "breakers": [{"name": "breaker_" + "y" * 90, "state": "half_open", "seconds_until_retry": 1e9}],
        "store": {"where": "redis " + "z" * 120, "healthy": False, "error": "e" * 200},
        "processes": [{"id": "host" * 30 + ":1", "age_seconds": 3.0, "trading_state": "halted"}],
    }

    class LongWords:
        def status(self) -> Dict[str, Any]:
            return long_words

        def metric_families(self) -> List[MetricFamily]:
            return []

    tools = DevTools(chromium, tmp_path / "profile")
    try:
        tools.call(
            "Emulation.setDeviceMetricsOverride", width=PHONE[0], height=PHONE[1], deviceScaleFactor=2, mobile=True
        )
        tools.call("Page.enable")
        for source in (halted, LongWords()):
            server = serve(source)
            tools.call("Page.navigate", url=server.url)
            tools.wait_for("Page.loadEventFired")
            widths = tools.evaluate("[document.documentElement.scrollWidth, innerWidth, document.title]")
            assert widths[:2] == [PHONE[0], PHONE[0]], widths
            assert widths[2].startswith("HALTED")
    finally:
        tools.close()
