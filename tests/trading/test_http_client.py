"""The breakers around a real HTTP broker SDK (requests and httpx) talking to a local server.

The server can answer normally, return 500 or 400, hang past the client's timeout, or be shut down
(connection refused). It counts the requests that reach it, so the tests can tell a call rejected by
a breaker from one the broker refused.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, Optional

import httpx
import pytest
import requests

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerManager,
    CircuitOpenException,
    CircuitState,
    TradingCircuitBreakers,
    TradingHalted,
    circuit_breaker,
)

from .conftest import FakeProvider, MakeBreakers

D = Decimal
CLIENT_TIMEOUT = 0.2
WAIT = 5.0


# --- the broker server ----------------------------------------------------------------------------


class BrokerServer:
    """A local HTTP broker. ``mode``: "ok", "error" (500), "reject" (400) or "hang" (until released)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.hits = 0
        self.release = threading.Event()
        self.port = 0
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                broker.answer(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                broker.answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut the server down: connections to the port are refused until :meth:`start`."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(WAIT)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.hits += 1
        mode = self.mode
        try:
            if mode == "hang":
                self.release.wait(WAIT)
                mode = "ok"
            status, body = {
                "ok": (200, {"symbol": "SPY", "price": "501.25", "order_id": "A1"}),
                "error": (500, {"error": "internal error"}),
                "reject": (400, {"error": "insufficient buying power"}),
            }[mode]
            data = json.dumps(body).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (timed out) before the answer


@pytest.fixture
def server() -> Iterator[BrokerServer]:
    broker = BrokerServer()
    broker.start()
    yield broker
    broker.release.set()
    broker.stop()


# --- the broker SDKs ------------------------------------------------------------------------------


class APIError(Exception):
    """What the SDKs raise for an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def is_client_error(exc: BaseException) -> bool:
    """A 4xx: the broker answered and refused the request; the connection is fine."""
    return isinstance(exc, APIError) and 400 <= exc.status < 500


def is_server_error(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.status >= 500


class RequestsBroker:
    """A small broker SDK over ``requests`` with a 0.2 s timeout."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy for 127.0.0.1

    def _check(self, response: requests.Response) -> Dict[str, Any]:
        if response.status_code >= 400:
            raise APIError(response.status_code, response.text)
        return response.json()  # type: ignore[no-any-return]

    def get_quote(self, symbol: str) -> Dict[str, Any]:
        return self._check(self.session.get(f"{self.base_url}/quote/{symbol}", timeout=CLIENT_TIMEOUT))

    def place_order(self, symbol: str, quantity: int) -> Dict[str, Any]:
        response = self.session.post(
            f"{self.base_url}/orders", json={"symbol": symbol, "quantity": quantity}, timeout=CLIENT_TIMEOUT
        )
        return self._check(response)

    def close(self) -> None:
        self.session.close()


class HttpxBroker:
    """The same SDK over ``httpx``."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT, trust_env=False)

    def _check(self, response: httpx.Response) -> Dict[str, Any]:
        if response.status_code >= 400:
            raise APIError(response.status_code, response.text)
        return response.json()  # type: ignore[no-any-return]

    def get_quote(self, symbol: str) -> Dict[str, Any]:
        return self._check(self.client.get(f"/quote/{symbol}"))

    def place_order(self, symbol: str, quantity: int) -> Dict[str, Any]:
        return self._check(self.client.post("/orders", json={"symbol": symbol, "quantity": quantity}))

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def requests_broker(server: BrokerServer) -> Iterator[RequestsBroker]:
    sdk = RequestsBroker(server.url)
    yield sdk
    sdk.close()


@pytest.fixture
def httpx_broker(server: BrokerServer) -> Iterator[HttpxBroker]:
    sdk = HttpxBroker(server.url)
    yield sdk
    sdk.close()


def protected_quotes(
    sdk: Any, transport_errors: tuple[type[BaseException], ...], *, open_timeout: float
) -> Callable[[str], Dict[str, Any]]:
    """What a user writes: the SDK's quote call under @circuit_breaker, in a fresh manager."""

    class QuoteService:
        @circuit_breaker(
            "broker_quotes",
            manager=CircuitBreakerManager(),
            failure_threshold=3,
            open_timeout_seconds=open_timeout,
            success_threshold=1,
            failure_exceptions=(*transport_errors, is_server_error),
            excluded_exceptions=(is_client_error,),
        )
        def quote(self, symbol: str) -> Dict[str, Any]:
            return sdk.get_quote(symbol)  # type: ignore[no-any-return]

    return QuoteService().quote


def breaker_of(func: Callable[..., Any]) -> CircuitBreaker:
    breaker = func.breaker  # type: ignore[attr-defined]
    assert isinstance(breaker, CircuitBreaker)
    return breaker


def wait_for_state(breaker: CircuitBreaker, state: CircuitState) -> None:
    """Poll the breaker (real clock) until it reaches ``state``; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while breaker.state is not state:
        assert time.monotonic() < deadline, f"breaker stayed {breaker.state} instead of {state}"
        time.sleep(0.01)


def trip(func: Callable[[str], Any], error: type[BaseException], times: int = 3) -> None:
    for _ in range(times):
        with pytest.raises(error):
            func("SPY")


REQUESTS_ERRORS = (requests.RequestException,)
HTTPX_ERRORS = (httpx.TransportError,)


# --- @circuit_breaker around the requests SDK -----------------------------------------------------


def test_healthy_server_answers_through_the_breaker(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=5)
    assert quote("SPY")["price"] == "501.25"
    assert server.hits == 1
    assert breaker_of(quote).is_closed


def test_refused_connections_open_the_breaker(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=5)
    server.stop()
    trip(quote, requests.ConnectionError)
    assert breaker_of(quote).is_open
    server.start()  # healthy again, but the breaker is open: nothing reaches it
    with pytest.raises(CircuitOpenException):
        quote("SPY")
    assert server.hits == 0


def test_server_errors_open_the_breaker(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=5)
    server.mode = "error"
    trip(quote, APIError)
    assert breaker_of(quote).is_open
    for _ in range(5):
        with pytest.raises(CircuitOpenException):
            quote("SPY")
    assert server.hits == 3
    assert breaker_of(quote).metrics.rejected_requests == 5


def test_timeouts_open_the_breaker(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=5)
    server.mode = "hang"
    trip(quote, requests.Timeout)
    assert breaker_of(quote).is_open
    with pytest.raises(CircuitOpenException):
        quote("SPY")
    assert server.hits == 3


def test_breaker_half_opens_and_recovers(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=0.2)
    breaker = breaker_of(quote)
    server.stop()
    trip(quote, requests.ConnectionError)
    assert breaker.state is not CircuitState.CLOSED
    wait_for_state(breaker, CircuitState.HALF_OPEN)
    server.start()
    assert quote("SPY")["symbol"] == "SPY"
    assert breaker.is_closed
    assert server.hits == 1


def test_failed_trial_reopens_the_breaker(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=0.2)
    breaker = breaker_of(quote)
    server.mode = "error"
    trip(quote, APIError)
    wait_for_state(breaker, CircuitState.HALF_OPEN)
    with pytest.raises(APIError):
        quote("SPY")
    assert breaker.state is not CircuitState.CLOSED
    assert breaker.get_status()["consecutive_trips"] == 2
    assert server.hits == 4
    server.mode = "ok"
    wait_for_state(breaker, CircuitState.HALF_OPEN)  # longer this time: the backoff doubled
    assert quote("SPY")["price"] == "501.25"
    assert breaker.is_closed


def test_client_errors_count_as_neither(requests_broker: RequestsBroker, server: BrokerServer) -> None:
    quote = protected_quotes(requests_broker, REQUESTS_ERRORS, open_timeout=5)
    server.mode = "reject"
    for _ in range(10):
        with pytest.raises(APIError) as info:
            quote("SPY")
        assert info.value.status == 400
    breaker = breaker_of(quote)
    assert breaker.is_closed
    assert breaker.metrics.failed_requests == 0
    assert breaker.metrics.ignored_requests == 10
    assert server.hits == 10


# --- trade_guard around the requests SDK ----------------------------------------------------------


@pytest.fixture
def live_breakers(make_breakers: MakeBreakers, provider: FakeProvider) -> TradingCircuitBreakers:
    """Trading breakers on the real clock, with a 0.2 s connection open timeout."""
    return make_breakers(clock_=None, connection_timeout_seconds=CLIENT_TIMEOUT)


def send_order(breakers: TradingCircuitBreakers, sdk: Any) -> Dict[str, Any]:
    with breakers.trade_guard("SPY", D(10_000)):
        return sdk.place_order("SPY", 20)  # type: ignore[no-any-return]


def test_trade_guard_passes_a_healthy_order(
    live_breakers: TradingCircuitBreakers, requests_broker: RequestsBroker, server: BrokerServer
) -> None:
    assert send_order(live_breakers, requests_broker)["order_id"] == "A1"
    assert live_breakers.get_status().orders_last_minute == 1
    assert server.hits == 1


def test_refused_connections_halt_trading(
    make_breakers: MakeBreakers, requests_broker: RequestsBroker, server: BrokerServer
) -> None:
    breakers = make_breakers(clock_=None, connection_timeout_seconds=30)
    server.stop()
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            send_order(breakers, requests_broker)
    assert not breakers.can_trade()
    reason = breakers.get_blocking_reasons()[0]
    assert reason.startswith("connection:")
    assert "ConnectionError" in reason
    server.start()
    with pytest.raises(TradingHalted, match="connection"):
        send_order(breakers, requests_broker)
    assert server.hits == 0


def test_timeouts_through_trade_guard_halt_trading(
    make_breakers: MakeBreakers, requests_broker: RequestsBroker, server: BrokerServer
) -> None:
    breakers = make_breakers(clock_=None, connection_timeout_seconds=30)
    server.mode = "hang"
    for _ in range(3):
        with pytest.raises(requests.Timeout):
            send_order(breakers, requests_broker)
    assert not breakers.can_trade()
    with pytest.raises(TradingHalted):
        send_order(breakers, requests_broker)
    assert server.hits == 3


def test_trading_resumes_after_the_open_timeout(
    live_breakers: TradingCircuitBreakers, requests_broker: RequestsBroker, server: BrokerServer
) -> None:
    connection = live_breakers.manager.get_circuit_breaker("connection")
    assert connection is not None
    server.stop()
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            send_order(live_breakers, requests_broker)
    wait_for_state(connection, CircuitState.HALF_OPEN)
    server.start()
    assert send_order(live_breakers, requests_broker)["order_id"] == "A1"
    assert connection.is_closed
    assert live_breakers.can_trade()


def test_rejected_orders_do_not_halt_trading(
    live_breakers: TradingCircuitBreakers, requests_broker: RequestsBroker, server: BrokerServer
) -> None:
    server.mode = "reject"
    for _ in range(5):
        with pytest.raises(APIError):
            send_order(live_breakers, requests_broker)
    assert live_breakers.can_trade()
    connection = live_breakers.manager.get_circuit_breaker("connection")
    assert connection is not None
    assert connection.metrics.failed_requests == 0


# --- httpx ----------------------------------------------------------------------------------------


def test_httpx_errors_are_connection_errors_by_default(
    make_breakers: MakeBreakers, httpx_broker: HttpxBroker, server: BrokerServer
) -> None:
    breakers = make_breakers(clock_=None, connection_timeout_seconds=30)
    server.stop()
    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            send_order(breakers, httpx_broker)
    assert not breakers.can_trade()  # not OSErrors, but is_outage knows httpx's transport errors


HTTPX_CONNECTION_ERRORS = (OSError, httpx.TransportError)


def test_httpx_transport_errors_halt_trading_when_configured(
    make_breakers: MakeBreakers, httpx_broker: HttpxBroker, server: BrokerServer
) -> None:
    breakers = make_breakers(clock_=None, connection_timeout_seconds=30, connection_errors=HTTPX_CONNECTION_ERRORS)
    server.mode = "hang"
    for _ in range(3):
        with pytest.raises(httpx.ReadTimeout):
            send_order(breakers, httpx_broker)
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons()[0].startswith("connection:")
    with pytest.raises(TradingHalted):
        send_order(breakers, httpx_broker)
    assert server.hits == 3


def test_httpx_trading_resumes_after_the_open_timeout(
    make_breakers: MakeBreakers, httpx_broker: HttpxBroker, server: BrokerServer
) -> None:
    breakers = make_breakers(
        clock_=None, connection_timeout_seconds=CLIENT_TIMEOUT, connection_errors=HTTPX_CONNECTION_ERRORS
    )
    connection = breakers.manager.get_circuit_breaker("connection")
    assert connection is not None
    server.stop()
    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            send_order(breakers, httpx_broker)
    assert connection.state is not CircuitState.CLOSED
    wait_for_state(connection, CircuitState.HALF_OPEN)
    server.start()
    assert send_order(breakers, httpx_broker)["order_id"] == "A1"
    assert connection.is_closed
    assert breakers.can_trade()


def test_httpx_refused_connections_open_the_breaker(httpx_broker: HttpxBroker, server: BrokerServer) -> None:
    quote = protected_quotes(httpx_broker, HTTPX_ERRORS, open_timeout=5)
    server.stop()
    trip(quote, httpx.ConnectError)
    server.start()
    with pytest.raises(CircuitOpenException):
        quote("SPY")
    assert server.hits == 0


def test_httpx_timeouts_open_then_recover(httpx_broker: HttpxBroker, server: BrokerServer) -> None:
    quote = protected_quotes(httpx_broker, HTTPX_ERRORS, open_timeout=0.2)
    breaker = breaker_of(quote)
    server.mode = "hang"
    trip(quote, httpx.ReadTimeout)
    assert server.hits == 3
    server.mode = "ok"
    wait_for_state(breaker, CircuitState.HALF_OPEN)
    assert quote("SPY")["price"] == "501.25"
    assert breaker.is_closed


def test_httpx_client_errors_count_as_neither(httpx_broker: HttpxBroker, server: BrokerServer) -> None:
    quote = protected_quotes(httpx_broker, HTTPX_ERRORS, open_timeout=5)
    server.mode = "reject"
    for _ in range(5):
        with pytest.raises(APIError):
            quote("SPY")
    breaker = breaker_of(quote)
    assert breaker.is_closed
    assert breaker.metrics.failed_requests == 0
    assert breaker.metrics.ignored_requests == 5
