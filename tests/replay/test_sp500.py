"""A real index history: the S&P 500's daily closes 1999-2018 (shipped by ``arch``), replayed with the
default limits. The expected trips come from a simple loop over the closes, written here, not from
the library: a close-to-close fall of 2 % or more trips the daily-loss limit; a day more than 3
sample standard deviations from the mean of the previous 20 days' returns (5 at least) trips the
volatility breaker; the first close 10 % or more under the running peak engages the kill switch.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_FLOOR, Decimal
from typing import List, Tuple

from circuit_breakers import TradingBreakerConfig
from circuit_breakers.replay import EventKind, HistoryRow, replay
from tests.replay.histories import require

Close = Tuple[dt.date, Decimal]


def closes() -> List[Close]:
    sp500 = require("arch.data.sp500", "pip install arch").load()
    column = sp500["Adj Close"]
    return [(stamp.date(), Decimal(f"{value:.2f}")) for stamp, value in zip(column.index, column.tolist())]


def pct(new: Decimal, old: Decimal) -> Decimal:
    """Percent change, 4 places rounded down: the documented rounding of the replay's figures."""
    return ((new - old) * 100 / old).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)


def expected_trips(prices: List[Close]) -> Tuple[int, int, dt.date, List[float]]:
    """(daily-loss trips, volatility trips, the kill switch's day, every |z| seen) from the closes alone."""
    returns: List[Decimal] = []
    daily_loss = volatility = 0
    zs: List[float] = []
    kill_day = None
    peak = prices[0][1]
    for (day, close), (_, previous) in zip(prices[1:], prices):
        today = pct(close, previous)
        if today <= -2:
            daily_loss += 1
        recent = [float(r) for r in returns[-20:]]
        if len(recent) >= 5:
            mean = sum(recent) / len(recent)
            sd = math.sqrt(sum((r - mean) ** 2 for r in recent) / (len(recent) - 1))
            if sd > 0:
                z = abs((float(today) - mean) / sd)
                zs.append(z)
                volatility += z > 3
        returns.append(today)
        peak = max(peak, close)
        if kill_day is None and pct(close, peak) <= -10:
            kill_day = day
    assert kill_day is not None
    return daily_loss, volatility, kill_day, zs


def test_sp500_trips_match_a_loop_over_the_closes() -> None:
    prices = closes()
    assert len(prices) > 5000
    daily_loss, volatility, kill_day, zs = expected_trips(prices)
    # No day lies so close to 3 standard deviations that rounding could decide it either way.
    assert min(abs(z - 3) for z in zs) > 1e-4

    result = replay([HistoryRow(day, close) for day, close in prices], TradingBreakerConfig())

    assert result.summary.trips == {"daily_loss": daily_loss, "max_drawdown": 1, "volatility": volatility}
    (kill,) = [event.time for event in result.events if event.kind is EventKind.KILL]
    assert TradingBreakerConfig().trading_day(kill) == kill_day
    assert result.summary.rows == len(prices)
    assert result.summary.final_equity == prices[-1][1]
    assert result.summary.final_equity_with_breakers == dict(prices)[kill_day]  # never reset: flat from the kill on
    assert daily_loss > 100  # the loop found the crises of 2000-2002 and 2008
