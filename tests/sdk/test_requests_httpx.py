"""requests and httpx against the local server: every answer classified, and the breakers end to end."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Dict, List

import httpx
import pytest
import requests

from circuit_breakers import Order, Side, TradingCircuitBreakers

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

WAIT = 10.0
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


def test_eight_threads_of_refused_orders_never_halt_the_desk(
    server: BrokerServer, desk: TradingCircuitBreakers
) -> None:
    """The desk that halted on three 400s: eight worker threads sending orders through trade_guard(order)."""
    threads, orders_each = 8, 5
    server.answer = 400
    start = threading.Barrier(threads)
    statuses: List[int] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        with requests.Session() as own:
            own.trust_env = False
            start.wait(WAIT)
            for sent in range(orders_each):
                order = Order("SPY", Side.BUY, Decimal("1"), Decimal("100"), client_order_id=f"w{number}-{sent}")
                try:
                    with desk.trade_guard(order):
                        send_with_requests(own, server)
                except requests.HTTPError as refused:
                    status = -1 if refused.response is None else refused.response.status_code
                    with lock:
                        statuses.append(status)

    workers = [threading.Thread(target=worker, args=(number,)) for number in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in workers)
    assert statuses == [400] * threads * orders_each
    assert desk.can_trade()
    connection = desk.get_status().details["connection"]
    assert (connection["failed_requests"], connection["ignored_requests"]) == (0, threads * orders_each)
