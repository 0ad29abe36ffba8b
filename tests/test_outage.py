"""is_outage: an HTTP status decides (5xx, 408, 429 are outages), else transport errors, else SDK verdicts.

Exceptions here are built by hand (requests' and httpx's own classes, SDK look-alikes); the real
clients against a real server are in tests/sdk.
"""

from __future__ import annotations

import enum
import http.client
import socket
import ssl
import subprocess
import sys
import urllib.error
from http import HTTPStatus
from typing import Any, Optional

import httpx
import pytest
import requests

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    KillSwitchError,
    ManualClock,
    OrderDecision,
    OrderRejected,
    RateLimitExceeded,
    RejectReason,
    TradingHalted,
    is_outage,
)
from circuit_breakers.outage import http_status


def requests_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Error", response=response)


def httpx_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://broker.invalid/v2/orders")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


class APIError(Exception):
    """An SDK error keeping the status in an attribute named ``attribute``."""

    def __init__(self, attribute: str, value: object, **more: object) -> None:
        super().__init__(f"{attribute}={value!r}")
        setattr(self, attribute, value)
        for name, other in more.items():
            setattr(self, name, other)


def sdk_class(module: str, name: str, base: type = Exception) -> type:
    """A class that looks, by module and name, like an SDK's own exception class."""
    return type(name, (base,), {"__module__": module})


CcxtNetworkError = sdk_class("ccxt.base.errors", "NetworkError")
CcxtExchangeNotAvailable = sdk_class("ccxt.base.errors", "ExchangeNotAvailable", CcxtNetworkError)
CcxtInsufficientFunds = sdk_class("ccxt.base.errors", "InsufficientFunds")


def raised(
    error: BaseException, *, cause: Optional[BaseException] = None, context: Optional[BaseException] = None
) -> BaseException:
    """``error`` as Python leaves it after ``raise error from cause`` inside ``except context``."""
    try:
        try:
            if context is not None:
                raise context
        finally:
            if cause is not None:
                raise error from cause
            raise error
    except BaseException as exc:  # exactly what was raised, with its cause and context
        return exc


# --- HTTP statuses ----------------------------------------------------------------------------

STATUSES = [
    (100, False), (200, False), (204, False), (302, False),
    (400, False), (401, False), (403, False), (404, False), (409, False), (418, False), (422, False), (499, False),
    (408, True), (429, True),
    (500, True), (502, True), (503, True), (504, True), (520, True), (599, True),
]  # fmt: skip


@pytest.mark.parametrize(("status", "outage"), STATUSES)
def test_requests_http_errors_are_outages_only_for_5xx_408_429(status: int, outage: bool) -> None:
    error = requests_error(status)
    assert isinstance(error, OSError)  # what made every 4xx a connection failure before
    assert is_outage(error) is outage


@pytest.mark.parametrize(("status", "outage"), STATUSES)
def test_httpx_status_errors(status: int, outage: bool) -> None:
    assert is_outage(httpx_error(status)) is outage


@pytest.mark.parametrize("attribute", ["status_code", "status", "code", "http_status"])
@pytest.mark.parametrize(("value", "outage"), [(400, False), (503, True), ("429", True), (" 422 ", False)])
def test_sdk_status_attributes(attribute: str, value: object, outage: bool) -> None:
    assert is_outage(APIError(attribute, value)) is outage


def test_an_intenum_status_counts() -> None:
    assert is_outage(APIError("status", HTTPStatus.SERVICE_UNAVAILABLE))
    assert not is_outage(APIError("status", HTTPStatus.UNPROCESSABLE_ENTITY))


@pytest.mark.parametrize("value", [True, 503.0, "503.0", "5o3", "", "x503", -2010, 40310000, 99, 600, "1000", None])
def test_values_that_are_not_http_statuses_are_no_status(value: object) -> None:
    assert http_status(APIError("status", value)) is None
    assert not is_outage(APIError("status", value))


def test_an_api_error_code_is_skipped_for_the_http_status() -> None:
    binance_like = APIError("code", -2010, status_code=400, message="insufficient balance")
    alpaca_like = APIError("code", 40310000, status_code=503)
    assert (http_status(binance_like), http_status(alpaca_like)) == (400, 503)
    assert is_outage(alpaca_like)
    assert not is_outage(binance_like)


def test_the_response_status_comes_first() -> None:
    class Response:
        status = 502

    assert http_status(APIError("code", 400, response=Response())) == 502


def test_urllib_http_error_carries_its_code() -> None:
    assert not is_outage(urllib.error.HTTPError("https://broker.invalid", 400, "Bad Request", {}, None))  # type: ignore[arg-type]
    assert is_outage(urllib.error.HTTPError("https://broker.invalid", 503, "Unavailable", {}, None))  # type: ignore[arg-type]


# --- errors without a status ------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        OSError("socket closed"),
        ConnectionResetError("reset by peer"),
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        socket.timeout("timed out"),
        socket.gaierror(-2, "Name or service not known"),
        ssl.SSLError("handshake failed"),
        urllib.error.URLError("unreachable"),
        requests.ConnectionError("unreachable"),
        requests.Timeout("slow"),
        requests.HTTPError("no response attached"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("closed without a response"),
        http.client.IncompleteRead(b"partial"),
        http.client.RemoteDisconnected("closed"),
        CcxtNetworkError("binance GET /api/v3/account"),
        CcxtExchangeNotAvailable("maintenance"),
        sdk_class("binance.exceptions", "BinanceRequestException")("Invalid Response: <html>"),
    ],
    ids=lambda error: f"{type(error).__module__}.{type(error).__name__}",
)
def test_transport_and_sdk_network_errors_are_outages(error: Exception) -> None:
    assert is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad price"),
        KeyError("order_id"),
        TypeError("bug"),
        RuntimeError("unexpected"),
        ArithmeticError("division"),
        CcxtInsufficientFunds("binance insufficient balance"),
        sdk_class("binance.exceptions", "BinanceOrderException")("-1013 min notional"),
        sdk_class("mybroker", "TransportError")("a look-alike name from another package"),
    ],
    ids=lambda error: f"{type(error).__module__}.{type(error).__name__}",
)
def test_errors_without_evidence_are_not_outages(error: Exception) -> None:
    assert not is_outage(error)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(503), GeneratorExit()], ids=repr)
def test_base_exceptions_are_not_outages(error: BaseException) -> None:
    assert not is_outage(error)


# --- the library's refusals -------------------------------------------------------------------

REFUSALS = [
    RateLimitExceeded("orders", 1.0),
    CircuitOpenException("broker", CircuitType.CONNECTION_FAILURE, CircuitState.OPEN, 5.0),
    TradingHalted(["connection: 3 failures"]),
    OrderRejected(OrderDecision(False, RejectReason.MAX_NOTIONAL, "too big")),
    KillSwitchError("locked out"),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda refusal: type(refusal).__name__)
def test_library_refusals_are_never_outages(refusal: Exception) -> None:
    assert not is_outage(refusal)
    assert not is_outage(raised(refusal, context=TimeoutError("an earlier timeout")))
    assert not is_outage(raised(APIError("note", "wrapped"), cause=refusal))


# --- the cause / context chain ----------------------------------------------------------------


def test_a_wrapped_transport_error_is_an_outage() -> None:
    assert is_outage(raised(RuntimeError("SDK: request failed"), cause=TimeoutError("read timed out")))
    assert is_outage(raised(RuntimeError("SDK: request failed"), context=ConnectionResetError("reset")))


def test_a_wrapped_refused_request_is_not() -> None:
    assert not is_outage(raised(RuntimeError("SDK: insufficient funds"), cause=requests_error(400)))
    assert is_outage(raised(RuntimeError("SDK: broker error"), context=requests_error(503)))


def test_a_status_behind_an_sdk_network_error_decides() -> None:
    # ccxt raises ExchangeNotAvailable for a 400 or 403 it cannot explain: the status is the better evidence.
    assert not is_outage(raised(CcxtExchangeNotAvailable("400 Bad Request"), context=requests_error(400)))
    assert is_outage(raised(CcxtExchangeNotAvailable("503"), context=requests_error(503)))


def test_the_outermost_decisive_link_wins() -> None:
    # A retry that timed out while handling a 400: the timeout is the latest word.
    assert is_outage(raised(requests.Timeout("retry timed out"), context=requests_error(400)))
    # A refusal with a status, raised while handling a timeout: the broker answered this time.
    assert not is_outage(raised(requests_error(422), context=TimeoutError("first attempt")))


def test_cycles_end() -> None:
    first, second = ValueError("first"), ValueError("second")
    first.__cause__, second.__cause__ = second, first
    assert not is_outage(first)
    second.__context__ = TimeoutError("behind the cycle")
    assert is_outage(first)


def test_the_chain_is_bounded() -> None:
    def chain(length: int) -> BaseException:
        exc: BaseException = TimeoutError("at the bottom")
        for number in range(length):
            exc = raised(ValueError(f"layer {number}"), cause=exc)
        return exc

    assert is_outage(chain(14))
    assert not is_outage(chain(200))  # 16 links at most are read


# --- odd objects: judged, never raising ---------------------------------------------------------


class HostileStatus(Exception):
    @property
    def status_code(self) -> int:
        raise ValueError("the SDK could not decode the body")

    @property
    def response(self) -> Any:
        raise RuntimeError("no response")

    @property
    def code(self) -> int:
        return 503  # read only after the raising ones


class Everything(Exception):
    def __getattr__(self, name: str) -> Any:
        return self  # every attribute is itself: not an int, not a str


class Recursive(Exception):
    def __getattr__(self, name: str) -> Any:
        raise RecursionError(name)


class Meta(type):
    def __getattribute__(cls, name: str) -> Any:
        if name in ("__mro__", "__module__", "__name__"):
            raise RuntimeError(name)
        return super().__getattribute__(name)


class HostileClass(Exception, metaclass=Meta):
    pass


class Status(enum.Enum):
    UNAVAILABLE = 503


def test_odd_exceptions_are_judged_without_raising() -> None:
    assert is_outage(HostileStatus())
    assert not is_outage(Everything())
    assert not is_outage(Recursive())
    assert not is_outage(HostileClass())
    assert not is_outage(APIError("status", Status.UNAVAILABLE))  # a plain Enum is not a number


@pytest.mark.parametrize("value", [None, "503", 503, object(), TimeoutError])
def test_non_exceptions_are_not_outages(value: Any) -> None:
    assert is_outage(value) is False


# --- in a breaker, and at import ----------------------------------------------------------------


def test_is_outage_as_failure_exceptions() -> None:
    breaker = CircuitBreaker(
        "broker", config=CircuitBreakerConfig(failure_exceptions=(is_outage,), failure_threshold=3), clock=ManualClock()
    )

    def send(error: Exception) -> None:
        with pytest.raises(type(error)):
            breaker.call(lambda: (_ for _ in ()).throw(error))

    for _ in range(10):
        send(requests_error(400))
    assert breaker.is_closed
    assert (breaker.metrics.failed_requests, breaker.metrics.ignored_requests) == (0, 10)
    for _ in range(3):
        send(requests_error(503))
    assert breaker.is_open


def test_importing_the_package_imports_no_http_client_or_sdk() -> None:
    code = (
        "import sys, circuit_breakers\n"
        "from circuit_breakers import is_outage\n"
        "assert not is_outage(ValueError()) and is_outage(TimeoutError())\n"
        "loaded = sorted({'requests', 'httpx', 'urllib3', 'ccxt', 'alpaca', 'binance'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
