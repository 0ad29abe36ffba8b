"""Lifecycle and bad figures: closing, dropping without close(), refused settings, async callables, bounded memory."""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
import uuid
import warnings
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, List, Set

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    ConfigError,
    ConfigTypeError,
    ManualClock,
    Order,
    OrderLimits,
    OrderRejected,
    RejectReason,
    Side,
    TradingBreakerConfig,
    TradingCircuitBreakers,
)

from .conftest import FakeProvider, MakeBreakers

WAIT = 5.0  # bound on every wait for threads to end; never reached when things work


def wait_for(condition: Callable[[], bool], *, collect: bool = False, seconds: float = WAIT) -> bool:
    """Poll a condition that other threads bring about, for at most ``seconds`` (collecting garbage if asked)."""
    deadline = time.monotonic() + seconds
    while True:
        if collect:
            gc.collect()
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def threads_named(prefix: str) -> List[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def open_files(path: Path) -> int:
    """How many file descriptors of this process point at ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


# --- closing -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_a_with_block_closes_the_store_and_stops_the_monitor(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "desk.db"
    with TradingCircuitBreakers(FakeProvider(), state_path=path, clock=clock) as breakers:
        breakers.start_monitoring()
        monitor = threads_named(f"circuit_breakers-monitor-{id(breakers):x}")
        assert len(monitor) == 1
        assert open_files(path) == 1
        assert breakers.get_status().monitor_alive
    assert not monitor[0].is_alive()  # joined by close()
    assert open_files(path) == 0


def test_a_with_block_left_by_an_exception_still_closes(redis_server: Any, clock: ManualClock) -> None:
    from circuit_breakers.redis import RedisStore  # noqa: PLC0415 - only where Redis runs

    namespace = f"lifecycle-{uuid.uuid4().hex[:8]}"
    client = redis_server.client()
    try:
        threads: List[threading.Thread] = []
        desk = functools.partial(
            TradingCircuitBreakers, FakeProvider(), store=RedisStore(client, namespace), clock=clock
        )
        with pytest.raises(RuntimeError, match="strategy crashed"), desk() as breakers:  # noqa: PT012
            breakers.start_monitoring()
            threads += threads_named(f"circuit_breakers-monitor-{id(breakers):x}")
            threads += threads_named(f"circuit_breakers-redis-{namespace}")
            assert len(threads) == 2
            raise RuntimeError("strategy crashed")
        assert [thread.name for thread in threads if thread.is_alive()] == []
    finally:
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        client.close()


# --- instances dropped without close() ----------------------------------------------------------------------


def _redis_desks(server: Any, namespace: str, count: int) -> List[weakref.ref[TradingCircuitBreakers]]:
    """``count`` desks on one namespace, each with its own client as separate processes would have; weak refs."""
    from circuit_breakers.redis import RedisStore  # noqa: PLC0415 - only where Redis runs

    made = [TradingCircuitBreakers(FakeProvider(), store=RedisStore(server.client(), namespace)) for _ in range(count)]
    return [weakref.ref(breakers) for breakers in made]


def test_dropped_redis_desks_end_their_listeners_and_close_their_connections(redis_server: Any) -> None:
    namespace = f"dropped-{uuid.uuid4().hex[:8]}"
    admin = redis_server.client()
    try:
        before = len(admin.client_list())
        desks = _redis_desks(redis_server, namespace, 20)
        listeners = threads_named(f"circuit_breakers-redis-{namespace}")
        assert len(listeners) == 20
        assert wait_for(lambda: len(admin.client_list()) >= before + 20)  # a subscription each, at least

        # Each desk is garbage in reference cycles: only the collector frees it, and not while one of its own
        # threads is using it (a listener's re-read), so collect until they are gone.
        assert wait_for(lambda: not any(desk() for desk in desks), collect=True), "dropped desks were kept alive"
        assert wait_for(lambda: not any(thread.is_alive() for thread in listeners)), "listener threads live on"
        assert wait_for(lambda: len(admin.client_list()) <= before + 1), admin.client_list()
    finally:
        for key in admin.scan_iter(f"{namespace}:*"):
            admin.delete(key)
        admin.close()


def _monitored_desks(count: int, interval: float) -> List[weakref.ref[TradingCircuitBreakers]]:
    made = [
        TradingCircuitBreakers(FakeProvider(), TradingBreakerConfig(check_interval_seconds=interval))
        for _ in range(count)
    ]
    for breakers in made:
        breakers.start_monitoring()
    return [weakref.ref(breakers) for breakers in made]


def _new_threads(before: Set[threading.Thread]) -> List[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread not in before]


def test_dropped_monitored_desks_end_their_monitor_threads() -> None:
    before = set(threading.enumerate())
    desks = _monitored_desks(20, 0.01)
    monitors = _new_threads(before)
    assert len(monitors) == 20
    assert all(thread.name.startswith("circuit_breakers-monitor-") for thread in monitors)
    assert wait_for(lambda: not any(desk() for desk in desks), collect=True)
    assert wait_for(lambda: not any(thread.is_alive() for thread in monitors)), "monitor threads live on"


def test_a_dropped_desk_with_a_long_interval_ends_its_monitor_thread_too() -> None:
    before = set(threading.enumerate())
    desks = _monitored_desks(1, 20.0)
    (monitor,) = _new_threads(before)
    assert wait_for(lambda: desks[0]() is None, collect=True)  # the desk itself is gone
    # Ended at once when woken; 1 s of 20 is room enough for a loaded machine.
    assert wait_for(lambda: not monitor.is_alive(), seconds=1.0), "its monitor thread still waits for its next poll"


# --- settings refused before anything changes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        ("2", ConfigTypeError),
        (None, ConfigTypeError),
        (True, ConfigTypeError),
        (-1, ConfigError),
        (float("nan"), ConfigError),
        (float("inf"), ConfigError),
        (1e10, ConfigError),
    ],
    ids=repr,
)
def test_stop_monitoring_refuses_a_bad_timeout_and_keeps_monitoring(
    make_breakers: MakeBreakers, provider: FakeProvider, timeout: Any, error: type
) -> None:
    breakers = make_breakers(check_interval_seconds=0.01)
    breakers.start_monitoring()
    with pytest.raises(error, match="timeout"):
        breakers.stop_monitoring(timeout=timeout)
    status = breakers.get_status()
    assert status.monitoring
    assert status.monitor_alive
    assert provider.notify_after(2).wait(WAIT), "the monitor stopped polling"
    assert breakers.can_trade()


@pytest.mark.parametrize("timeout", [10**400, Decimal("sNaN")], ids=["10**400", "sNaN"])
def test_stop_monitoring_refuses_numbers_float_cannot_hold(make_breakers: MakeBreakers, timeout: Any) -> None:
    breakers = make_breakers(check_interval_seconds=0.01)
    breakers.start_monitoring()
    try:
        with pytest.raises(ConfigError, match="timeout"):
            breakers.stop_monitoring(timeout=timeout)
        assert breakers.get_status().monitor_alive
    finally:
        breakers.stop_monitoring()


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        (1e10, "check_interval_seconds must be <= 86400, got 10000000000.0"),
        (86400.5, "check_interval_seconds must be <= 86400, got 86400.5"),
        (Decimal("1E+400"), "check_interval_seconds must be finite, got Decimal('1E+400')"),
        (float("inf"), "check_interval_seconds must be finite, got inf"),
        (0, "check_interval_seconds must be > 0, got 0"),
    ],
    ids=repr,
)
def test_check_interval_out_of_range_is_refused_at_construction(interval: Any, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        TradingBreakerConfig(check_interval_seconds=interval)
    assert str(refused.value) == message


@pytest.mark.parametrize("interval", [10**400, Decimal("sNaN")], ids=["10**400", "sNaN"])
def test_check_interval_float_cannot_hold_is_refused_with_config_error(interval: Any) -> None:
    with pytest.raises(ConfigError, match="check_interval_seconds"):
        TradingBreakerConfig(check_interval_seconds=interval)


@pytest.mark.parametrize("field", ["quantity", "price"])
@pytest.mark.parametrize("figure", [Decimal("9E+999999"), "9E+999999", Decimal("1E-999999"), 10**400], ids=str)
def test_orders_with_figures_beyond_arithmetic_are_refused_at_construction(field: str, figure: Any) -> None:
    values = {"quantity": Decimal("10"), "price": Decimal("100"), field: figure}
    with pytest.raises(ConfigError, match=f"^{field} must lie in \\[1e-12, 1e15\\), got "):
        Order("SPY", Side.BUY, values["quantity"], values["price"])


# --- async callables -----------------------------------------------------------------------------------------


ran: List[str] = []


async def async_order(symbol: str) -> str:
    ran.append(symbol)
    return symbol


async def async_quotes(symbol: str) -> Any:
    ran.append(symbol)
    yield symbol


class AsyncClient:
    async def place(self, symbol: str) -> str:
        ran.append(symbol)
        return symbol

    async def __call__(self, symbol: str) -> str:
        ran.append(symbol)
        return symbol


def returns_a_coroutine(symbol: str) -> Any:
    return async_order(symbol)


ASYNC_CALLABLES = {
    "async def": async_order,
    "bound async method": AsyncClient().place,
    "partial": functools.partial(async_order),
    "object with async __call__": AsyncClient(),
    "sync function returning a coroutine": returns_a_coroutine,
    "async generator function": async_quotes,
}


def test_breaker_call_refuses_async_callables_without_leaving_a_coroutine() -> None:
    ran.clear()
    with warnings.catch_warnings(record=True) as caught:  # a coroutine never awaited warns when collected
        warnings.simplefilter("always")
        for name, func in ASYNC_CALLABLES.items():
            breaker = CircuitBreaker("broker", config=CircuitBreakerConfig(failure_threshold=1), clock=ManualClock())
            for _ in range(3):
                with pytest.raises(ConfigTypeError, match="is async; circuit_breakers protects blocking calls only"):
                    breaker.call(func, "SPY")
            assert breaker.is_closed, name  # the refusals are no failures: one would have opened it
            assert breaker.get_status()["failed_requests"] == 0, name
        gc.collect()
    assert [str(warning.message) for warning in caught] == []
    assert ran == []  # no body ever ran


def test_breaker_call_rejects_an_async_function_while_open_as_any_other_call() -> None:
    """A decision, documented in Breaker.call: while OPEN, call() rejects before it looks at the function
    (looking costs every rejection ~0.1-0.3 us); the async function is refused at its first admission,
    and its coroutine never counts as anything but "neither"."""
    breaker = CircuitBreaker("broker", clock=ManualClock())
    breaker.force_open()
    with pytest.raises(CircuitOpenException):
        breaker.call(async_order, "SPY")
    assert breaker.get_status()["rejected_requests"] == 1
    breaker.force_close()
    with pytest.raises(ConfigTypeError):
        breaker.call(async_order, "SPY")
    assert breaker.get_status()["successful_requests"] == 0


# --- bounded memory ----------------------------------------------------------------------------------------


def test_pending_orders_stay_bounded_over_100000_guarded_orders(provider: FakeProvider, clock: ManualClock) -> None:
    limits = OrderLimits(max_pending_orders=50)  # no exposure limit: nothing else would forget them
    config = TradingBreakerConfig(max_orders_per_minute=100_000, max_orders_per_hour=100_000)
    breakers = TradingCircuitBreakers(provider, config, clock=clock, order_limits=limits)
    try:
        accepted = 0
        reasons: Set[RejectReason] = set()
        messages: List[str] = []
        for number in range(100_000):
            order = Order("SPY", Side.BUY, Decimal(1), Decimal(100), client_order_id=f"order-{number}")
            try:
                with breakers.trade_guard(order):
                    accepted += 1
            except OrderRejected as rejection:
                reasons.add(rejection.decision.reason)
                messages = messages or [rejection.decision.message]
                if number % 1000 == 999:  # a fill now and then makes room: the pending set turns over
                    breakers.order_filled(f"order-{number - 999}", Decimal(1))
            if number % 10_000 == 0:
                assert breakers.get_status().details["orders"]["pending_orders"] <= 50
        assert reasons == {RejectReason.TOO_MANY_PENDING}
        assert RejectReason.TOO_MANY_PENDING.value == "too_many_pending"
        assert messages[0].startswith("50 orders pending (limit 50)")
        # 50 at first, then one more after each of the first 99 fills (the 100th comes last): 100 filled.
        assert accepted == 50 + 99
        assert breakers.get_status().details["orders"]["pending_orders"] == accepted - 100
    finally:
        breakers.close()
