"""A failed send leaks nothing: refused or unsent orders are released at once, unknown ones stay counted.

Real ``requests`` and ``httpx`` clients against the local broker server (and a closed port, and a
name that cannot resolve), through ``trade_guard(order)`` with a gross exposure limit, so that a
leaked order would show as pending exposure and as a duplicate.
"""

from __future__ import annotations

import socket
from decimal import Decimal
from typing import Any, Callable, Iterator

import httpx
import pytest
import requests

from circuit_breakers import (
    ManualClock,
    Order,
    OrderLimits,
    OrderRejected,
    RejectReason,
    Side,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    TradingHalted,
)
from circuit_breakers.outage import SendOutcome, send_outcome

from .conftest import CLIENT_TIMEOUT, BrokerServer, Desk

D = Decimal


@pytest.fixture
def breakers() -> Iterator[TradingCircuitBreakers]:
    limits = OrderLimits(max_gross_exposure=D(12_000), duplicate_window_seconds=60)
    config = TradingBreakerConfig(connection_failure_threshold=50)  # these tests are about orders, not outages
    made = TradingCircuitBreakers(Desk(), config, order_limits=limits, clock=ManualClock())
    yield made
    made.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def order(client_order_id: str, quantity: str = "100") -> Order:
    return Order("SPY", Side.BUY, D(quantity), D("100"), client_order_id)  # 10 000 of a 12 000 limit


def send(breakers: TradingCircuitBreakers, the_order: Order, call: Callable[[], Any]) -> None:
    with breakers.trade_guard(the_order):
        response = call()
        response.raise_for_status()


def pending(breakers: TradingCircuitBreakers) -> Any:
    return breakers.get_status().details["orders"]


NOT_PLACED = [
    ("requests-400", lambda server: lambda: requests.post(f"{server.url}/orders", timeout=CLIENT_TIMEOUT), 400),
    ("httpx-422", lambda server: lambda: httpx.post(f"{server.url}/orders", timeout=CLIENT_TIMEOUT), 422),
    ("requests-429", lambda server: lambda: requests.post(f"{server.url}/orders", timeout=CLIENT_TIMEOUT), 429),
    (
        "requests-refused",
        lambda server: lambda: requests.post(f"http://127.0.0.1:{closed_port()}/orders", timeout=CLIENT_TIMEOUT),
        None,
    ),
    (
        "httpx-refused",
        lambda server: lambda: httpx.post(f"http://127.0.0.1:{closed_port()}/orders", timeout=CLIENT_TIMEOUT),
        None,
    ),
    (
        "requests-no-such-host",
        lambda server: lambda: requests.post("http://broker.invalid/orders", timeout=CLIENT_TIMEOUT),
        None,
    ),
    (
        "httpx-no-such-host",
        lambda server: lambda: httpx.post("http://broker.invalid/orders", timeout=CLIENT_TIMEOUT),
        None,
    ),
]


@pytest.mark.parametrize(
    ("make_call", "answer"), [case[1:] for case in NOT_PLACED], ids=[case[0] for case in NOT_PLACED]
)
def test_an_order_refused_or_never_sent_is_released_at_once(
    server: BrokerServer, breakers: TradingCircuitBreakers, make_call: Any, answer: Any
) -> None:
    server.answer = answer if answer is not None else 200
    first = order("o-1")
    with pytest.raises((requests.RequestException, httpx.HTTPError)) as failed:
        send(breakers, first, make_call(server))
    assert send_outcome(failed.value) is SendOutcome.NOT_PLACED
    orders = pending(breakers)
    assert (orders["pending_orders"], orders["pending_notional"], orders["remembered_orders"]) == (0, 0, 0)
    server.answer = 200
    retry = order("o-1")  # the same order again passes: no duplicate, no pending exposure left
    send(breakers, retry, lambda: requests.post(f"{server.url}/orders", timeout=CLIENT_TIMEOUT))
    assert pending(breakers)["pending_orders"] == 1


def post_with(client: Any, server: BrokerServer, timeout: float = CLIENT_TIMEOUT) -> Callable[[], Any]:
    return lambda: client.post(f"{server.url}/orders", timeout=timeout)


UNKNOWN = [
    ("requests-503", lambda server: post_with(requests, server), 503),
    ("httpx-500", lambda server: post_with(httpx, server), 500),
    ("requests-read-timeout", lambda server: post_with(requests, server), "hang"),
    ("httpx-read-timeout", lambda server: post_with(httpx, server), "hang"),
    ("requests-closed-after-sending", lambda server: post_with(requests, server, timeout=1), "close"),
]


@pytest.mark.parametrize(("make_call", "answer"), [case[1:] for case in UNKNOWN], ids=[case[0] for case in UNKNOWN])
def test_an_order_of_unknown_fate_stays_counted_until_the_application_says(
    server: BrokerServer, breakers: TradingCircuitBreakers, make_call: Any, answer: Any
) -> None:
    server.answer = answer
    with pytest.raises((requests.RequestException, httpx.HTTPError)) as failed:
        send(breakers, order("o-1"), make_call(server))
    assert send_outcome(failed.value) is SendOutcome.UNKNOWN
    orders = pending(breakers)
    assert orders["pending_orders"] == 1
    assert list(orders["unknown_orders"]) == ["o-1"]
    assert orders["unknown_orders"]["o-1"]  # says what the send raised
    with pytest.raises(OrderRejected) as refused, breakers.trade_guard(order("o-2", "50")):
        pytest.fail("its exposure still counts: 10 000 pending + 5 000 > 12 000")
    assert refused.value.decision.reason is RejectReason.EXPOSURE
    assert "pending 10000" in refused.value.decision.message
    with pytest.raises(OrderRejected) as again, breakers.trade_guard(order("o-3")):
        pytest.fail("the same order again is a duplicate while its fate is unknown")
    assert again.value.decision.reason is RejectReason.DUPLICATE
    breakers.order_rejected("o-1")  # the application asked the broker: it never took it
    orders = pending(breakers)
    assert (orders["pending_orders"], orders["unknown_orders"], orders["remembered_orders"]) == (0, {}, 0)
    server.answer = 200
    send(breakers, order("o-1"), lambda: requests.post(f"{server.url}/orders", timeout=CLIENT_TIMEOUT))


def test_a_cancelled_order_may_be_resent_but_a_filled_one_is_still_a_duplicate(
    server: BrokerServer, breakers: TradingCircuitBreakers
) -> None:
    post: Callable[[], Any] = lambda: requests.post(f"{server.url}/orders", timeout=CLIENT_TIMEOUT)  # noqa: E731
    send(breakers, order("o-1"), post)
    breakers.order_cancelled("o-1")
    send(breakers, order("o-1"), post)  # the same order again: the first is dead, this is no duplicate
    breakers.order_filled("o-1", D(100))
    with pytest.raises(OrderRejected) as refused, breakers.trade_guard(order("o-2")):
        pytest.fail("the same order right after a fill is the duplicate the check is for")
    assert refused.value.decision.reason is RejectReason.DUPLICATE


def test_a_halt_is_an_order_rejected_with_reason_trading_halted(breakers: TradingCircuitBreakers) -> None:
    breakers.engage_kill_switch("risk desk")
    with pytest.raises(TradingHalted) as halted, breakers.trade_guard(order("o-1")):
        pytest.fail("halted")
    assert isinstance(halted.value, OrderRejected)  # every refusal of an order is an OrderRejected...
    assert halted.value.decision.reason is RejectReason.TRADING_HALTED  # ...and this is how to tell a halt
