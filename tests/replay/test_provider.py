"""HistoryProvider: daily P&L against the previous close, drawdown from the peak, completed daily returns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from circuit_breakers import PortfolioProvider
from circuit_breakers.replay.provider import HistoryProvider, percent_change

DAY1, DAY2, DAY3 = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)


def test_it_is_a_portfolio_provider_with_daily_returns() -> None:
    provider = HistoryProvider(lookback=20)
    assert isinstance(provider, PortfolioProvider)
    assert provider.get_daily_returns() == ()
    assert provider.get_position_concentration("SPY") == 0


def test_daily_pnl_is_against_the_previous_days_last_equity() -> None:
    provider = HistoryProvider(lookback=20)
    provider.advance(DAY1, Decimal(100), Decimal(0))
    provider.advance(DAY1, Decimal(104), Decimal(0))
    assert (provider.get_daily_pnl(), provider.get_daily_pnl_pct()) == (Decimal(4), Decimal(4))  # from the first row
    provider.advance(DAY2, Decimal(102), Decimal(0))
    assert (provider.get_daily_pnl(), provider.get_daily_pnl_pct()) == (Decimal(-2), Decimal("-1.9231"))  # floor
    assert provider.get_max_drawdown() == Decimal("-1.9231")
    provider.advance(DAY3, Decimal(105), Decimal(0))
    assert provider.get_daily_returns() == (Decimal("-1.9231"),)  # the first day has no previous close: left out
    assert provider.get_max_drawdown() == 0
    assert provider.days == [(DAY1, Decimal(4)), (DAY2, Decimal("-1.9231")), (DAY3, Decimal("2.9411"))]


def test_cash_flows_are_neither_profit_nor_loss_and_move_the_peak() -> None:
    provider = HistoryProvider(lookback=20)
    provider.advance(DAY1, Decimal(100), Decimal(7))  # the first row's flow is already in its value
    provider.advance(DAY2, Decimal(150), Decimal(50))
    assert (provider.get_daily_pnl(), provider.get_max_drawdown()) == (0, 0)
    provider.advance(DAY2, Decimal(140), Decimal(0))
    assert provider.get_daily_pnl() == Decimal(-10)
    assert provider.get_daily_pnl_pct() == Decimal("-6.6667")  # of the day's 150
    assert provider.get_max_drawdown() == Decimal("-6.6667")
    provider.advance(DAY3, Decimal(100), Decimal(-40))
    assert provider.get_daily_pnl() == 0
    assert provider.get_max_drawdown() == Decimal("-9.0910")  # 10 under a peak of 110


def test_returns_keep_the_lookback() -> None:
    provider = HistoryProvider(lookback=3)
    for offset, value in enumerate((100, 101, 102, 103, 104, 105, 106)):
        provider.advance(DAY1 + dt.timedelta(days=offset), Decimal(value), Decimal(0))
    assert len(provider.get_daily_returns()) == 3
    assert provider.get_daily_returns()[-1] == percent_change(Decimal(1), Decimal(104))


def test_percent_change_rounds_towards_the_loss() -> None:
    assert percent_change(Decimal(-1), Decimal(3)) == Decimal("-33.3334")
    assert percent_change(Decimal(1), Decimal(3)) == Decimal("33.3333")
    assert percent_change(Decimal(1), Decimal(0)) == 0
