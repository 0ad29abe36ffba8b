"""Callbacks that raise SystemExit or KeyboardInterrupt (a BaseException, not an Exception).

They cannot skip a kill handler, leave an engage or a release half done, or stop the monitor: every
callback runs, the state change is complete (in memory, in the store and in the audit trail), and
only then does the first such exception reach the caller. On the monitor's thread the poll counts
as failed (trading blocked with a ``monitor:`` reason) and the next poll goes on as usual.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, List, Tuple, Type

import pytest

from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.stores import SqliteStore
from circuit_breakers.trading.audit import AuditLog

from .conftest import RESET_KEY, FakeProvider, MakeBreakers

WAIT = 5.0  # bound on every wait for the monitor thread; never reached when things work
BASE_EXCEPTIONS = [SystemExit, KeyboardInterrupt]


class Calls:
    """Records, in order and thread-safely, which callback ran, with what, on which thread."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, Tuple[Any, ...], str]] = []
        self._lock = threading.Lock()

    def make(self, label: str, raises: Any = None, *, only: Any = None) -> Callable[..., None]:
        """A callback recording itself, then raising ``raises`` (for events whose first argument is ``only``)."""

        def callback(*args: Any) -> None:
            with self._lock:
                self.calls.append((label, args, threading.current_thread().name))
            if raises is not None and (only is None or args[:1] == (only,)):
                raise raises

        callback.__qualname__ = label
        return callback

    def labels(self) -> List[str]:
        return [label for label, _, _ in self.calls]


def keyed(tmp_path: Path, provider: Any, clock: ManualClock, **fields: Any) -> TradingCircuitBreakers:
    return TradingCircuitBreakers(
        provider, TradingBreakerConfig(**fields), reset_key=RESET_KEY, state_path=tmp_path / "desk.db", clock=clock
    )


def audit_events(tmp_path: Path) -> List[Tuple[str, Any]]:
    return [(entry["event"], entry["reason"]) for entry in AuditLog.read(tmp_path / "desk.db.audit.jsonl")]


def stored_latches(tmp_path: Path) -> List[str]:
    store = SqliteStore(tmp_path / "desk.db")
    try:
        return sorted(store.read()["latches"])
    finally:
        store.close()


# --- on the caller's thread ----------------------------------------------------------------------------------


@pytest.mark.parametrize("first", BASE_EXCEPTIONS)
def test_engage_runs_every_kill_handler_and_completes_before_the_first_base_exception(
    tmp_path: Path, provider: FakeProvider, clock: ManualClock, first: Type[BaseException]
) -> None:
    other = KeyboardInterrupt if first is SystemExit else SystemExit
    calls = Calls()
    breakers = keyed(tmp_path, provider, clock)
    try:
        breakers.register_trip_callback(calls.make("trip", first("trip callback"), only="max_drawdown"))
        breakers.register_trip_callback(calls.make("trip after"))
        breakers.register_kill_handler(calls.make("handler 1", other("handler 1")))
        breakers.register_kill_handler(calls.make("handler 2"))
        breakers.register_kill_handler(calls.make("handler 3", first("handler 3")))
        breakers.register_kill_handler(calls.make("handler 4"))

        with pytest.raises(first) as raised:
            breakers.engage_kill_switch("risk desk")

        assert raised.value.args == ("trip callback",)  # the first one raised, after all the others ran
        assert calls.labels() == ["trip", "trip after", "handler 1", "handler 2", "handler 3", "handler 4"]
        outcomes = breakers.get_status().details["max_drawdown"]["kill_handlers"]
        assert outcomes == [
            {"handler": "handler 1", "ok": False, "error": repr(other("handler 1"))},
            {"handler": "handler 2", "ok": True, "error": None},
            {"handler": "handler 3", "ok": False, "error": repr(first("handler 3"))},
            {"handler": "handler 4", "ok": True, "error": None},
        ]
        # The engage is whole: held, written, audited; nothing waits to be written.
        assert breakers.kill_switch_active
        assert breakers.get_blocking_reasons() == ["max_drawdown: kill switch engaged: risk desk"]
        assert stored_latches(tmp_path) == ["max_drawdown"]
        assert audit_events(tmp_path) == [("kill_switch_engaged", "risk desk")]
    finally:
        breakers.close()
    restarted = keyed(tmp_path, FakeProvider(), clock)
    try:
        assert restarted.kill_switch_active
    finally:
        restarted.close()


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_a_warning_callback_raising_leaves_the_reading_fully_judged(
    tmp_path: Path, provider: FakeProvider, clock: ManualClock, exc_type: Type[BaseException]
) -> None:
    calls = Calls()
    breakers = keyed(tmp_path, provider, clock)
    try:
        breakers.register_warning_callback(calls.make("warning", exc_type("warning callback")))
        breakers.register_warning_callback(calls.make("warning after"))
        breakers.register_trip_callback(calls.make("trip"))
        breakers.register_kill_handler(calls.make("handler"))
        provider.daily_pnl_pct = Decimal("-1.6")  # past the -1.5 % warning
        provider.max_drawdown = Decimal("-12")  # past the -10 % limit: the kill switch engages

        with pytest.raises(exc_type) as raised:
            breakers.check_now()

        assert raised.value.args == ("warning callback",)
        assert sorted(calls.labels()) == sorted(
            ["warning", "warning after", "warning", "warning after", "trip", "handler"]
        )
        status = breakers.get_status()
        assert status.warning_breakers == ("daily_loss", "max_drawdown")
        assert status.kill_switch_active
        assert status.reasons[0].startswith("max_drawdown: kill switch engaged: drawdown -12")
        assert status.details["max_drawdown"]["kill_handlers"] == [{"handler": "handler", "ok": True, "error": None}]
        assert stored_latches(tmp_path) == ["max_drawdown"]
        assert [event for event, _ in audit_events(tmp_path)] == ["kill_switch_engaged"]
        calls.calls.clear()
        breakers.check_now()  # the same figures: no new warning, nothing raised
        assert calls.labels() == []
    finally:
        breakers.close()


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_a_recovery_callback_raising_after_a_keyed_reset_leaves_the_release_complete(
    tmp_path: Path, provider: FakeProvider, clock: ManualClock, exc_type: Type[BaseException]
) -> None:
    calls = Calls()
    breakers = keyed(tmp_path, provider, clock)
    try:
        breakers.check_now()
        breakers.engage_kill_switch("risk desk")
        breakers.register_recovery_callback(calls.make("recovery", exc_type("recovery callback")))
        breakers.register_recovery_callback(calls.make("recovery after"))

        with pytest.raises(exc_type):
            breakers.reset_kill_switch(RESET_KEY)

        assert calls.labels() == ["recovery", "recovery after"]
        assert [args for _, args, _ in calls.calls] == [("max_drawdown",), ("max_drawdown",)]
        assert not breakers.kill_switch_active
        assert breakers.can_trade()
        assert stored_latches(tmp_path) == []
        assert [event for event, _ in audit_events(tmp_path)] == ["kill_switch_engaged", "kill_switch_reset"]
    finally:
        breakers.close()


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_a_recovery_callback_raising_after_reset_breaker_leaves_the_day_halt_lifted(
    tmp_path: Path, provider: FakeProvider, clock: ManualClock, exc_type: Type[BaseException]
) -> None:
    calls = Calls()
    breakers = keyed(tmp_path, provider, clock)
    try:
        provider.daily_pnl_pct = Decimal("-3")
        breakers.check_now()
        assert stored_latches(tmp_path) == ["daily_loss"]
        provider.daily_pnl_pct = Decimal(0)
        breakers.register_recovery_callback(calls.make("recovery", exc_type("recovery callback")))
        breakers.register_recovery_callback(calls.make("recovery after"))

        with pytest.raises(exc_type):
            breakers.reset_breaker("daily_loss")

        assert calls.labels() == ["recovery", "recovery after"]
        assert breakers.can_trade()
        assert stored_latches(tmp_path) == []
    finally:
        breakers.close()


# --- on the monitor's thread ---------------------------------------------------------------------------------

# (which callback raises, how the provider's figures make it fire, what blocks once the monitor recovers)
MONITOR_CASES = {
    "trip": ("max_drawdown", Decimal("-12"), ["max_drawdown"]),
    "kill handler": ("max_drawdown", Decimal("-12"), ["max_drawdown"]),
    "warning": ("max_drawdown", Decimal("-8"), []),
}


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
@pytest.mark.parametrize("which", list(MONITOR_CASES))
def test_a_base_exception_in_a_monitor_callback_never_stops_the_monitor(
    make_breakers: MakeBreakers, provider: FakeProvider, which: str, exc_type: Type[BaseException]
) -> None:
    name, drawdown, blocking_after = MONITOR_CASES[which]
    calls = Calls()
    raised = threading.Event()
    breakers = make_breakers(check_interval_seconds=0.01)  # on the ManualClock: readings never go stale

    def raise_once(*args: Any) -> None:
        about = args[0] if which != "kill handler" else name  # a kill handler gets the reason alone
        if about == name and not raised.is_set():
            provider.misbehave("hang")  # the next poll waits in the provider: time to look at this one's effect
            raised.set()
            raise exc_type(f"{which} callback")

    if which == "trip":
        breakers.register_trip_callback(raise_once)
    elif which == "warning":
        breakers.register_warning_callback(raise_once)
    else:
        breakers.register_kill_handler(raise_once)
        breakers.register_kill_handler(calls.make("next handler"))
    breakers.start_monitoring()
    assert breakers.can_trade()

    provider.max_drawdown = drawdown  # the monitor's next poll fires the callback, which raises
    assert provider.hanging.wait(WAIT), "no poll after the one that raised: the monitor stopped"

    status = breakers.get_status()
    assert raised.is_set()
    assert status.monitor_alive
    assert not status.can_trade
    assert f"monitor: monitor poll raised {exc_type.__name__}('{which} callback')" in status.reasons
    assert status.kill_switch_active == (blocking_after == ["max_drawdown"])
    if which == "kill handler":
        assert [label for label, _, _ in calls.calls] == ["next handler"]
        assert calls.calls[0][2].startswith("circuit_breakers-monitor")
        assert [outcome["ok"] for outcome in status.details["max_drawdown"]["kill_handlers"]] == [False, True]

    provider.heal()
    next_poll = provider.notify_after(1)
    provider.release.set()  # the hanging poll completes; it succeeds, and the monitor fault lifts
    assert next_poll.wait(WAIT), "the monitor stopped polling"
    status = breakers.get_status()
    assert status.monitor_alive
    assert list(status.blocking_breakers) == blocking_after
    assert not any(reason.startswith("monitor:") for reason in status.reasons)


# --- on a store listener's thread ----------------------------------------------------------------------------


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_a_base_exception_in_a_kill_handler_run_by_the_redis_listener_never_stops_it(
    redis_server: Any, exc_type: Type[BaseException]
) -> None:
    from circuit_breakers.redis import RedisStore  # noqa: PLC0415 - only where Redis runs

    namespace = f"base-exceptions-{exc_type.__name__}"
    clients = [redis_server.client() for _ in range(3)]
    clients[0].delete(*(f"{namespace}:{table}" for table in ("latches", "values", "procs")))
    calls = Calls()
    # A periodic re-read only every hour: what reaches the listener's owner here comes by pub/sub message.
    listening, engaging = (
        TradingCircuitBreakers(
            FakeProvider(), reset_key=RESET_KEY, store=RedisStore(client, namespace, resync_seconds=3600.0)
        )
        for client in clients[:2]
    )
    try:
        listening.register_kill_handler(calls.make("raising handler", exc_type("kill handler")))
        listening.register_kill_handler(calls.make("next handler"))
        engaging.engage_kill_switch("risk desk")
        assert wait_for(lambda: len(calls.calls) == 2), "the listener never heard the engage"
        assert calls.labels() == ["raising handler", "next handler"]
        assert all(thread.startswith(f"circuit_breakers-redis-{namespace}") for _, _, thread in calls.calls)
        assert listening.kill_switch_active
        outcomes = listening.get_status().details["max_drawdown"]["kill_handlers"]
        assert [outcome["ok"] for outcome in outcomes] == [False, True]

        assert engaging.reset_kill_switch(RESET_KEY)
        assert wait_for(lambda: not listening.kill_switch_active), "the listener stopped hearing changes"
        assert listening.can_trade()
    finally:
        for breakers in (listening, engaging):
            breakers.close()
        clients[2].delete(*(f"{namespace}:{table}" for table in ("latches", "values", "procs")))
        for client in clients:
            client.close()


def wait_for(condition: Callable[[], bool]) -> bool:
    """Poll a condition that another thread brings about, for at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
