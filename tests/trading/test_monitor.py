"""Fail closed: bad provider readings, the monitor thread, staleness and a dying monitor."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any, Callable, List

import pytest

from circuit_breakers import ManualClock, TradingCircuitBreakers

from .conftest import FakeProvider, MakeBreakers, Recorder

D = Decimal
WAIT = 5.0  # the longest any bounded wait here may take; none should come close


def monitor_threads() -> List[threading.Thread]:
    return [thread for thread in threading.enumerate() if "circuit_breakers" in thread.name]


def only_new_monitor_thread(before: List[threading.Thread]) -> threading.Thread:
    new = [thread for thread in monitor_threads() if thread not in before]
    assert len(new) == 1, new
    return new[0]


# --- bad readings ---------------------------------------------------------------------------------


GARBAGE = [None, D("NaN"), D("sNaN"), D("Infinity"), 1000000.0, "1000000", True, [D(1)]]


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_garbage_readings_halt_after_the_threshold(
    breakers: TradingCircuitBreakers, provider: FakeProvider, garbage: Any
) -> None:
    provider.misbehave("garbage", only=["get_total_value"], garbage=garbage)
    breakers.check_now()
    breakers.check_now()
    assert breakers.can_trade()
    breakers.check_now()
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert len(reasons) == 1
    assert reasons[0].startswith("provider:")
    assert "3 bad readings" in reasons[0]


@pytest.mark.parametrize("method", ["get_daily_pnl", "get_daily_pnl_pct", "get_max_drawdown"])
def test_garbage_from_any_figure_counts(breakers: TradingCircuitBreakers, provider: FakeProvider, method: str) -> None:
    provider.misbehave("garbage", only=[method], garbage=0.5)
    for _ in range(3):
        breakers.check_now()
    assert not breakers.can_trade()
    assert method in breakers.get_blocking_reasons()[0]


def test_garbage_daily_returns_count(make_breakers: MakeBreakers) -> None:
    provider = FakeProvider(returns=[D(1), 2.0, D(3), D(4), D(5)])
    breakers = make_breakers(provider)
    for _ in range(3):
        breakers.check_now()
    assert breakers.get_blocking_reasons()[0].startswith("provider:")


@pytest.mark.parametrize("error", [ConnectionError("refused"), TimeoutError("slow"), ValueError("bug"), KeyError("x")])
def test_raising_provider_halts_after_the_threshold(
    breakers: TradingCircuitBreakers, provider: FakeProvider, error: Exception
) -> None:
    provider.misbehave("raise", error=error)
    for _ in range(3):
        status = breakers.check_now()  # never raises
    assert not status.can_trade
    assert status.blocking_breakers == ("provider",)
    assert type(error).__name__ in status.reasons[0]


def test_bad_readings_must_be_in_a_row(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    for _ in range(4):
        provider.misbehave("raise")
        breakers.check_now()
        breakers.check_now()
        provider.heal()
        breakers.check_now()
    assert breakers.can_trade()


def test_one_good_reading_recovers(
    breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    trips, recoveries = recorder(), recorder()
    breakers.register_trip_callback(trips)
    breakers.register_recovery_callback(recoveries)
    provider.misbehave("raise")
    for _ in range(5):
        breakers.check_now()
    assert trips.names() == ["provider"]
    provider.heal()
    breakers.check_now()
    assert breakers.can_trade()
    assert recoveries.calls == [("provider",)]


def test_bad_reading_threshold_follows_the_config(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(connection_failure_threshold=1)
    provider.misbehave("garbage", garbage=None)
    breakers.check_now()
    assert not breakers.can_trade()


def test_bad_readings_do_not_change_the_latches(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.daily_pnl_pct = D(-3)
    provider.misbehave("garbage", only=["get_total_value"], garbage=None)
    breakers.check_now()
    assert breakers.can_trade()  # the loss was never read whole: it is not judged


def test_bad_reading_is_logged(
    breakers: TradingCircuitBreakers, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.misbehave("raise", error=ConnectionError("gateway 10.0.0.7 refused"))
    breakers.check_now()
    assert any("gateway 10.0.0.7 refused" in record.getMessage() for record in caplog.records)


# --- the monitor thread ---------------------------------------------------------------------------


def test_start_monitoring_takes_a_first_reading(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(check_interval_seconds=3600)
    provider.daily_pnl_pct = D(-3)
    breakers.start_monitoring()
    assert provider.calls == 1
    assert not breakers.can_trade()
    status = breakers.get_status()
    assert status.monitoring
    assert status.monitor_alive
    assert status.last_reading_age == 0


def test_start_monitoring_starts_one_daemon_thread(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(check_interval_seconds=3600)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    assert thread.daemon
    assert thread.is_alive()


def test_second_start_is_a_no_op(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(check_interval_seconds=3600)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    breakers.start_monitoring()
    assert only_new_monitor_thread(before) is thread
    assert provider.calls == 1


def test_stop_monitoring_returns_quickly(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(check_interval_seconds=3600)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    started = time.monotonic()
    assert breakers.stop_monitoring() is True
    assert time.monotonic() - started < 1.0
    assert not thread.is_alive()
    status = breakers.get_status()
    assert not status.monitoring
    assert not status.monitor_alive


def test_stop_monitoring_returns_while_the_provider_hangs(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    provider.misbehave("hang")
    assert provider.hanging.wait(WAIT)
    started = time.monotonic()
    stopped = breakers.stop_monitoring()
    elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert stopped is False  # the thread is stuck in the provider call
    provider.release.set()
    thread.join(WAIT)
    assert not thread.is_alive()


def test_stop_monitoring_with_a_short_timeout_while_hanging(
    make_breakers: MakeBreakers, provider: FakeProvider
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    breakers.start_monitoring()
    provider.misbehave("hang")
    assert provider.hanging.wait(WAIT)
    started = time.monotonic()
    assert breakers.stop_monitoring(timeout=0.1) is False
    assert time.monotonic() - started < 1.0
    assert breakers.can_trade()  # no longer monitoring: staleness does not apply
    provider.release.set()


def test_stop_without_start_is_harmless(breakers: TradingCircuitBreakers) -> None:
    assert breakers.stop_monitoring() is True
    assert breakers.can_trade()


def test_monitor_polls_the_provider(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    polled = provider.notify_after(5)
    breakers.start_monitoring()
    assert polled.wait(WAIT)


def test_monitor_applies_the_rules(
    make_breakers: MakeBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    tripped = threading.Event()
    breakers.register_trip_callback(lambda name, reason: tripped.set())
    breakers.start_monitoring()
    assert breakers.can_trade()
    provider.daily_pnl_pct = D(-4)
    assert tripped.wait(WAIT)
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons()[0].startswith("daily_loss:")


def test_restart_after_stop(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    breakers.start_monitoring()
    assert breakers.stop_monitoring()
    polled = provider.notify_after(3)
    breakers.start_monitoring()
    assert polled.wait(WAIT)
    assert breakers.get_status().monitor_alive


# --- staleness ------------------------------------------------------------------------------------


def test_stale_reading_blocks_trading(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    # A one-hour interval: the thread never polls again during the test, so only the fake clock moves.
    breakers = make_breakers(check_interval_seconds=3600, stale_after_seconds=60)
    breakers.start_monitoring()
    clock.advance(60)
    assert breakers.can_trade()
    clock.advance(0.5)
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert len(reasons) == 1
    assert reasons[0].startswith("monitor:")
    assert "60" in reasons[0]


def test_default_staleness_bound_applies(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    breakers = make_breakers(check_interval_seconds=3600, connection_timeout_seconds=30)
    breakers.start_monitoring()
    clock.advance(3 * 3600 + 30)
    assert breakers.can_trade()
    clock.advance(1)
    assert not breakers.can_trade()


def test_fresh_reading_clears_staleness(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    breakers = make_breakers(check_interval_seconds=3600, stale_after_seconds=60)
    breakers.start_monitoring()
    clock.advance(120)
    assert not breakers.can_trade()
    breakers.check_now()
    assert breakers.can_trade()


def test_bad_readings_do_not_refresh_staleness(
    make_breakers: MakeBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    breakers = make_breakers(check_interval_seconds=3600, stale_after_seconds=60, connection_failure_threshold=10)
    breakers.start_monitoring()
    provider.misbehave("raise")
    clock.advance(61)
    breakers.check_now()
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons()[0].startswith("monitor:")


def test_staleness_does_not_apply_without_monitoring(breakers: TradingCircuitBreakers, clock: ManualClock) -> None:
    breakers.check_now()
    clock.advance(86_400 / 2)
    assert breakers.can_trade()


def test_monitoring_without_any_good_reading_blocks(make_breakers: MakeBreakers, provider: FakeProvider) -> None:
    breakers = make_breakers(check_interval_seconds=3600)
    provider.misbehave("raise")
    breakers.start_monitoring()
    assert not breakers.can_trade()
    assert any(reason.startswith("monitor:") for reason in breakers.get_blocking_reasons())


# --- a monitor that nothing stops ----------------------------------------------------------------


def wait_for(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` (a cheap read) until it holds or WAIT runs out; the monitor runs meanwhile."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_provider_raising_system_exit_blocks_and_the_monitor_survives(
    make_breakers: MakeBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    trips = recorder()
    breakers.register_trip_callback(trips)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    provider.misbehave("raise", error=SystemExit("provider called sys.exit"))
    assert wait_for(lambda: "monitor" in trips.names())
    assert thread.is_alive()
    assert not breakers.can_trade()
    reason = next(reason for reason in breakers.get_blocking_reasons() if reason.startswith("monitor:"))
    assert "SystemExit" in reason
    assert breakers.get_status().monitor_alive
    provider.heal()
    assert wait_for(breakers.can_trade)  # the next good poll lifts it: nobody had to restart anything
    assert thread.is_alive()


class MonitorKiller(BaseException):
    """Not an Exception: the monitor loop must survive it all the same."""


def test_check_now_raising_base_exception_blocks_until_a_poll_succeeds(
    make_breakers: MakeBreakers, monkeypatch: pytest.MonkeyPatch
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    real_check = breakers.check_now
    raised = threading.Event()

    def die() -> Any:
        raised.set()
        raise MonitorKiller("boom")

    monkeypatch.setattr(breakers, "check_now", die)
    assert raised.wait(WAIT)
    assert wait_for(lambda: not breakers.can_trade())
    reason = next(reason for reason in breakers.get_blocking_reasons() if reason.startswith("monitor:"))
    assert "MonitorKiller" in reason
    assert thread.is_alive()
    monkeypatch.setattr(breakers, "check_now", real_check)
    assert wait_for(breakers.can_trade)


def test_a_monitor_thread_that_ends_anyway_is_replaced(
    make_breakers: MakeBreakers, monkeypatch: pytest.MonkeyPatch, recorder: Callable[[], Recorder]
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    trips = recorder()
    breakers.register_trip_callback(trips)
    before = monitor_threads()
    breakers.start_monitoring()
    thread = only_new_monitor_thread(before)
    stop_event = breakers._monitor._stop
    real_wait = stop_event.wait

    def broken_wait(timeout: Any = None) -> bool:  # the loop's own wait fails: outside any poll
        monkeypatch.setattr(stop_event, "wait", real_wait)
        raise MonitorKiller("the loop itself broke")

    monkeypatch.setattr(stop_event, "wait", broken_wait)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert "monitor" in trips.names()
    assert wait_for(lambda: breakers.get_status().monitor_alive)  # a new thread polls again
    assert wait_for(breakers.can_trade)
    assert [t for t in monitor_threads() if t not in before and t is not thread]


def test_check_now_raising_an_exception_keeps_the_monitor_alive(
    make_breakers: MakeBreakers, monkeypatch: pytest.MonkeyPatch
) -> None:
    breakers = make_breakers(clock_=None, check_interval_seconds=0.01)
    breakers.start_monitoring()
    failed = threading.Event()
    count = [0]

    def flaky() -> None:
        count[0] += 1
        if count[0] >= 3:
            failed.set()
        raise RuntimeError("bug in check_now")

    monkeypatch.setattr(breakers, "check_now", flaky)
    assert failed.wait(WAIT)
    assert breakers.get_status().monitor_alive
