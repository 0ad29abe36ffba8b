"""ccxt (sync) against the local server: its error classes wrap requests' errors, and the status decides.

ccxt's own classes are coarse: without an exchange error code in the body it raises
ExchangeNotAvailable (a NetworkError) for a 400 or a 403, and with one it raises ExchangeError or
OperationFailed (not NetworkErrors) for a 500. The requests error in the chain carries the status.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, Callable, Dict, NamedTuple

import pytest
import requests

from circuit_breakers import TradingCircuitBreakers, is_outage

from .conftest import (
    ANSWERS,
    CLIENT_TIMEOUT,
    Answer,
    BrokerServer,
    assert_breaker_trips_on_outages_only,
    assert_classified,
    assert_trade_guard_halts_on_outages_only,
    sdk,
)

MARKETS_ANSWERS: Dict[str, Any] = {
    "/api/v3/exchangeInfo": {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [],
                "permissions": ["SPOT"],
            }
        ]
    },
    "/sapi/v1/capital/config/getall": [],
    "/sapi/v1/margin/allPairs": [],
    "/sapi/v1/margin/isolated/allPairs": [],
}
"""What ccxt's binance asks for when it loads markets (spot only), each answered with 200."""


def binance_error(status: int) -> Dict[str, Any]:
    """Binance's error body: an error code that ccxt maps to a class of its own."""
    if status < 500:
        return {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}


def bare_error(status: int) -> Dict[str, Any]:
    """A body without an error code: ccxt falls back on its table of HTTP statuses."""
    return {}


@pytest.fixture
def ccxt() -> ModuleType:
    return sdk("ccxt")


@pytest.fixture
def exchange(ccxt: ModuleType, server: BrokerServer) -> Any:
    # enableRateLimit off: ccxt's own throttle sleeps between requests.
    options = {"apiKey": "key", "secret": "secret", "timeout": int(CLIENT_TIMEOUT * 1000), "enableRateLimit": False}
    binance = ccxt.binance(options)
    urls = binance.urls["api"]
    binance.urls["api"] = {name: re.sub(r"^https://[^/]+", server.url, url) for name, url in urls.items()}
    binance.options["fetchMarkets"] = {"types": ["spot"]}
    binance.session.trust_env = False
    server.ok_paths.update(MARKETS_ANSWERS)
    binance.load_markets()
    assert list(binance.markets) == ["BTC/USDT"]
    return binance


def create_order(exchange: Any) -> Any:
    return exchange.create_order("BTC/USDT", "limit", "buy", 1, 100)


def fetch_balance(exchange: Any) -> Any:
    return exchange.fetch_balance()


CALLS: Dict[str, Callable[[Any], Any]] = {"create_order": create_order, "fetch_balance": fetch_balance}
BODIES = {"binance_code": binance_error, "no_code": bare_error}


class Case(NamedTuple):
    answer: Answer
    outage: bool
    call: str
    body: str


CASES = [
    pytest.param(Case(answer, outage, call, body), id=f"{answer}-{call}-{body}")
    for answer, outage in ANSWERS
    for call in CALLS
    for body in (BODIES if isinstance(answer, int) else ["no_code"])  # a body needs an answer
]


@pytest.mark.parametrize("case", CASES)
def test_errors_are_classified(ccxt: ModuleType, server: BrokerServer, exchange: Any, case: Case) -> None:
    answer, outage, call, body = case
    server.answer, server.error_body = answer, BODIES[body]
    error = assert_classified(lambda: CALLS[call](exchange), outage)
    assert isinstance(error, ccxt.BaseError)
    transport = error.__cause__ or error.__context__
    if isinstance(answer, int):
        assert isinstance(transport, requests.HTTPError)
        assert transport.response.status_code == answer
    elif answer == "hang":
        assert isinstance(error, ccxt.RequestTimeout)
        assert isinstance(transport, requests.Timeout)
    else:
        assert isinstance(error, ccxt.NetworkError)
        assert isinstance(transport, requests.ConnectionError)


def test_a_bare_400_is_exchange_not_available_to_ccxt_and_no_outage(
    ccxt: ModuleType, server: BrokerServer, exchange: Any
) -> None:
    server.answer, server.error_body = 400, bare_error
    error = assert_classified(lambda: fetch_balance(exchange), False)
    assert isinstance(error, ccxt.ExchangeNotAvailable)


def test_an_insufficient_funds_400_is_no_outage(ccxt: ModuleType, server: BrokerServer, exchange: Any) -> None:
    server.answer, server.error_body = 400, binance_error
    error = assert_classified(lambda: create_order(exchange), False)
    assert isinstance(error, ccxt.InsufficientFunds)


@pytest.mark.parametrize(
    ("name", "outage"),
    [
        ("NetworkError", True),
        ("RequestTimeout", True),
        ("ExchangeNotAvailable", True),
        ("OnMaintenance", True),
        ("DDoSProtection", True),
        ("RateLimitExceeded", True),
        ("ExchangeError", False),
        ("InsufficientFunds", False),
        ("InvalidOrder", False),
        ("AuthenticationError", False),
        ("BadRequest", False),
        ("BadSymbol", False),
    ],
)
def test_ccxt_classes_without_a_status_behind_them(ccxt: ModuleType, name: str, outage: bool) -> None:
    assert is_outage(getattr(ccxt, name)("binance")) is outage


def test_create_order_through_circuit_breaker(server: BrokerServer, exchange: Any) -> None:
    server.error_body = binance_error
    assert_breaker_trips_on_outages_only(server, lambda: create_order(exchange))


def test_create_order_through_trade_guard(server: BrokerServer, exchange: Any, desk: TradingCircuitBreakers) -> None:
    server.error_body = bare_error
    assert_trade_guard_halts_on_outages_only(server, desk, lambda: create_order(exchange))
