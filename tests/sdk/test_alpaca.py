"""alpaca-py's TradingClient against the local server: APIError carries the status, transport errors pass through."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from circuit_breakers import TradingCircuitBreakers

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


@pytest.fixture
def alpaca() -> SimpleNamespace:
    """The parts of alpaca-py used here."""
    client, requests_, enums, exceptions = (
        sdk(f"alpaca.{name}") for name in ("trading.client", "trading.requests", "trading.enums", "common.exceptions")
    )
    return SimpleNamespace(
        TradingClient=client.TradingClient,
        MarketOrderRequest=requests_.MarketOrderRequest,
        OrderSide=enums.OrderSide,
        TimeInForce=enums.TimeInForce,
        APIError=exceptions.APIError,
    )


@pytest.fixture
def client(alpaca: SimpleNamespace, server: BrokerServer) -> Any:
    trading = alpaca.TradingClient("key-id", "secret-key", paper=True, url_override=server.url)
    # The SDK retries 429 and 504 three times, 3 s apart, before raising: one try here.
    trading._retry = 0
    # It sets no request timeout (a hung request would block forever): give its session one.
    trading._session.trust_env = False
    trading._session.request = functools.partial(trading._session.request, timeout=CLIENT_TIMEOUT)
    trading.submit = lambda: trading.submit_order(
        alpaca.MarketOrderRequest(symbol="SPY", qty=1, side=alpaca.OrderSide.BUY, time_in_force=alpaca.TimeInForce.DAY)
    )
    return trading


def error_body(status: int) -> Any:
    if status < 500:
        return {"code": 40310000, "message": "insufficient buying power"}
    return {"code": 50010000, "message": "internal server error"}


@pytest.mark.parametrize(("answer", "outage"), ANSWERS, ids=ANSWER_IDS)
def test_submit_order_errors_are_classified(
    alpaca: SimpleNamespace, server: BrokerServer, client: Any, answer: Answer, outage: bool
) -> None:
    server.answer, server.error_body = answer, error_body
    error = assert_classified(client.submit, outage)
    if isinstance(answer, int):
        assert isinstance(error, alpaca.APIError)
        assert error.status_code == answer
        assert error.code in (40310000, 50010000)  # Alpaca's own code: not read as a status
    elif answer == "hang":
        assert isinstance(error, requests.Timeout)
    else:
        assert isinstance(error, requests.ConnectionError)
    assert server.hits("/v2/orders") == 1


def test_submit_order_through_circuit_breaker(server: BrokerServer, client: Any) -> None:
    server.error_body = error_body
    assert_breaker_trips_on_outages_only(server, client.submit)


def test_submit_order_through_trade_guard(server: BrokerServer, client: Any, desk: TradingCircuitBreakers) -> None:
    server.error_body = error_body
    assert_trade_guard_halts_on_outages_only(server, desk, client.submit)
