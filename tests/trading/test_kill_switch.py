"""The max-drawdown kill switch: engaging, keyed reset, re-basing, the library's own high-water mark."""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

import pytest

from circuit_breakers import ConfigTypeError, KillSwitchError, ManualClock, TradingCircuitBreakers

from .conftest import RESET_KEY, WRONG_KEY, FakeProvider, MakeBreakers, Recorder

D = Decimal


def engage_by_drawdown(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    """Peak at 1,000,000, then a 15 % fall that both the provider and the library see."""
    provider.total_value, provider.max_drawdown = D(1_000_000), D(0)
    breakers.check_now()
    provider.total_value, provider.max_drawdown = D(850_000), D(-15)
    breakers.check_now()
    assert breakers.kill_switch_active


# --- engaging -------------------------------------------------------------------------------------


def test_drawdown_at_the_limit_engages_the_kill_switch(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.max_drawdown = D("-10.0")
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active
    assert not keyed_breakers.can_trade()
    reasons = keyed_breakers.get_blocking_reasons()
    assert reasons == ["max_drawdown: kill switch engaged: drawdown -10.00% <= limit -10.00%"]


def test_drawdown_just_above_the_limit_does_not_engage(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.max_drawdown = D("-9.99")
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active
    assert keyed_breakers.can_trade()


def test_kill_switch_trip_callback(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider, recorder: Callable[[], Recorder]
) -> None:
    trips = recorder()
    keyed_breakers.register_trip_callback(trips)
    provider.max_drawdown = D(-12)
    keyed_breakers.check_now()
    keyed_breakers.check_now()
    assert trips.calls == [("max_drawdown", "drawdown -12.00% <= limit -10.00%")]


def test_kill_switch_survives_the_day_rollover(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider, clock: ManualClock
) -> None:
    provider.max_drawdown = D(-12)
    keyed_breakers.check_now()
    provider.max_drawdown = D(0)
    clock.advance(3 * 86_400)
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active
    assert not keyed_breakers.can_trade()


def test_manual_engage(keyed_breakers: TradingCircuitBreakers) -> None:
    keyed_breakers.engage_kill_switch("fat-finger alert from risk desk")
    assert keyed_breakers.kill_switch_active
    assert keyed_breakers.get_blocking_reasons() == [
        "max_drawdown: kill switch engaged: fat-finger alert from risk desk"
    ]


def test_kill_switch_mirror_breaker_is_open(keyed_breakers: TradingCircuitBreakers) -> None:
    keyed_breakers.engage_kill_switch("test")
    mirror = keyed_breakers.manager.get_circuit_breaker("max_drawdown")
    assert mirror is not None
    assert mirror.is_open


# --- resetting ------------------------------------------------------------------------------------


def test_reset_breaker_refuses_the_kill_switch(keyed_breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.max_drawdown = D(-11)
    keyed_breakers.check_now()
    with pytest.raises(KillSwitchError, match="reset_kill_switch"):
        keyed_breakers.reset_breaker("max_drawdown")
    assert keyed_breakers.kill_switch_active


def test_reset_all_never_releases_the_kill_switch(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.max_drawdown = D(-11)
    keyed_breakers.check_now()
    keyed_breakers.reset_all()
    assert keyed_breakers.kill_switch_active
    assert not keyed_breakers.can_trade()


def test_reset_all_never_releases_the_kill_switch_even_without_manual_reset(
    make_breakers: MakeBreakers, provider: FakeProvider
) -> None:
    breakers = make_breakers(require_manual_reset=False)
    breakers.engage_kill_switch("test")
    breakers.reset_all()
    assert breakers.kill_switch_active


def test_reset_breaker_releases_the_kill_switch_without_manual_reset(make_breakers: MakeBreakers) -> None:
    breakers = make_breakers(require_manual_reset=False)
    breakers.engage_kill_switch("test")
    assert breakers.reset_breaker("max_drawdown") is True
    assert not breakers.kill_switch_active
    assert breakers.can_trade()


def test_wrong_key_is_refused(keyed_breakers: TradingCircuitBreakers) -> None:
    keyed_breakers.engage_kill_switch("test")
    assert keyed_breakers.reset_kill_switch(WRONG_KEY) is False
    assert keyed_breakers.kill_switch_active
    assert not keyed_breakers.can_trade()


def test_right_key_releases(keyed_breakers: TradingCircuitBreakers, recorder: Callable[[], Recorder]) -> None:
    recoveries = recorder()
    keyed_breakers.register_recovery_callback(recoveries)
    keyed_breakers.engage_kill_switch("test")
    assert keyed_breakers.reset_kill_switch(RESET_KEY) is True
    assert not keyed_breakers.kill_switch_active
    assert keyed_breakers.can_trade()
    assert recoveries.calls == [("max_drawdown",)]


def test_right_key_as_bytes_releases(keyed_breakers: TradingCircuitBreakers) -> None:
    keyed_breakers.engage_kill_switch("test")
    assert keyed_breakers.reset_kill_switch(RESET_KEY.encode()) is True
    assert not keyed_breakers.kill_switch_active


def test_reset_without_a_configured_key_raises(breakers: TradingCircuitBreakers) -> None:
    breakers.engage_kill_switch("test")
    with pytest.raises(KillSwitchError, match="no reset key"):
        breakers.reset_kill_switch(RESET_KEY)
    assert breakers.kill_switch_active


def test_repeated_wrong_keys_lock_resets_out(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    breakers = make_breakers(reset_key=RESET_KEY, reset_max_attempts=2, reset_lockout_seconds=60)
    breakers.engage_kill_switch("test")
    assert breakers.reset_kill_switch(WRONG_KEY) is False
    assert breakers.reset_kill_switch(WRONG_KEY) is False
    with pytest.raises(KillSwitchError, match="locked out"):
        breakers.reset_kill_switch(RESET_KEY)
    assert breakers.kill_switch_active
    clock.advance(60)
    assert breakers.reset_kill_switch(RESET_KEY) is True


# --- re-basing after a reset ----------------------------------------------------------------------


def test_after_reset_the_same_readings_do_not_re_engage(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    engage_by_drawdown(keyed_breakers, provider)
    assert keyed_breakers.reset_kill_switch(RESET_KEY)
    keyed_breakers.check_now()
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active
    assert keyed_breakers.can_trade()


def test_after_reset_a_further_ten_percent_fall_re_engages(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    engage_by_drawdown(keyed_breakers, provider)
    keyed_breakers.reset_kill_switch(RESET_KEY)
    # A further 10 % fall from 850,000: 765,000, and the provider's drawdown from its old peak is -23.5 %.
    provider.total_value, provider.max_drawdown = D(765_000), D("-23.5")
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active


def test_after_reset_a_smaller_fall_does_not_re_engage(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    engage_by_drawdown(keyed_breakers, provider)
    keyed_breakers.reset_kill_switch(RESET_KEY)
    provider.total_value, provider.max_drawdown = D(773_500), D("-22.65")  # 9 % below 850,000
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active


def test_provider_drawdown_alone_is_re_based(keyed_breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    provider.max_drawdown = D(-12)
    keyed_breakers.check_now()
    keyed_breakers.reset_kill_switch(RESET_KEY)
    provider.max_drawdown = D(-18)  # 88 -> 82: 6.8 % below the reset point
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active
    provider.max_drawdown = D("-20.8")  # 88 -> 79.2: 10 % below the reset point
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active


# --- the library's own high-water mark ------------------------------------------------------------


def test_own_high_water_mark_catches_a_provider_that_forgot_its_peak(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.total_value = D(1_000_000)
    keyed_breakers.check_now()
    provider.total_value = D(1_200_000)
    keyed_breakers.check_now()
    provider.total_value = D(1_020_000)  # 15 % below the 1,200,000 the library saw
    provider.max_drawdown = D(0)  # the provider says there is no drawdown
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active
    assert "-15" in keyed_breakers.get_blocking_reasons()[0]


def test_own_drawdown_below_the_limit_does_not_engage(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    keyed_breakers.check_now()
    provider.total_value = D(910_000)
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active


def test_recorded_withdrawal_is_not_a_drawdown(keyed_breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    keyed_breakers.check_now()
    keyed_breakers.record_cash_flow(D(-150_000))
    provider.total_value = D(850_000)
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active
    assert keyed_breakers.can_trade()


def test_unrecorded_withdrawal_looks_like_a_drawdown(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    keyed_breakers.check_now()
    provider.total_value = D(850_000)
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active


def test_recorded_deposit_raises_the_high_water_mark(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    keyed_breakers.check_now()
    keyed_breakers.record_cash_flow(D(500_000))
    assert keyed_breakers.get_status().details["max_drawdown"]["own_high_water_mark"] == D(1_500_000)
    provider.total_value = D(1_340_000)  # the deposit has not shown up yet: 10.7 % below 1,500,000
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active


def test_record_cash_flow_rejects_floats(keyed_breakers: TradingCircuitBreakers) -> None:
    keyed_breakers.check_now()
    with pytest.raises(ConfigTypeError, match="amount"):
        keyed_breakers.record_cash_flow(0.5)  # type: ignore[arg-type]
    assert keyed_breakers.get_status().details["max_drawdown"]["own_high_water_mark"] == D(1_000_000)


def test_status_shows_both_drawdowns(keyed_breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    keyed_breakers.check_now()
    provider.total_value, provider.max_drawdown = D(950_000), D(-3)
    details = keyed_breakers.check_now().details["max_drawdown"]
    assert details["own_drawdown_pct"] == D(-5)
    assert details["provider_drawdown_pct"] == D(-3)
    assert details["value"] == D(-5)


def test_right_key_while_not_engaged_changes_nothing(
    keyed_breakers: TradingCircuitBreakers, provider: FakeProvider
) -> None:
    provider.total_value, provider.max_drawdown = D(1_000_000), D(0)
    keyed_breakers.check_now()
    provider.total_value, provider.max_drawdown = D(910_000), D(-9)
    keyed_breakers.check_now()
    assert not keyed_breakers.kill_switch_active
    assert keyed_breakers.reset_kill_switch(RESET_KEY) is True  # the key is right
    provider.total_value, provider.max_drawdown = D(880_000), D(-12)
    keyed_breakers.check_now()
    assert keyed_breakers.kill_switch_active  # no re-base happened: -12 % still engages


def test_a_process_without_a_key_adopts_the_hash_a_keyed_process_stores_later() -> None:
    """Started first, a desk without a key binds no key; once a desk with the key has stored its hash,
    the keyless desk resets with that key too."""
    from circuit_breakers.stores import MemoryStore  # noqa: PLC0415

    store = MemoryStore()
    keyless = TradingCircuitBreakers(FakeProvider(), store=store)
    keyless.engage_kill_switch("stop")
    with pytest.raises(KillSwitchError, match="no reset key configured"):
        keyless.reset_kill_switch(RESET_KEY)
    TradingCircuitBreakers(FakeProvider(), store=store, reset_key=RESET_KEY)  # stores its hash
    assert keyless.reset_kill_switch(WRONG_KEY) is False
    assert keyless.reset_kill_switch(RESET_KEY) is True
    assert keyless.can_trade()
