"""trade_guard counts outages as connection failures, and neither refused orders nor the library's refusals.

The real SDKs against a real server are in tests/sdk; here the exceptions are built by hand.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict

import httpx
import pytest
import requests

from circuit_breakers import (
    CircuitBreakerError,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    KillSwitchError,
    OrderDecision,
    OrderRejected,
    RateLimitExceeded,
    RejectReason,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    TradingHalted,
    is_outage,
)

from .conftest import MakeBreakers

D = Decimal


def http_error(status: int) -> requests.HTTPError:
    """What ``response.raise_for_status()`` raises for ``status``."""
    response = requests.Response()
    response.status_code = status
    response.reason = "Bad Request" if status < 500 else "Service Unavailable"
    return requests.HTTPError(f"{status} Error", response=response)


def connection_counts(breakers: TradingCircuitBreakers) -> Dict[str, Any]:
    connection = breakers.manager.get_circuit_breaker("connection")
    assert connection is not None
    status = connection.get_status()
    return {key: status[key] for key in ("state", "failed_requests", "ignored_requests")}


def test_the_default_connection_errors_are_is_outage() -> None:
    assert TradingBreakerConfig().connection_errors == (is_outage,)


def test_refused_orders_never_halt_the_desk(breakers: TradingCircuitBreakers) -> None:
    for status in (400, 400, 400, 403, 404, 422, 400):
        with pytest.raises(requests.HTTPError), breakers.trade_guard("SPY", D(10_000)):
            raise http_error(status)
    assert breakers.can_trade()
    assert connection_counts(breakers) == {"state": "closed", "failed_requests": 0, "ignored_requests": 7}


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_three_outage_answers_halt_the_desk(breakers: TradingCircuitBreakers, status: int) -> None:
    for _ in range(3):
        with pytest.raises(requests.HTTPError), breakers.trade_guard("SPY", D(10_000)):
            raise http_error(status)
    assert not breakers.can_trade()
    reason = breakers.get_blocking_reasons()[0]
    assert reason.startswith("connection: 3 failures")
    assert f"HTTPError: {status} Error" in reason


def test_httpx_transport_errors_count_by_default(breakers: TradingCircuitBreakers) -> None:
    request = httpx.Request("POST", "https://broker.invalid/orders")
    for error in (httpx.ConnectError("refused", request=request), httpx.ReadTimeout("slow", request=request)):
        with pytest.raises(httpx.TransportError), breakers.trade_guard():
            raise error
    assert connection_counts(breakers)["failed_requests"] == 2


REFUSALS = [
    RateLimitExceeded("broker-orders", 0.5),
    CircuitOpenException("broker", CircuitType.CONNECTION_FAILURE, CircuitState.OPEN, 10.0),
    TradingHalted(["kill switch"]),
    OrderRejected(OrderDecision(False, RejectReason.DUPLICATE, "same order within 30 s")),
    KillSwitchError("locked out"),
]


@pytest.mark.parametrize("connection_errors", [(is_outage,), (Exception,), (CircuitBreakerError,)])
@pytest.mark.parametrize("refusal", REFUSALS, ids=[type(refusal).__name__ for refusal in REFUSALS])
def test_library_refusals_in_the_block_are_never_connection_failures(
    make_breakers: MakeBreakers, refusal: CircuitBreakerError, connection_errors: Any
) -> None:
    breakers = make_breakers(connection_errors=connection_errors)
    for _ in range(5):
        with pytest.raises(type(refusal)), breakers.trade_guard():
            raise refusal
    assert breakers.can_trade()
    assert connection_counts(breakers) == {"state": "closed", "failed_requests": 0, "ignored_requests": 5}


def test_a_refused_order_from_a_nested_guard_is_not_a_connection_failure(breakers: TradingCircuitBreakers) -> None:
    for _ in range(4):
        outer = breakers.trade_guard()
        inner = breakers.trade_guard("SPY", D(900_000))  # would be 90 % of the portfolio
        with pytest.raises(TradingHalted, match="position_concentration"), outer, inner:
            pass
    assert breakers.can_trade()
    assert connection_counts(breakers)["failed_requests"] == 0
