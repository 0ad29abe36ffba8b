"""The trading state's contract, kept over every store (memory, SQLite, Redis): what one owner does is
what the others see, and a store that refuses writes never loses a halt nor lets one go.

Each test runs once per store with owners built by tests/trading/safety_owners.py (two owners of one
backend stand for two processes). Garbage, lost state and restarts: test_safety_contract_faults.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from circuit_breakers import KillSwitchError, StateStoreError
from circuit_breakers.trading.latches import Latch

from ..stores.backends import backend, fail_writes
from .conftest import RESET_KEY, WRONG_KEY, FakeProvider, Recorder
from .safety_owners import (
    AuditWatch,
    Desk,
    audit,
    desk,
    fail_writes_of,
    peek,
    state_reasons,
    without_listener,
)

__all__ = ["audit", "backend", "desk"]  # fixtures

D = Decimal
DAILY_LOSS = "daily_loss: P&L -3.00% <= limit -2.00%"


# --- what one owner does, the other sees ---------------------------------------------------------------


def test_an_engage_in_one_owner_halts_the_other_and_runs_its_kill_handlers(desk: Desk, audit: AuditWatch) -> None:
    first, first_kills = desk.owner_with_kills()
    second, second_kills = desk.owner_with_kills(reset_key=None)
    first.check_now()
    second.check_now()
    assert first.can_trade()
    assert second.can_trade()
    first.engage_kill_switch("risk desk: flatten everything", actor="alice")
    assert first_kills.reasons == ["risk desk: flatten everything"]  # before engage_kill_switch returned
    desk.sees(second, lambda: second.kill_switch_active)
    assert not second.can_trade()
    assert second.get_blocking_reasons() == ["max_drawdown: kill switch engaged: risk desk: flatten everything"]
    assert second_kills.wait(1) == ["risk desk: flatten everything"]
    stored = Latch.from_text("max_drawdown", desk.records()["latches"]["max_drawdown"])
    assert (stored.reason, stored.actor) == ("risk desk: flatten everything", "alice")
    with pytest.raises(KillSwitchError):
        second.reset_breaker("max_drawdown")  # require_manual_reset is on: only the key
    second.reset_all()
    first.check_now()
    second.check_now()
    assert first.kill_switch_active
    assert second.kill_switch_active
    assert audit.events() == ["kill_switch_engaged", "kill_switch_heard", "kill_switch_reset_refused"]
    assert second_kills.reasons == ["risk desk: flatten everything"]  # once: adopting is not engaging again


@pytest.mark.parametrize("resetter", ["the-engaging-owner", "the-other-owner"])
def test_a_keyed_reset_in_either_owner_releases_both(desk: Desk, resetter: str) -> None:
    first, second = desk.owner(), desk.owner()
    first.engage_kill_switch("stop")
    desk.sees(second, lambda: second.kill_switch_active)
    by, other = (first, second) if resetter == "the-engaging-owner" else (second, first)
    assert by.reset_kill_switch(WRONG_KEY) is False
    other.check_now()
    assert by.kill_switch_active
    assert other.kill_switch_active
    assert by.reset_kill_switch(RESET_KEY) is True
    assert by.can_trade()
    desk.sees(other, other.can_trade)
    assert not other.kill_switch_active
    assert "max_drawdown" not in desk.records()["latches"]
    assert desk.owner(reset_key=None).can_trade()  # and an owner that starts now


def test_a_day_halt_is_shared_and_lifted_for_both(desk: Desk) -> None:
    losing = FakeProvider(daily_pnl_pct=D(-3))
    first, second = desk.owner(losing, reset_key=None), desk.owner(reset_key=None)
    first.check_now()
    assert first.get_blocking_reasons() == [DAILY_LOSS]
    desk.sees(second, lambda: not second.can_trade())  # its own P&L is flat: the halt is the desk's
    assert second.get_blocking_reasons() == [DAILY_LOSS]
    assert not second.kill_switch_active
    assert desk.owner(reset_key=None).get_blocking_reasons() == [DAILY_LOSS]
    losing.daily_pnl_pct = D(0)
    assert second.reset_breaker("daily_loss") is True
    assert second.can_trade()
    desk.sees(first, first.can_trade)
    assert "daily_loss" not in desk.records()["latches"]


def test_the_high_water_mark_is_shared(desk: Desk) -> None:
    first_provider = FakeProvider(total_value=D(1_000_000))
    first, first_kills = desk.owner_with_kills(first_provider, reset_key=None)
    first.check_now()
    second = desk.owner(FakeProvider(total_value=D(1_100_000)), reset_key=None)
    second.check_now()  # a peak only this owner has seen
    assert desk.records()["values"]["high_water_mark"] == "1100000"
    first_provider.total_value = D(990_000)  # -1 % from its own peak, -10 % from the desk's
    desk.sees(first, lambda: first.kill_switch_active)
    assert first.get_status().details["max_drawdown"]["own_high_water_mark"] == D(1_100_000)
    assert first.get_status().details["max_drawdown"]["own_drawdown_pct"] == D(-10)
    assert first_kills.reasons == ["drawdown -10.00% <= limit -10.00%"]
    desk.sees(second, lambda: second.kill_switch_active)


def test_an_engage_after_another_owner_reset_is_not_lost(desk: Desk) -> None:
    first, kills = desk.owner_with_kills(reset_key=None)
    second = desk.owner()
    without_listener(first)  # on Redis: only its own calls read the store, as between two polls
    first.engage_kill_switch("first stop")
    desk.sees(second, lambda: second.kill_switch_active)
    assert second.reset_kill_switch(RESET_KEY)
    first.engage_kill_switch("second stop")  # after the reset: a new engagement, which must hold
    first.check_now()
    assert first.kill_switch_active
    assert kills.reasons == ["first stop", "second stop"]


# --- a store that refuses writes ---------------------------------------------------------------------------


def test_an_engage_the_store_cannot_take_holds_at_once_and_lands_later(desk: Desk, audit: AuditWatch) -> None:
    first, first_kills = desk.owner_with_kills(reset_key=None)
    second, second_kills = desk.owner_with_kills(reset_key=None)
    first.check_now()
    second.check_now()
    restore = fail_writes(desk.store_of(first))
    first.engage_kill_switch("desk limit")
    assert first.kill_switch_active
    assert first_kills.reasons == ["desk limit"]
    assert not first.can_trade()
    reasons = first.get_blocking_reasons()
    assert reasons[0] == "max_drawdown: kill switch engaged: desk limit"
    assert [reason for reason in reasons[1:] if "No space left on device" in reason] == state_reasons(first)
    assert len(state_reasons(first)) == 1
    assert "max_drawdown" not in desk.records()["latches"]  # it waits in this owner's outbox
    first.check_now()  # retried and refused again: still blocked, still waiting
    assert state_reasons(first)
    restore()
    desk.sees(first, lambda: not state_reasons(first))  # one poll writes it, and the fault lifts
    assert first.get_blocking_reasons() == ["max_drawdown: kill switch engaged: desk limit"]
    assert "max_drawdown" in desk.records()["latches"]
    desk.sees(second, lambda: second.kill_switch_active)
    assert second_kills.wait(1) == ["desk limit"]
    assert desk.restart(first, reset_key=None).kill_switch_active
    if desk.kind == "sqlite":
        assert peek(desk.path)["kill_switch"] is True  # and a real process started now
    assert first_kills.reasons == ["desk limit"]
    assert "kill_switch_engaged" in audit.events()


def test_a_high_water_mark_the_store_cannot_take_is_written_later(desk: Desk) -> None:
    provider = FakeProvider(total_value=D(1_000_000))
    first = desk.owner(provider, reset_key=None)
    first.check_now()
    restore = fail_writes(desk.store_of(first))
    provider.total_value = D(1_100_000)
    first.check_now()
    assert not first.can_trade()
    assert state_reasons(first)
    assert first.get_status().details["max_drawdown"]["own_high_water_mark"] == D(1_100_000)  # applied at once
    assert desk.records()["values"]["high_water_mark"] == "1000000"
    provider.total_value = D(1_050_000)
    first.check_now()  # a lower reading meanwhile: the peak still waits to be written
    restore()
    desk.sees(first, first.can_trade)
    assert desk.records()["values"]["high_water_mark"] == "1100000"
    later = desk.owner(FakeProvider(total_value=D(990_000)), reset_key=None)
    later.check_now()
    assert later.kill_switch_active  # -10 % from the peak that could not be written at first


FAILURES = {
    "every-write": lambda table, key: True,
    "the-latch": lambda table, key: table == "latches",
    "the-reset-count": lambda table, key: (table, key) == ("values", "kill_switch_resets"),
}


@pytest.mark.parametrize("failing", sorted(FAILURES))
def test_a_keyed_reset_the_store_cannot_take_releases_nothing(desk: Desk, failing: str) -> None:
    first, second = desk.owner(), desk.owner(reset_key=None)
    first.check_now()
    first.engage_kill_switch("stop")
    desk.sees(second, lambda: second.kill_switch_active)
    latches = desk.records()["latches"]
    restore = fail_writes_of(desk.store_of(first), FAILURES[failing])
    with pytest.raises(StateStoreError, match="No space left on device"):
        first.reset_kill_switch(RESET_KEY)
    assert first.kill_switch_active
    assert not first.can_trade()
    assert desk.records()["latches"] == latches
    second.check_now()
    assert second.kill_switch_active
    restore()
    first.check_now()
    second.check_now()
    assert first.kill_switch_active
    assert second.kill_switch_active
    assert first.reset_kill_switch(RESET_KEY)
    assert first.can_trade()
    desk.sees(second, second.can_trade)


@pytest.mark.parametrize("failing", sorted(FAILURES))
def test_a_keyed_reset_the_store_cannot_take_is_audited_as_refused(desk: Desk, audit: AuditWatch, failing: str) -> None:
    first = desk.owner()
    first.engage_kill_switch("stop")
    restore = fail_writes_of(desk.store_of(first), FAILURES[failing])
    with pytest.raises(StateStoreError):
        first.reset_kill_switch(RESET_KEY, actor="alice")
    restore()
    refused = [entry for entry in audit.entries() if entry["event"] == "kill_switch_reset_refused"]
    assert [entry["actor"] for entry in refused] == ["alice"]
    assert "No space left on device" in refused[0]["reason"]


def test_a_record_that_vanishes_after_a_half_done_reset_is_restored(desk: Desk) -> None:
    first, second = desk.owner(), desk.owner(reset_key=None)
    without_listener(first)
    without_listener(second)
    first.engage_kill_switch("stop")
    second.check_now()
    assert second.kill_switch_active
    restore = fail_writes_of(desk.store_of(first), FAILURES["the-latch"])  # the count lands, the drop does not
    with pytest.raises(StateStoreError):
        first.reset_kill_switch(RESET_KEY)
    restore()
    first.check_now()
    second.check_now()
    desk.backend.open().put("latches", "max_drawdown", None)  # gone, without a keyed reset
    first.check_now()
    second.check_now()
    assert first.kill_switch_active
    assert second.kill_switch_active


def test_a_failed_keyed_reset_leaves_the_high_water_mark_alone(desk: Desk) -> None:
    provider = FakeProvider(total_value=D(1_000_000))
    first = desk.owner(provider)
    first.check_now()
    provider.total_value = D(880_000)
    first.check_now()
    assert first.kill_switch_active
    restore = fail_writes_of(desk.store_of(first), FAILURES["the-latch"])
    with pytest.raises(StateStoreError):
        first.reset_kill_switch(RESET_KEY)
    restore()
    assert desk.records()["values"]["high_water_mark"] == "1000000"  # re-based only by a release that happened


def test_a_day_halt_release_the_store_cannot_take_releases_nothing(desk: Desk) -> None:
    losing = FakeProvider(daily_pnl_pct=D(-3))
    first, second = desk.owner(losing, reset_key=None), desk.owner(reset_key=None)
    first.check_now()
    desk.sees(second, lambda: not second.can_trade())
    losing.daily_pnl_pct = D(0)
    restore = fail_writes(desk.store_of(first))
    with pytest.raises(StateStoreError):
        first.reset_breaker("daily_loss")
    assert first.get_blocking_reasons()[0] == DAILY_LOSS
    assert state_reasons(first)
    assert "daily_loss" in desk.records()["latches"]
    second.check_now()
    assert second.get_blocking_reasons() == [DAILY_LOSS]
    restore()
    desk.sees(first, lambda: not state_reasons(first))
    assert first.get_blocking_reasons() == [DAILY_LOSS]  # the store recovering releases nothing
    assert first.reset_breaker("daily_loss") is True
    assert first.can_trade()
    desk.sees(second, second.can_trade)


def test_a_day_halt_release_the_store_cannot_take_fires_the_state_trip_callback(desk: Desk) -> None:
    first = desk.owner(FakeProvider(daily_pnl_pct=D(-3)), reset_key=None)
    without_listener(first)
    first.check_now()
    trips = Recorder()
    first.register_trip_callback(trips)
    restore = fail_writes(desk.store_of(first))
    with pytest.raises(StateStoreError):
        first.reset_breaker("daily_loss")
    assert state_reasons(first)
    assert trips.names() == ["state"]
    restore()


def test_a_late_high_water_mark_never_lowers_a_higher_one_written_meanwhile(desk: Desk) -> None:
    first_provider = FakeProvider(total_value=D(1_100_000))
    first = desk.owner(first_provider, reset_key=None)
    second_provider = FakeProvider(total_value=D(1_000_000))
    second = desk.owner(second_provider, reset_key=None)
    second.check_now()
    restore = fail_writes(desk.store_of(first))  # on memory, the one shared object: both wait
    first.check_now()  # 1,100,000 waits in its outbox
    second_provider.total_value = D(1_200_000)
    second.check_now()
    restore()
    second.check_now()
    first.check_now()  # its late write meets a higher mark: kept
    assert desk.records()["values"]["high_water_mark"] == "1200000"
    first_provider.total_value = D(1_080_000)  # -10 % from the desk's peak
    first.check_now()
    assert first.get_status().details["max_drawdown"]["own_high_water_mark"] == D(1_200_000)
    assert first.kill_switch_active
