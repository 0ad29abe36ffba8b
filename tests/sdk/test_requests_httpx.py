"""requests and httpx against the local server: every answer classified, and the breakers end to end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Dict

import httpx
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
)

ORDER = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as client:
        client.trust_env = False  # no proxy between us and 127.0.0.1
        yield client


@pytest.fixture
def httpx_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=CLIENT_TIMEOUT, trust_env=False) as client:
        yield client


def send_with_requests(session: requests.Session, server: BrokerServer) -> Dict[str, Any]:
    response = session.post(f"{server.url}/v2/orders", json=ORDER, timeout=CLIENT_TIMEOUT)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def send_with_httpx(client: httpx.Client, server: BrokerServer) -> Dict[str, Any]:
    response = client.post(f"{server.url}/v2/orders", json=ORDER)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def expected_requests_error(answer: Answer) -> type:
    return {"hang": requests.Timeout, "close": requests.ConnectionError}.get(str(answer), requests.HTTPError)


def expected_httpx_error(answer: Answer) -> type:
    return {"hang": httpx.ReadTimeout, "close": httpx.TransportError}.get(str(answer), httpx.HTTPStatusError)


def test_both_clients_get_the_order_through_a_healthy_server(
    server: BrokerServer, session: requests.Session, httpx_client: httpx.Client
) -> None:
    assert send_with_requests(session, server)["status"] == "accepted"
    assert send_with_httpx(httpx_client, server)["status"] == "accepted"
    assert server.hits("/v2/orders") == 2


@pytest.mark.parametrize(("answer", "outage"), ANSWERS, ids=ANSWER_IDS)
def test_requests_errors_are_classified(
    server: BrokerServer, session: requests.Session, answer: Answer, outage: bool
) -> None:
    server.answer = answer
    error = assert_classified(lambda: send_with_requests(session, server), outage)
    assert isinstance(error, expected_requests_error(answer))
    assert isinstance(error, OSError)  # every one of them: why OSError alone could not tell them apart
    if isinstance(answer, int):
        assert isinstance(error, requests.HTTPError)
        assert error.response is not None
        assert error.response.status_code == answer


@pytest.mark.parametrize(("answer", "outage"), ANSWERS, ids=ANSWER_IDS)
def test_httpx_errors_are_classified(
    server: BrokerServer, httpx_client: httpx.Client, answer: Answer, outage: bool
) -> None:
    server.answer = answer
    error = assert_classified(lambda: send_with_httpx(httpx_client, server), outage)
    assert isinstance(error, expected_httpx_error(answer))
    if isinstance(answer, int):
        assert isinstance(error, httpx.HTTPStatusError)
        assert error.response.status_code == answer


def test_requests_through_circuit_breaker(server: BrokerServer, session: requests.Session) -> None:
    assert_breaker_trips_on_outages_only(server, lambda: send_with_requests(session, server))


def test_requests_through_trade_guard(
    server: BrokerServer, session: requests.Session, desk: TradingCircuitBreakers
) -> None:
    assert_trade_guard_halts_on_outages_only(server, desk, lambda: send_with_requests(session, server))


def test_httpx_through_trade_guard(
    server: BrokerServer, httpx_client: httpx.Client, desk: TradingCircuitBreakers
) -> None:
    assert_trade_guard_halts_on_outages_only(server, desk, lambda: send_with_httpx(httpx_client, server))
