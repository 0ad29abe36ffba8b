"""replay(): answers known by construction, from the real breakers on a simulated clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, List

import pytest

from circuit_breakers import (
    ConfigError,
    ConfigTypeError,
    OrderLimits,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    TradingState,
)
from circuit_breakers.replay import EventKind, HistoryRow, ReplayResult, replay
from circuit_breakers.trading.config_file import LimitsFile
from tests.replay.histories import at, daily

MONDAY = dt.date(2024, 3, 4)
TUESDAY = MONDAY + dt.timedelta(days=1)
WEDNESDAY = MONDAY + dt.timedelta(days=2)


def kinds(result: ReplayResult, breaker: str, kind: EventKind) -> List[dt.datetime]:
    return [event.time for event in result.events if event.breaker == breaker and event.kind is kind]


def hourly_fall() -> List[HistoryRow]:
    """Monday flat at 100,000; Tuesday falls 2.5 % by 12:00 and stays there; Wednesday gains 1 %."""
    rows = [HistoryRow(at(MONDAY, hour), Decimal(100000)) for hour in (10, 16)]
    tuesday = [100000, 99000, 98400, 97500, 97500, 97600, 97500]  # 10:00 .. 16:00
    rows += [HistoryRow(at(TUESDAY, 10 + i), Decimal(value)) for i, value in enumerate(tuesday)]
    rows += [HistoryRow(at(WEDNESDAY, 10), Decimal(98475)), HistoryRow(at(WEDNESDAY, 16), Decimal(99000))]
    return rows


def test_a_day_that_falls_2_5_percent_trips_a_2_percent_limit_exactly_once() -> None:
    result = replay(hourly_fall(), TradingBreakerConfig(daily_loss_limit_pct=Decimal("-2")))

    assert kinds(result, "daily_loss", EventKind.TRIP) == [at(TUESDAY, 13)]  # 97,500: -2.5 %, the first row <= -2 %
    assert kinds(result, "daily_loss", EventKind.WARNING) == [at(TUESDAY, 12)]  # 98,400: -1.6 %
    assert kinds(result, "daily_loss", EventKind.RECOVERED) == [dt.datetime(2024, 3, 6, 5, tzinfo=dt.timezone.utc)]
    assert result.summary.trips == {"daily_loss": 1}
    assert result.summary.days_halted == 1
    assert result.summary.worst_day == (TUESDAY, Decimal("-2.5"))
    # Halted from 13:00 to midnight: flat at 97,500 for the rest of Tuesday, whatever the history did.
    with_breakers = result.curve.equity_with_breakers
    assert with_breakers[5:9] == [Decimal(97500)] * 4
    # Wednesday's rows earn the history's returns again: +1 % overnight, then the rest.
    assert with_breakers[9] == Decimal(97500) * Decimal(98475) / Decimal(97500)
    assert result.summary.final_equity == Decimal(99000)
    assert result.summary.final_equity_with_breakers == Decimal(99000) * Decimal(97500) / Decimal(97500)
    (span,) = result.spans
    assert (span.start, span.end, span.state) == (at(TUESDAY, 13), at(WEDNESDAY, 0), TradingState.REDUCING)


def test_a_day_halt_is_total_when_the_order_limits_say_so() -> None:
    result = replay(hourly_fall(), TradingBreakerConfig(), order_limits=OrderLimits(reducing_breakers=frozenset()))
    assert [span.state for span in result.spans] == [TradingState.HALTED]


def test_a_peak_to_trough_fall_of_11_percent_engages_a_10_percent_kill_switch_on_that_row() -> None:
    # Each day falls less than 2 %: only the drawdown can trip. Peak 100,000; 89,500 is the first row at -10 % or worse.
    values = [95000, 100000, 98500, 97000, 95500, 94000, 92500, 91000, 89500, 89000, 92000, 95000]
    rows = daily(MONDAY, values)
    result = replay(rows, TradingBreakerConfig(max_drawdown_pct=Decimal("-10")))

    kill_row = rows[values.index(89500)]
    expected = TradingBreakerConfig().day_start(kill_row.time + dt.timedelta(days=1)) - dt.timedelta(seconds=1)
    assert kinds(result, "max_drawdown", EventKind.KILL) == [expected]
    assert kinds(result, "max_drawdown", EventKind.TRIP) == [expected]
    assert kinds(result, "daily_loss", EventKind.TRIP) == []
    assert result.summary.max_drawdown_pct == Decimal("-11")
    # Never reset: flat at the kill row's equity to the end, while the history recovers.
    assert result.curve.equity_with_breakers[values.index(89500) :] == [Decimal(89500)] * 4
    assert result.summary.final_equity_with_breakers == Decimal(89500)
    assert result.summary.max_drawdown_with_breakers_pct == Decimal("-10.5")
    assert result.summary.days_halted == 4
    assert result.spans[-1].state is TradingState.HALTED
    assert result.spans[-1].end == result.curve.times[-1]


def test_the_kill_switch_resets_with_its_key_after_the_given_days() -> None:
    values = [100000, 98500, 97000, 95500, 94000, 92500, 91000, 89500, 89000, 92000, 95000, 96000]
    rows = daily(MONDAY, values)  # the kill on Wednesday 2024-03-13
    result = replay(rows, reset_after_days=5)

    (kill,) = kinds(result, "max_drawdown", EventKind.KILL)
    assert TradingBreakerConfig().trading_day(kill) == dt.date(2024, 3, 13)
    (reset,) = kinds(result, "max_drawdown", EventKind.RECOVERED)
    assert reset == TradingBreakerConfig().day_start(dt.date(2024, 3, 18))  # five calendar days on, at day start
    (recovered,) = [event for event in result.events if event.time == reset]
    assert "kill switch reset with its key, 5 days" in recovered.reason
    with_breakers = result.curve.equity_with_breakers
    assert with_breakers[7:10] == [Decimal(89500)] * 3  # the kill row (Wednesday), Thursday, Friday: flat
    assert with_breakers[10] == Decimal(89500) * Decimal(95000) / Decimal(92000)  # Monday 2024-03-18 trades again


def test_a_deposit_is_not_profit_and_a_withdrawal_not_a_loss() -> None:
    rows = [
        HistoryRow(at(MONDAY, 16), Decimal(100000)),
        HistoryRow(at(TUESDAY, 10), Decimal(150000), Decimal(50000)),  # a deposit, no gain
        HistoryRow(at(TUESDAY, 11), Decimal(146000)),  # -4,000 on the day's 150,000: -2.67 %
        HistoryRow(at(WEDNESDAY, 10), Decimal(96000), Decimal(-50000)),  # a withdrawal, no loss
        HistoryRow(at(WEDNESDAY, 11), Decimal(96500)),
    ]
    result = replay(rows)

    assert kinds(result, "daily_loss", EventKind.TRIP) == [at(TUESDAY, 11)]
    assert result.summary.trips == {"daily_loss": 1}
    assert result.summary.worst_day == (TUESDAY, Decimal("-2.6667"))
    assert result.curve.daily_pnl_pct == [0, 0, Decimal("-2.6667"), 0, Decimal("0.5208")]
    assert result.summary.net_cash_flow == 0
    # with breakers: halted from Tuesday 11:00, so the withdrawal comes off 146,000 and Wednesday earns again
    assert result.curve.equity_with_breakers[3] == Decimal(96000)


def test_a_deposit_does_not_hide_a_drawdown() -> None:
    # 91,000 is -9 %; the 20,000 deposit lifts the peak to 120,000; 107,000 is then -10.83 %: the kill switch.
    # Had the deposit counted as profit, 107,000 would be 3.6 % under a 111,000 peak.
    rows = daily(MONDAY, [100000, 93000, 91000, (111000, 20000), 107000])
    result = replay(rows)
    assert len(kinds(result, "max_drawdown", EventKind.KILL)) == 1
    assert result.curve.drawdown_pct[3:] == [Decimal("-7.5"), Decimal("-10.8334")]
    assert result.summary.net_cash_flow == Decimal(20000)


def test_every_row_is_evaluated_once_by_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Any] = []
    original = TradingCircuitBreakers.refresh

    def counting(self: TradingCircuitBreakers) -> Any:
        calls.append(self.provider.get_total_value())
        return original(self)

    monkeypatch.setattr(TradingCircuitBreakers, "refresh", counting)
    rows = hourly_fall()
    replay(rows)
    assert calls == [row.equity for row in rows]


def test_naive_times_are_in_the_configs_trading_zone() -> None:
    config = TradingBreakerConfig(trading_day_timezone="Europe/London", trading_day_reset_time=dt.time(8))
    rows = [
        HistoryRow(dt.datetime(2024, 3, 4, 9), Decimal(100)),
        HistoryRow(dt.datetime(2024, 3, 5, 7, 59), Decimal(97)),  # before 08:00: still Monday's trading day
        HistoryRow(dt.datetime(2024, 3, 5, 8, 0), Decimal(97)),
    ]
    result = replay(rows, config)
    assert result.curve.times[1] == dt.datetime(2024, 3, 5, 7, 59, tzinfo=dt.timezone.utc)
    assert kinds(result, "daily_loss", EventKind.TRIP) == [result.curve.times[1]]
    assert kinds(result, "daily_loss", EventKind.RECOVERED) == [dt.datetime(2024, 3, 5, 8, tzinfo=dt.timezone.utc)]
    assert result.summary.trading_days == 2


def test_a_limits_file_result_is_accepted_and_its_order_limits_apply() -> None:
    limits = LimitsFile(TradingBreakerConfig(), OrderLimits(reducing_breakers=frozenset()))
    result = replay(hourly_fall(), limits)
    assert [span.state for span in result.spans] == [TradingState.HALTED]


def test_report_and_json_carry_the_same_events() -> None:
    result = replay(hourly_fall())
    lines = result.report()
    document = result.to_dict()
    assert lines[:3] == [
        "2024-03-05 12:00:00-05:00  WARNING    daily_loss      P&L -1.60% <= warning -1.50%",
        "2024-03-05 13:00:00-05:00  TRIP       daily_loss      P&L -2.50% <= limit -2.00%",
        "2024-03-06 00:00:00-05:00  RECOVERED  daily_loss      trading day 2024-03-05 ended",
    ]
    assert [event["kind"] for event in document["events"]] == ["WARNING", "TRIP", "RECOVERED"]
    assert document["events"][1]["time"] == "2024-03-05T13:00:00-05:00"
    assert document["summary"]["trips"] == {"daily_loss": 1}
    assert document["summary"]["final_equity"] == "99000.00"
    assert "  trips                daily_loss 1" in lines


def test_a_daily_history_shows_trading_days() -> None:
    result = replay(daily(MONDAY, [100000, 97000, 97500]))
    assert result.report()[1].startswith("2024-03-05                 TRIP       daily_loss")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"config": "limits.toml"}, ConfigTypeError, "config must be"),
        ({"reset_after_days": 0}, ConfigError, "reset_after_days must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        replay(hourly_fall(), **kwargs)


def test_a_trip_on_the_last_row_leaves_no_empty_span() -> None:
    result = replay(daily(MONDAY, [100000, 97000]))
    assert result.summary.trips == {"daily_loss": 1}
    assert result.spans == ()
    assert result.summary.days_halted == 1
