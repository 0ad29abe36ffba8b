"""python-binance's Client against the local server: BinanceAPIException carries the HTTP status.

Its constructor pings the server (GET /api/v3/ping), which the server answers; its ``code`` is
Binance's own error code (-2010), never read as an HTTP status.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict

import pytest
import requests

from circuit_breakers import TradingCircuitBreakers, is_outage

from .conftest import (
    ANSWER_IDS,
    ANSWERS,
    CLIENT_TIMEOUT,
    Answer,
    BrokerServer,
    assert_breaker_trips_on_outages_only,
    assert_classified,
    assert_trade_guard_halts_on_outages_only,
    sdk,
)

PING = "/api/v3/ping"


def binance_error(status: int) -> Dict[str, Any]:
    if status < 500:
        return {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}


@pytest.fixture
def binance() -> SimpleNamespace:
    """The parts of python-binance used here."""
    client, exceptions = sdk("binance.client"), sdk("binance.exceptions")
    return SimpleNamespace(Client=client.Client, exceptions=exceptions)


@pytest.fixture
def client(binance: SimpleNamespace, server: BrokerServer) -> Any:
    class LocalClient(binance.Client):
        API_URL = f"{server.url}/api"  # the constructor formats it: nothing to fill in here

    server.ok_paths[PING] = {}
    local = LocalClient("key", "secret", requests_params={"timeout": CLIENT_TIMEOUT})
    local.session.trust_env = False
    assert server.hits(PING) == 1  # the constructor's ping reached us, not Binance
    server.error_body = binance_error
    return local


def create_order(client: Any) -> Any:
    return client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity=1, price=100)


@pytest.mark.parametrize(("answer", "outage"), ANSWERS, ids=ANSWER_IDS)
def test_create_order_errors_are_classified(
    binance: SimpleNamespace, server: BrokerServer, client: Any, answer: Answer, outage: bool
) -> None:
    server.answer = answer
    error = assert_classified(lambda: create_order(client), outage)
    if isinstance(answer, int):
        assert isinstance(error, binance.exceptions.BinanceAPIException)
        assert (error.status_code, error.code) == (answer, -2010 if answer < 500 else -1001)
    elif answer == "hang":
        assert isinstance(error, requests.Timeout)
    else:
        assert isinstance(error, requests.ConnectionError)
    assert server.hits("/api/v3/order") == 1


def test_an_answer_that_is_not_json_is_an_outage(binance: SimpleNamespace, server: BrokerServer, client: Any) -> None:
    server.ok_paths["/api/v3/order"] = b"<html><body>Down for maintenance</body></html>"
    error = assert_classified(lambda: create_order(client), True)
    assert isinstance(error, binance.exceptions.BinanceRequestException)


def test_client_side_order_errors_are_not_outages(binance: SimpleNamespace) -> None:
    exceptions = binance.exceptions
    assert not is_outage(exceptions.BinanceOrderException(-1013, "Filter failure: MIN_NOTIONAL"))
    assert not is_outage(exceptions.BinanceOrderMinAmountException("0.001"))
    assert is_outage(exceptions.BinanceRequestException("Invalid Response: <html>"))


def test_create_order_through_circuit_breaker(server: BrokerServer, client: Any) -> None:
    assert_breaker_trips_on_outages_only(server, lambda: create_order(client))


def test_create_order_through_trade_guard(server: BrokerServer, client: Any, desk: TradingCircuitBreakers) -> None:
    assert_trade_guard_halts_on_outages_only(server, desk, lambda: create_order(client))
