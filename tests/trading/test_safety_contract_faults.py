"""The trading state's contract over every store, continued: garbage in the store, a store that loses its
state while owners run, and owners restarted on the same state (see test_safety_contract.py)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from circuit_breakers import ConfigError, KillSwitchError
from circuit_breakers.trading.latches import Latch

from ..stores.backends import backend
from .conftest import RESET_KEY, WRONG_KEY, FakeProvider
from .safety_owners import AuditWatch, Desk, audit, desk, peek, peek_process, without_listener

__all__ = ["audit", "backend", "desk"]  # fixtures

D = Decimal
DAILY_LOSS = "daily_loss: P&L -3.00% <= limit -2.00%"
OUT_OF_RANGE = json.dumps(
    {"reason": "old", "since": "0001-01-01T00:00:00+00:00", "trading_day": "2026-01-05", "actor": None, "id": "x"}
)


# --- garbage ---------------------------------------------------------------------------------------------


def test_a_store_turned_to_garbage_engages_every_owner_until_a_keyed_reset(desk: Desk, audit: AuditWatch) -> None:
    first, first_kills = desk.owner_with_kills()
    second, second_kills = desk.owner_with_kills(reset_key=None)
    first.check_now()
    second.check_now()
    where = desk.describe()
    desk.backend.corrupt()  # memory skips: it holds only what its owners wrote
    for owner, kills in ((first, first_kills), (second, second_kills)):
        desk.sees(owner, lambda owner=owner: owner.kill_switch_active)  # type: ignore[misc]
        assert not owner.can_trade()
        reason = owner.get_blocking_reasons()[0]
        assert reason.startswith("max_drawdown: kill switch engaged: state unreadable: ")
        assert where in reason
        assert len(kills.wait(1)) == 1
        owner.check_now()  # polls go on, and change nothing
        assert owner.kill_switch_active
    with pytest.raises(KillSwitchError):
        second.reset_breaker("max_drawdown")
    assert second.kill_switch_active
    assert first.reset_kill_switch(RESET_KEY) is True  # starts the store afresh
    assert first.can_trade(), first.get_blocking_reasons()
    desk.sees(second, second.can_trade)
    third = desk.owner(reset_key=None)
    assert third.can_trade(), (third.get_blocking_reasons(), audit.events())
    events = audit.events()
    assert events.index("kill_switch_engaged") < events.index("state_restarted") < events.index("kill_switch_reset")


def test_a_keyed_reset_after_a_new_reading_starts_a_garbage_store_afresh(desk: Desk) -> None:
    provider = FakeProvider()
    first, second = desk.owner(provider), desk.owner(reset_key=None)
    first.check_now()
    second.check_now()
    desk.backend.corrupt()
    provider.total_value = D(990_000)  # the desk moved: the reset re-bases the drawdown on this reading
    desk.sees(first, lambda: first.kill_switch_active)
    assert first.reset_kill_switch(RESET_KEY) is True
    assert first.can_trade(), first.get_blocking_reasons()
    desk.sees(second, second.can_trade)


BAD_KILL_SWITCH_RECORDS = {
    "latch-not-json": ("latches", "max_drawdown", "{not json"),
    "latch-a-string": ("latches", "max_drawdown", '"engaged"'),
    "latch-a-list": ("latches", "max_drawdown", '[{"reason": "stop"}]'),
    "latch-date-out-of-range": ("latches", "max_drawdown", OUT_OF_RANGE),
    "latch-day-out-of-range": ("latches", "max_drawdown", OUT_OF_RANGE.replace("2026-01-05", "9999-12-31")),
    "high-water-mark-words": ("values", "high_water_mark", "a lot"),
    "high-water-mark-nan": ("values", "high_water_mark", "NaN"),
    "high-water-mark-a-list": ("values", "high_water_mark", "[1000000]"),
    "baseline-an-object": ("values", "drawdown_baseline_pct", '{"pct": -3}'),
}


@pytest.mark.parametrize("bad", sorted(BAD_KILL_SWITCH_RECORDS))
def test_a_bad_record_engages_the_kill_switch_names_it_and_is_rewritten(
    desk: Desk, audit: AuditWatch, bad: str
) -> None:
    table, key, text = BAD_KILL_SWITCH_RECORDS[bad]
    first, first_kills = desk.owner_with_kills(reset_key=None)
    second, second_kills = desk.owner_with_kills()
    first.check_now()
    second.check_now()
    where = f"{desk.describe()} {table}/{key}"
    desk.backend.open().put(table, key, text)
    for owner, kills in ((first, first_kills), (second, second_kills)):
        desk.sees(owner, lambda owner=owner: owner.kill_switch_active)  # type: ignore[misc]
        assert where in owner.get_blocking_reasons()[0]
        assert where in kills.wait(1)[0]
    unreadable = [entry for entry in audit.entries() if entry["event"] == "state_unreadable"]
    assert unreadable
    assert all(where in entry["reason"] for entry in unreadable)
    records = desk.records()
    assert Latch.from_text("max_drawdown", records["latches"]["max_drawdown"]).reason.startswith("unreadable record")
    if table == "values":  # replaced by the owners' own figure (the mark they hold, no baseline)
        assert records["values"][key] == {"high_water_mark": "1000000", "drawdown_baseline_pct": "0"}[key]
    first.check_now()
    assert first.kill_switch_active
    assert second.reset_kill_switch(RESET_KEY) is True
    assert second.can_trade()
    desk.sees(first, first.can_trade)
    third = desk.owner(reset_key=None)
    assert third.can_trade(), third.get_blocking_reasons()


@pytest.mark.parametrize(
    "text", ["{not json", '"halted"', "[]", OUT_OF_RANGE], ids=["not-json", "a-string", "a-list", "date-out-of-range"]
)
def test_a_bad_day_halt_record_holds_the_day_for_every_owner(desk: Desk, audit: AuditWatch, text: str) -> None:
    first, second = desk.owner(reset_key=None), desk.owner(reset_key=None)
    first.check_now()
    second.check_now()
    desk.backend.open().put("latches", "daily_loss", text)
    where = f"{desk.describe()} latches/daily_loss"
    for owner in (first, second):
        desk.sees(owner, lambda owner=owner: not owner.can_trade())  # type: ignore[misc]
        assert not owner.kill_switch_active
        (reason,) = owner.get_blocking_reasons()
        assert reason.startswith("daily_loss: unreadable record in ")
        assert where in reason
    assert "state_unreadable" in audit.events()
    assert Latch.from_text("daily_loss", desk.records()["latches"]["daily_loss"])  # rewritten with a good one
    assert first.reset_breaker("daily_loss") is True
    assert first.can_trade()
    desk.sees(second, second.can_trade)


# --- a store that loses its state while owners run -------------------------------------------------------


def test_a_lost_store_engages_every_owner_and_only_the_key_releases_it(
    desk: Desk, audit: AuditWatch, caplog: pytest.LogCaptureFixture
) -> None:
    losing = FakeProvider(daily_pnl_pct=D(-3))
    first, first_kills = desk.owner_with_kills(losing)
    second, second_kills = desk.owner_with_kills(reset_key=None)
    first.check_now()
    second.check_now()
    assert desk.records()["values"]["high_water_mark"] == "1000000"
    desk.backend.wipe()
    for owner, kills in ((first, first_kills), (second, second_kills)):
        desk.sees(owner, lambda owner=owner: owner.kill_switch_active)  # type: ignore[misc]
        reasons = owner.get_blocking_reasons()
        assert reasons[0].startswith("max_drawdown: kill switch engaged: state lost: "), reasons
        assert reasons[1:] == [DAILY_LOSS]
        assert "state lost" in kills.wait(1)[0]
    assert any("lost its state" in record.getMessage() for record in caplog.records if record.levelno == logging.ERROR)
    assert "state_lost" in audit.events()
    records = desk.records()  # written back: what the owners held
    assert set(records["latches"]) == {"max_drawdown", "daily_loss"}
    assert records["values"]["high_water_mark"] == "1000000"
    assert records["values"]["epoch"]
    assert records["values"]["reset_key"]
    losing.daily_pnl_pct = D(0)
    with pytest.raises(KillSwitchError):
        second.reset_breaker("max_drawdown")
    second.reset_all()  # lifts the day halt, never the kill switch
    assert [reason.split(":")[0] for reason in second.get_blocking_reasons()] == ["max_drawdown"]
    desk.sees(first, lambda: "daily_loss" not in first.get_status().blocking_breakers)
    assert [reason.split(":")[0] for reason in first.get_blocking_reasons()] == ["max_drawdown"]
    assert first.reset_kill_switch(RESET_KEY) is True
    assert first.can_trade()
    desk.sees(second, second.can_trade)


def test_an_owner_started_after_a_loss_cannot_trade_while_the_old_owners_run(desk: Desk) -> None:
    first, second = desk.owner(reset_key=None), desk.owner(reset_key=None)
    first.check_now()
    second.check_now()
    desk.backend.wipe()
    early = desk.owner(reset_key=None)  # the store is empty: nothing here can tell it was lost
    desk.sees(first, lambda: first.kill_switch_active)  # the old owners find it replaced (a new epoch)
    desk.sees(second, lambda: second.kill_switch_active)
    desk.sees(early, lambda: early.kill_switch_active)
    assert not early.can_trade()
    late = desk.owner()
    assert late.kill_switch_active
    assert not late.can_trade()
    assert "state lost" in late.get_blocking_reasons()[0]
    if desk.kind == "sqlite":
        assert peek(desk.path)["kill_switch"] is True
    assert late.reset_kill_switch(RESET_KEY) is True
    for owner in (first, second, early):
        desk.sees(owner, owner.can_trade)


def test_a_wipe_noticed_by_one_owner_first_still_blocks_the_other(desk: Desk) -> None:
    first, second = desk.owner(reset_key=None), desk.owner(reset_key=None)
    without_listener(second)
    first.check_now()
    second.check_now()
    desk.backend.wipe()
    desk.sees(first, lambda: first.kill_switch_active)  # detects the loss and writes its state back, epoch too
    second.check_now()  # finds its epoch again, and the kill switch beside it
    assert second.kill_switch_active
    assert "state lost" in second.get_blocking_reasons()[0]


# --- restart ---------------------------------------------------------------------------------------------


def test_a_restarted_owner_sees_kill_switch_day_halt_high_water_mark_and_wrong_keys(desk: Desk) -> None:
    provider = FakeProvider(total_value=D(1_100_000), daily_pnl_pct=D(-3))
    first = desk.owner(provider, reset_max_attempts=3)
    first.check_now()
    first.engage_kill_switch("before the restart")
    assert first.reset_kill_switch(WRONG_KEY) is False
    provider.total_value, provider.daily_pnl_pct = D(990_000), D(0)  # the provider forgot its peak and its day
    restarted = desk.restart(first, reset_max_attempts=3)
    assert restarted.kill_switch_active
    assert restarted.get_blocking_reasons() == ["max_drawdown: kill switch engaged: before the restart", DAILY_LOSS]
    details = restarted.get_status().details["max_drawdown"]
    assert details["own_high_water_mark"] == D(1_100_000)
    assert details["reset"]["failed_attempts"] == 1
    restarted.check_now()
    assert restarted.get_status().details["max_drawdown"]["own_drawdown_pct"] == D(-10)
    assert restarted.get_blocking_reasons() == ["max_drawdown: kill switch engaged: before the restart", DAILY_LOSS]
    if desk.kind == "sqlite":  # a real process, on the same trading day
        seen = peek(desk.path, value=D(990_000), check=True, reset_max_attempts=3)
        assert (seen["kill_switch"], seen["can_trade"]) == (True, False)
        assert seen["reasons"] == ["max_drawdown: kill switch engaged: before the restart", DAILY_LOSS]
        assert (D(seen["high_water"]), D(seen["own_drawdown"])) == (D(1_100_000), D(-10))
        assert seen["failed_attempts"] == 1


def test_a_lockout_survives_restarts_and_holds_for_every_owner(desk: Desk) -> None:
    first = desk.owner(reset_max_attempts=2)
    first.engage_kill_switch("stop")
    assert first.reset_kill_switch(WRONG_KEY) is False
    restarted = desk.restart(first, reset_max_attempts=2)
    assert restarted.reset_kill_switch(WRONG_KEY) is False  # the second in a row, across the restart: locked out
    again = desk.restart(restarted, reset_max_attempts=2)
    with pytest.raises(KillSwitchError, match="locked out"):
        again.reset_kill_switch(RESET_KEY)
    other = desk.owner(reset_max_attempts=2)
    with pytest.raises(KillSwitchError, match="locked out"):
        other.reset_kill_switch(RESET_KEY)
    assert again.kill_switch_active
    assert other.kill_switch_active
    if desk.kind == "sqlite":
        seen = peek(desk.path, reset_max_attempts=2)
        assert seen["failed_attempts"] == 2
        assert seen["locked_out_for"] > 0
    desk.clock.advance(301)  # reset_lockout_seconds is 300
    assert again.reset_kill_switch(RESET_KEY) is True
    desk.sees(other, other.can_trade)


def test_a_different_reset_key_is_refused_at_construction_without_showing_it(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    first = desk.owner()
    first.engage_kill_switch("stop")
    other_key = "another-desks-secret-7Hq"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError, match="reset_key does not match") as info:
        desk.owner(reset_key=other_key)
    shown = str(info.value) + "\n".join(record.getMessage() for record in caplog.records)
    assert other_key not in shown
    assert RESET_KEY not in shown
    assert desk.describe() in str(info.value)
    assert len(desk.owners) == 1
    if desk.kind == "sqlite":
        child = peek_process(desk.path, key=other_key)
        assert child.returncode != 0
        assert "ConfigError: reset_key does not match" in child.stderr
        assert other_key not in child.stderr + child.stdout
    assert desk.owner(reset_key=None).kill_switch_active  # the stored key is still the first one's
    assert first.reset_kill_switch(RESET_KEY) is True
