"""Redis faults seen by the trading breakers (a hung server, a dead one), and what every process
sharing a namespace hears of another's kill switch."""

from __future__ import annotations

import signal
import time
from typing import Callable, Iterator

import pytest

from circuit_breakers import RedisStore, StateStoreError, TradingBreakerConfig, TradingCircuitBreakers
from tests.providers import FlatPortfolio
from tests.redis_server import RedisServer


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Poll ``condition`` until it holds; return how long that took. Fails after ``seconds``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds}s"
        time.sleep(0.01)  # polling a condition with a bounded deadline, not waiting for a state
    return time.monotonic() - start


@pytest.fixture
def stopped_server(own_redis_server: RedisServer) -> Iterator[RedisServer]:
    yield own_redis_server
    process = own_redis_server.process
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGCONT)  # never leave a stopped server behind


def test_hung_server_blocks_trading_without_monitoring_and_recovers(stopped_server: RedisServer) -> None:
    client = stopped_server.client(socket_timeout=0.3, socket_connect_timeout=0.3)
    store = RedisStore(client, "hung", resync_seconds=0.2)
    breakers = TradingCircuitBreakers(FlatPortfolio(), TradingBreakerConfig(), store=store)
    try:
        assert breakers.can_trade()
        assert stopped_server.process is not None
        stopped_server.process.send_signal(signal.SIGSTOP)
        blocked_after = wait_for(lambda: not breakers.can_trade(), seconds=5.0)
        assert blocked_after < 2.0  # resync_seconds + socket timeout, with room for a busy machine
        reasons = breakers.get_blocking_reasons()
        assert any("redis hung" in reason for reason in reasons), reasons
        assert not breakers.record_order()
        stopped_server.process.send_signal(signal.SIGCONT)
        wait_for(breakers.can_trade, seconds=5.0)
        assert breakers.record_order()
    finally:
        breakers.close()


def test_resync_interval_is_validated(stopped_server: RedisServer) -> None:
    client = stopped_server.client()
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="resync_seconds"):
            RedisStore(client, "ns", resync_seconds=bad)


def test_status_and_check_now_answer_while_redis_is_down(own_redis_server: RedisServer) -> None:
    client = own_redis_server.client(socket_timeout=0.3, socket_connect_timeout=0.3)
    breakers = TradingCircuitBreakers(FlatPortfolio(), TradingBreakerConfig(), store=RedisStore(client, "down"))
    try:
        assert breakers.record_order()
        assert breakers.get_status().orders_last_minute == 1
        own_redis_server.kill()
        status = breakers.check_now()  # no exception: a status that says why trading is blocked
        assert not status.can_trade
        assert any(reason.startswith("state:") and "redis down" in reason for reason in status.reasons)
        assert status.orders_last_minute is None
        assert "redis down" in status.details["rate_limit"]["error"]
        assert status.to_dict()["orders_last_hour"] is None
        with pytest.raises(StateStoreError, match="redis down"):
            breakers.reset_breaker("rate_limit")
        own_redis_server.start()
        wait_for(lambda: breakers.check_now().can_trade, seconds=5.0)
        assert breakers.get_status().orders_last_minute == 1  # persisted: the window survived
    finally:
        breakers.close()


def test_every_process_runs_its_kill_handlers_when_another_engages(redis_server: RedisServer) -> None:
    alpha = TradingCircuitBreakers(
        FlatPortfolio(), TradingBreakerConfig(), reset_key="k", store=RedisStore(redis_server.client(), "kills")
    )
    beta = TradingCircuitBreakers(
        FlatPortfolio(), TradingBreakerConfig(), reset_key="k", store=RedisStore(redis_server.client(), "kills")
    )
    heard: list = []
    beta.register_kill_handler(heard.append)  # beta cancels its own working orders
    try:
        alpha.engage_kill_switch("desk limit")
        wait_for(lambda: heard == ["desk limit"], seconds=5.0)  # from beta's listener, no call of ours
        assert not beta.can_trade()
    finally:
        alpha.close()
        beta.close()
