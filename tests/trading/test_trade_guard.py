"""trade_guard() and @guarded: the checks on entry, counting on exit, all or nothing, and threads."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Dict, List

import pytest
import requests

from circuit_breakers import (
    CircuitBreaker,
    CircuitState,
    ConfigTypeError,
    TradeGuard,
    TradingCircuitBreakers,
    TradingHalted,
)

from .conftest import FakeProvider, MakeBreakers

D = Decimal
WAIT = 10.0


def connection(breakers: TradingCircuitBreakers) -> CircuitBreaker:
    breaker = breakers.manager.get_circuit_breaker("connection")
    assert breaker is not None
    return breaker


def connection_counts(breakers: TradingCircuitBreakers) -> Dict[str, Any]:
    status = connection(breakers).get_status()
    return {key: status[key] for key in ("state", "failed_requests", "successful_requests", "ignored_requests")}


# --- entry ----------------------------------------------------------------------------------------


def test_guard_runs_the_block_when_trading_is_allowed(breakers: TradingCircuitBreakers) -> None:
    ran = []
    with breakers.trade_guard() as guard:
        ran.append(True)
    assert ran == [True]
    assert isinstance(guard, TradeGuard)


def test_guard_raises_trading_halted_with_the_reasons(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D("-2.5")
    breakers.check_now()
    ran = []
    with pytest.raises(TradingHalted) as info, breakers.trade_guard():
        ran.append(True)
    assert ran == []
    assert info.value.reasons == ("daily_loss: P&L -2.50% <= limit -2.00%",)
    assert "daily_loss" in str(info.value)


def test_guard_lists_every_reason(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    for _ in range(3):
        breakers.record_connection_failure("down")
    with pytest.raises(TradingHalted) as info, breakers.trade_guard():
        pass
    assert [reason.split(":")[0] for reason in info.value.reasons] == ["daily_loss", "connection"]


def test_guard_does_not_call_the_provider_without_symbol(
    breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    with breakers.trade_guard():
        pass
    assert provider.calls == 0


@pytest.mark.parametrize(("symbol", "value"), [("SPY", None), (None, D(1000))])
def test_guard_needs_symbol_and_value_together(breakers: TradingCircuitBreakers, symbol: Any, value: Any) -> None:
    with pytest.raises(ConfigTypeError):
        breakers.trade_guard(symbol, value)


def test_guard_rejects_a_float_value(breakers: TradingCircuitBreakers) -> None:
    with pytest.raises(ConfigTypeError), breakers.trade_guard("SPY", 1000.0):  # type: ignore[arg-type]
        pass
    assert breakers.get_status().orders_last_minute == 0


# --- with symbol and value ------------------------------------------------------------------------


def test_guard_with_symbol_counts_the_order(breakers: TradingCircuitBreakers) -> None:
    with breakers.trade_guard("SPY", D(10_000)):
        pass
    assert breakers.get_status().orders_last_minute == 1


def test_guard_without_symbol_counts_no_order(breakers: TradingCircuitBreakers) -> None:
    with breakers.trade_guard():
        pass
    assert breakers.get_status().orders_last_minute == 0


def test_concentration_refusal_records_no_order(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.concentration["SPY"] = D(19)
    ran = []
    with pytest.raises(TradingHalted) as info, breakers.trade_guard("SPY", D(20_000)):
        ran.append(True)
    assert ran == []
    assert info.value.reasons[0].startswith("position_concentration: SPY:")
    assert breakers.get_status().orders_last_minute == 0
    assert breakers.can_trade()


def test_concentration_at_the_limit_is_admitted(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.concentration["SPY"] = D(19)
    with breakers.trade_guard("SPY", D(10_000)):
        pass
    assert breakers.get_status().orders_last_minute == 1


def test_provider_failure_refuses_the_order(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.misbehave("raise", only=["get_position_concentration"])
    with pytest.raises(TradingHalted, match="position_concentration"), breakers.trade_guard("SPY", D(1)):
        pass
    assert breakers.get_status().orders_last_minute == 0


def test_rate_refusal_raises_trading_halted(breakers: TradingCircuitBreakers) -> None:
    for _ in range(10):
        with breakers.trade_guard("SPY", D(100)):
            pass
    ran = []
    with pytest.raises(TradingHalted) as info, breakers.trade_guard("SPY", D(100)):
        ran.append(True)
    assert ran == []
    assert info.value.reasons[0].startswith("rate_limit:")
    assert breakers.can_trade()


def test_rate_refusal_does_not_change_connection_state(breakers: TradingCircuitBreakers) -> None:
    for _ in range(10):
        breakers.record_order()
    before = connection_counts(breakers)
    for _ in range(5):
        with pytest.raises(TradingHalted), breakers.trade_guard("SPY", D(100)):
            pass
    after = connection_counts(breakers)
    assert after["state"] == before["state"] == "closed"
    assert after["failed_requests"] == before["failed_requests"] == 0
    assert after["successful_requests"] == before["successful_requests"]


def test_rate_refusal_while_half_open_keeps_the_trial_permit(breakers: TradingCircuitBreakers, clock: Any) -> None:
    for _ in range(3):
        breakers.record_connection_failure("down")
    clock.advance(30)
    for _ in range(10):
        breakers.record_order()
    with pytest.raises(TradingHalted, match="rate_limit"), breakers.trade_guard("SPY", D(100)):
        pass
    assert connection(breakers).state is CircuitState.HALF_OPEN
    with breakers.trade_guard():  # the trial permit was given back: this call is admitted
        pass
    assert connection(breakers).state is CircuitState.CLOSED


def test_connection_rejection_records_no_order(breakers: TradingCircuitBreakers, clock: Any) -> None:
    for _ in range(3):
        breakers.record_connection_failure("down")
    with pytest.raises(TradingHalted, match="connection"), breakers.trade_guard("SPY", D(100)):
        pass
    assert breakers.get_status().orders_last_minute == 0


# --- outcomes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        OSError("socket closed"),
        ConnectionResetError("reset by peer"),
        TimeoutError("read timed out"),
        requests.ConnectionError("broker unreachable"),
        requests.Timeout("broker slow"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_connection_errors_leaving_the_block_count_as_failures(
    breakers: TradingCircuitBreakers, error: Exception
) -> None:
    with pytest.raises(type(error)), breakers.trade_guard():
        raise error
    assert connection_counts(breakers)["failed_requests"] == 1


def test_three_connection_errors_through_the_guard_halt(breakers: TradingCircuitBreakers) -> None:
    for _ in range(3):
        with pytest.raises(ConnectionRefusedError), breakers.trade_guard():
            raise ConnectionRefusedError("refused")
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons()[0].startswith("connection:")
    with pytest.raises(TradingHalted, match="connection"), breakers.trade_guard():
        pass


@pytest.mark.parametrize("error", [ValueError("bad price"), KeyError("order_id"), RuntimeError("bug")])
def test_other_errors_do_not_count(breakers: TradingCircuitBreakers, error: Exception) -> None:
    for _ in range(5):
        with pytest.raises(type(error)), breakers.trade_guard():
            raise error
    counts = connection_counts(breakers)
    assert counts["failed_requests"] == 0
    assert counts["ignored_requests"] == 5
    assert breakers.can_trade()


def test_clean_exit_counts_a_success(breakers: TradingCircuitBreakers) -> None:
    with breakers.trade_guard():
        pass
    assert connection_counts(breakers)["successful_requests"] == 1


def test_custom_connection_errors(make_breakers: MakeBreakers) -> None:
    class BrokerDown(Exception):
        pass

    breakers = make_breakers(connection_errors=(BrokerDown, lambda exc: "503" in str(exc)))
    with pytest.raises(BrokerDown), breakers.trade_guard():
        raise BrokerDown
    with pytest.raises(RuntimeError), breakers.trade_guard():
        raise RuntimeError("HTTP 503")
    with pytest.raises(OSError, match="not in the list"), breakers.trade_guard():
        raise OSError("not in the list any more")
    assert connection_counts(breakers)["failed_requests"] == 2


def test_errors_in_the_block_propagate_unchanged(breakers: TradingCircuitBreakers) -> None:
    error = ValueError("exact object")
    with pytest.raises(ValueError, match="exact object") as info, breakers.trade_guard():
        raise error
    assert info.value is error


# --- @guarded -------------------------------------------------------------------------------------


def test_guarded_wraps_the_function(breakers: TradingCircuitBreakers) -> None:
    @breakers.guarded
    def place_order(symbol: str, quantity: int) -> str:
        """Send an order."""
        return f"{symbol} x{quantity}"

    assert place_order("SPY", 5) == "SPY x5"
    assert place_order.__name__ == "place_order"
    assert place_order.__doc__ == "Send an order."


def test_guarded_refuses_while_halted(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    calls = []

    @breakers.guarded
    def place_order() -> None:
        calls.append(1)

    provider.daily_pnl_pct = D(-3)
    breakers.check_now()
    with pytest.raises(TradingHalted, match="daily_loss"):
        place_order()
    assert calls == []


def test_guarded_counts_connection_errors(breakers: TradingCircuitBreakers) -> None:
    @breakers.guarded
    def place_order() -> None:
        raise ConnectionError("broker down")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            place_order()
    assert not breakers.can_trade()


def test_guarded_counts_no_orders(breakers: TradingCircuitBreakers) -> None:
    @breakers.guarded
    def place_order() -> None:
        pass

    for _ in range(15):
        place_order()
    assert breakers.get_status().orders_last_minute == 0


def test_guarded_rejects_async_functions(breakers: TradingCircuitBreakers) -> None:
    async def place_order() -> None:
        pass

    with pytest.raises(ConfigTypeError):
        breakers.guarded(place_order)


# --- threads --------------------------------------------------------------------------------------


def run_in_threads(count: int, work: Any) -> List[Any]:
    barrier = threading.Barrier(count)
    results: List[Any] = []
    errors: List[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(WAIT)
            mine = work()
            with lock:
                results.extend(mine)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"trade-worker-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert errors == []
    return results


def test_concurrent_record_order_admits_exactly_ten(breakers: TradingCircuitBreakers) -> None:
    results = run_in_threads(16, lambda: [breakers.record_order() for _ in range(20)])
    assert len(results) == 16 * 20
    assert results.count(True) == 10
    assert breakers.get_status().orders_last_minute == 10


def test_concurrent_trade_guards_admit_exactly_ten(breakers: TradingCircuitBreakers) -> None:
    def attempts() -> List[str]:
        outcomes = []
        for _ in range(20):
            try:
                with breakers.trade_guard("SPY", D(100)):
                    outcomes.append("sent")
            except TradingHalted as halted:
                outcomes.append(halted.reasons[0].split(":")[0])
        return outcomes

    results = run_in_threads(16, attempts)
    assert results.count("sent") == 10
    assert results.count("rate_limit") == 16 * 20 - 10
    assert breakers.get_status().orders_last_minute == 10
    assert connection_counts(breakers)["successful_requests"] == 10
    assert breakers.can_trade()


def test_concurrent_connection_failures_open_once(breakers: TradingCircuitBreakers, recorder: Any) -> None:
    trips = recorder()
    breakers.register_trip_callback(trips)

    def fail() -> List[None]:
        for _ in range(5):
            breakers.record_connection_failure("down")
        return []

    run_in_threads(8, fail)
    assert trips.names() == ["connection"]
    assert not breakers.can_trade()
