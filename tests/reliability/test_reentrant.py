"""Callbacks that call back into their breaker must not deadlock, on any thread.

Already covered: a trip callback calling get_status() or reset()
(tests/test_breaker_contract_api.py::test_callback_runs_after_lock_released_and_sees_new_state,
::test_callback_can_reset_breaker_without_deadlock), the manager from a callback
(tests/test_registry.py::test_callback_may_use_manager_without_deadlock), can_trade() from a
trading trip callback (tests/trading/test_breakers.py::test_callback_may_call_back_into_the_breakers)
and kill handlers using the facade
(tests/trading/test_reducing.py::test_kill_handlers_run_after_the_locks_are_released).
Here: every callback kind against every re-entrant action, under threads, and on the monitor thread.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Callable, Dict, List

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    ManualClock,
    TradingCircuitBreakers,
)

from ..trading.conftest import RESET_KEY, FakeProvider
from .conftest import WAIT, MakeBreakers, join_all

D = Decimal
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Boom(RuntimeError):
    pass


def _raise() -> None:
    raise Boom("down")


def in_thread(action: Callable[[], object]) -> None:
    """Run ``action`` on a new thread and join it with a bound (a deadlock fails, not hangs)."""
    errors: List[BaseException] = []

    def body() -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, name="reentrant")
    thread.start()
    join_all([thread])
    if errors:
        raise errors[0]


# --- CircuitBreaker -------------------------------------------------------------------------------


def _reenter(breaker: CircuitBreaker, action: str) -> object:
    if action == "get_status":
        return breaker.get_status()["state"]
    if action == "state":
        return breaker.state
    if action == "metrics":
        return breaker.metrics.total_requests
    if action == "reset":
        return breaker.reset()
    if action == "force_open":
        return breaker.force_open()
    if action == "force_close":
        return breaker.force_close()
    if action == "call":
        try:
            return breaker.call(lambda: "inner")
        except CircuitOpenException as exc:
            return exc
    if action == "allow_and_record":
        if breaker.allow():
            breaker.record_success()
        return None
    raise AssertionError(action)


ACTIONS = ["get_status", "state", "metrics", "reset", "force_open", "force_close", "call", "allow_and_record"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("kind", ["trip", "recovery", "state_change"])
def test_every_callback_may_reenter_with_every_action(clock: ManualClock, kind: str, action: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, success_threshold=1)
    breaker = CircuitBreaker("reentrant", config=config, clock=clock)
    results: List[object] = []
    getattr(breaker, f"register_{kind}_callback")(lambda *args: results.append(_reenter(breaker, action)))

    def trip() -> None:
        with pytest.raises(Boom):
            breaker.call(_raise)

    in_thread(trip)
    if kind == "recovery":
        assert results == []
        assert breaker.state is OPEN
        clock.advance(3600)
        in_thread(lambda: breaker.call(lambda: "trial"))  # the trial closes it: the callback runs now
        expected = OPEN if action == "force_open" else CLOSED
    else:
        expected = CLOSED if action in ("reset", "force_close") else OPEN
    assert results, "the callback never ran"
    assert breaker.state is expected
    status = breaker.get_status()
    assert status["forced_open"] is (action == "force_open")
    assert status["total_requests"] == breaker.metrics.total_requests


def test_reentrant_callbacks_under_many_threads_do_not_deadlock(clock: ManualClock) -> None:
    config = CircuitBreakerConfig(
        failure_threshold=2, success_threshold=1, open_timeout_seconds=1, max_backoff_seconds=1
    )
    breaker = CircuitBreaker("busy", config=config, clock=clock)
    counts: Dict[str, int] = {"trip": 0, "recovery": 0, "extra": 0}
    lock = threading.Lock()

    def on_trip(name: str, kind: Any) -> None:
        with lock:
            counts["trip"] += 1
        breaker.get_status()
        clock.advance(1)  # the open timeout passes at once: the next call is a trial

    def on_recovery(name: str, kind: Any) -> None:
        with lock:
            counts["recovery"] += 1
        breaker.metrics  # noqa: B018 - a read under the breaker's lock, from its own callback

    def on_change(name: str, old: CircuitState, new: CircuitState) -> None:
        if new is HALF_OPEN:
            # The calling thread holds the one trial permit, so this allow() is normally refused
            # (one rejection); record_success() then reports that thread's trial early (one
            # success) and closes the breaker.
            allowed = breaker.allow()
            breaker.record_success()
            with lock:
                counts["extra"] += 1 if allowed else 2

    breaker.register_trip_callback(on_trip)
    breaker.register_recovery_callback(on_recovery)
    breaker.register_state_change_callback(on_change)

    def work(index: int) -> None:
        for step in range(200):
            try:
                if (index + step) % 3:
                    breaker.call(lambda: None)
                else:
                    breaker.call(_raise)
            except (Boom, CircuitOpenException):
                pass

    threads = [threading.Thread(target=work, args=(i,), name=f"w{i}") for i in range(16)]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=4 * WAIT)
    assert counts["trip"] >= 1
    assert counts["recovery"] >= 1
    assert breaker.metrics.total_requests == 16 * 200 + counts["extra"]
    assert breaker.state in (CLOSED, OPEN, HALF_OPEN)


# --- TradingCircuitBreakers -----------------------------------------------------------------------


def _trading_reentry(breakers: TradingCircuitBreakers, action: str) -> object:
    if action == "get_status":
        return breakers.get_status().can_trade
    if action == "can_trade":
        return breakers.can_trade()
    if action == "reasons":
        return breakers.get_blocking_reasons()
    if action == "reset_breaker":
        return breakers.reset_breaker("daily_loss")
    if action == "reset_all":
        return breakers.reset_all()
    if action == "check_now":
        return breakers.check_now().can_trade
    if action == "engage":
        return breakers.engage_kill_switch("from a callback")
    if action == "reset_kill_switch":
        return breakers.reset_kill_switch(RESET_KEY)
    if action == "record_order":
        return breakers.record_order()
    raise AssertionError(action)


TRADING_ACTIONS = [
    "get_status",
    "can_trade",
    "reasons",
    "reset_breaker",
    "reset_all",
    "check_now",
    "engage",
    "reset_kill_switch",
    "record_order",
]


@pytest.mark.parametrize("action", TRADING_ACTIONS)
@pytest.mark.parametrize("kind", ["trip", "warning", "recovery", "kill"])
def test_trading_callbacks_may_reenter(
    make_breakers: MakeBreakers, provider: FakeProvider, kind: str, action: str
) -> None:
    breakers = make_breakers(reset_key=RESET_KEY)
    results: List[object] = []

    def callback(*args: object) -> None:
        results.append(_trading_reentry(breakers, action))

    if kind == "kill":
        breakers.register_kill_handler(callback)
    else:
        getattr(breakers, f"register_{kind}_callback")(callback)

    def drive() -> None:
        provider.daily_pnl_pct = D("-1.6")  # warning
        breakers.check_now()
        provider.daily_pnl_pct = D(-3)  # daily-loss halt
        breakers.check_now()
        breakers.reset_breaker("daily_loss")  # recovery
        provider.daily_pnl_pct = D(0)
        breakers.check_now()
        breakers.engage_kill_switch("by hand")  # kill handlers

    in_thread(drive)
    assert results, "the callback never ran"
    status = breakers.get_status()
    assert status.can_trade == (not status.reasons)
    # A trip callback runs for the kill switch too: resetting it from there releases it again.
    assert status.kill_switch_active is not (action == "reset_kill_switch" and kind in ("trip", "kill"))


def test_trip_callback_on_the_monitor_thread_may_stop_monitoring(
    make_breakers: MakeBreakers, provider: FakeProvider
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.005)
    stopped = threading.Event()
    answers: List[bool] = []

    def stop_from_the_monitor(name: str, reason: str) -> None:
        if threading.current_thread().name.startswith("circuit_breakers-monitor"):
            answers.append(breakers.stop_monitoring(timeout=WAIT))  # joining itself must not hang
            stopped.set()

    breakers.register_trip_callback(stop_from_the_monitor)
    breakers.start_monitoring()
    provider.daily_pnl_pct = D(-3)
    assert stopped.wait(WAIT)
    assert answers == [True]
    monitor = [t for t in threading.enumerate() if t.name == f"circuit_breakers-monitor-{id(breakers):x}"]
    join_all(monitor)
    status = breakers.get_status()
    assert not status.monitoring
    assert not status.monitor_alive
    assert status.details["daily_loss"]["tripped"]
