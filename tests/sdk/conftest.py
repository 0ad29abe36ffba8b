"""The real broker SDKs against a local HTTP server: the server, the answers it gives, the SDK guard.

Each test gets its own server on a free loopback port. ``server.answer`` says what every request
gets, except the paths in ``server.ok_paths`` (what an SDK's constructor or market loading needs),
which always get 200 with their body (JSON, or bytes as they are):

- an HTTP status (400, 403, 422, 429, 500, 502, 503) with ``server.error_body(status)`` as JSON;
- ``"hang"``: no answer until the test ends (the handler waits on an Event released at teardown),
  so the client's own timeout fires;
- ``"close"``: the connection is closed without an answer.

``sdk("ccxt")`` imports an optional SDK for a test: skipped locally when it is not installed,
failed when the environment variable CI is set (CI installs ``.[dev]``, which includes it).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import warnings
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import pytest

from circuit_breakers import (
    CircuitBreakerManager,
    CircuitOpenException,
    ManualClock,
    Order,
    OrderRejected,
    RejectReason,
    Side,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    circuit_breaker,
    is_outage,
)

CLIENT_TIMEOUT = 0.5
"""Seconds every client waits for an answer: the cost of each "hang" case."""

Answer = Union[int, str]

ANSWERS: List[Tuple[Answer, bool]] = [
    (400, False),
    (403, False),
    (422, False),
    (429, True),
    (500, True),
    (502, True),
    (503, True),
    ("hang", True),
    ("close", True),
]
"""Every answer the server gives, and whether the error a client raises for it is an outage."""

ANSWER_IDS = [str(answer) for answer, _ in ANSWERS]

INSTALL_HINT = "install the SDK extra with: pip install -e '.[sdk]'"


def sdk(module: str) -> ModuleType:
    """Import an optional SDK module; skip the test without it, or fail it when CI is set."""
    try:
        with warnings.catch_warnings():
            # The SDKs' own deprecation warnings at import (python-binance uses websockets' legacy API).
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing in CI ({exc}); {INSTALL_HINT}")
        pytest.skip(f"{module} is not installed; {INSTALL_HINT}")


def default_error_body(status: int) -> Dict[str, Any]:
    return {"code": status, "message": "insufficient buying power" if status < 500 else "internal error"}


class BrokerServer:
    """A local HTTP server whose answer the test sets; it records every (method, path) it is asked."""

    def __init__(self) -> None:
        self.answer: Answer = 200
        self.ok_paths: Dict[str, Any] = {}
        self.ok_body: Any = {"id": "order-1", "status": "accepted"}
        self.error_body: Callable[[int], Any] = default_error_body
        self.requests: List[Tuple[str, str]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                broker._serve(self)

            def do_POST(self) -> None:
                broker._serve(self)

            def do_DELETE(self) -> None:
                broker._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64  # the default backlog of 5 drops connects from eight threads at once

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hits(self, path: Optional[str] = None) -> int:
        """Requests received (for ``path`` only, if given)."""
        with self._lock:
            return sum(1 for _, seen in self.requests if path is None or seen == path)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests.append((handler.command, path))
        if path in self.ok_paths:
            self._send(handler, 200, self.ok_paths[path])
            return
        answer = self.answer
        if answer == "hang":
            self.release.wait(30)  # released at teardown; the client gave up long before
            handler.close_connection = True
        elif answer == "close":
            handler.close_connection = True  # nothing written: the client reads end-of-stream
        elif isinstance(answer, int):
            self._send(handler, answer, self.ok_body if answer < 400 else self.error_body(answer))
        else:
            raise AssertionError(f"unknown answer {answer!r}")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        """Send ``body`` as JSON, or as it is if it is bytes (an HTML page)."""
        raw = isinstance(body, bytes)
        data = body if raw else json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/html" if raw else "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client hung up first

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def server() -> Iterator[BrokerServer]:
    broker = BrokerServer()
    yield broker
    broker.stop()


class Desk:
    """A PortfolioProvider with the extras an Order needs; every figure healthy."""

    def get_total_value(self) -> Decimal:
        return Decimal("1000000")

    def get_daily_pnl(self) -> Decimal:
        return Decimal("0")

    def get_daily_pnl_pct(self) -> Decimal:
        return Decimal("0")

    def get_max_drawdown(self) -> Decimal:
        return Decimal("0")

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal("1")

    def get_reference_price(self, symbol: str) -> Decimal:
        return Decimal("100")

    def get_position_quantity(self, symbol: str) -> Decimal:
        return Decimal("0")

    def get_gross_exposure(self) -> Decimal:
        return Decimal("0")


@pytest.fixture
def desk() -> Iterator[TradingCircuitBreakers]:
    """Trading breakers with the default config (connection_errors: is_outage) on a ManualClock."""
    breakers = TradingCircuitBreakers(
        Desk(), TradingBreakerConfig(max_orders_per_minute=1000, max_orders_per_hour=1000), clock=ManualClock()
    )
    yield breakers
    breakers.close()


def assert_classified(send: Callable[[], object], expected: bool) -> BaseException:
    """Call ``send`` (the server is set to fail); check is_outage on what it raised, and return that."""
    error: Optional[Exception] = None
    try:
        send()
    except Exception as exc:
        error = exc
    assert error is not None, "the call succeeded"
    assert is_outage(error) is expected, f"{type(error).__name__}: {error}"
    return error


def assert_breaker_trips_on_outages_only(server: BrokerServer, send: Callable[[], object]) -> None:
    """Through ``@circuit_breaker(failure_exceptions=(is_outage,))``: 400s never trip it, three 503s do."""

    @circuit_breaker("broker", manager=CircuitBreakerManager(clock=ManualClock()), failure_exceptions=(is_outage,))
    def place_order() -> object:
        return send()

    breaker = place_order.breaker
    refusals = breaker.config.failure_threshold * 2
    server.answer = 400
    for _ in range(refusals):
        assert_classified(place_order, False)
    assert breaker.is_closed
    assert (breaker.metrics.failed_requests, breaker.metrics.ignored_requests) == (0, refusals)
    server.answer = 503
    for _ in range(breaker.config.failure_threshold):
        assert_classified(place_order, True)
    assert breaker.is_open
    reached = server.hits()
    with pytest.raises(CircuitOpenException):
        place_order()
    assert server.hits() == reached  # an open breaker sends nothing


def assert_trade_guard_halts_on_outages_only(
    server: BrokerServer, desk: TradingCircuitBreakers, send: Callable[[], object]
) -> None:
    """Orders through ``trade_guard(order)`` with the default config: 400s never halt, three 503s do."""
    threshold = desk.config.connection_failure_threshold
    orders = (Order("SPY", Side.BUY, Decimal("1"), Decimal("100"), client_order_id=f"c-{n}") for n in range(100))

    def guarded() -> object:
        with desk.trade_guard(next(orders)):
            return send()

    server.answer = 400
    for _ in range(threshold * 3):
        assert_classified(guarded, False)
    assert desk.can_trade()
    server.answer = 503
    for _ in range(threshold):
        assert_classified(guarded, True)
    assert not desk.can_trade()
    assert desk.get_blocking_reasons()[0].startswith(f"connection: {threshold} failures")
    reached = server.hits()
    with pytest.raises(OrderRejected) as info:
        guarded()
    assert info.value.decision.reason is RejectReason.TRADING_HALTED
    assert server.hits() == reached
