"""HistoryProvider: the PortfolioProvider a replay feeds, computing each figure from the rows so far.

- Daily P&L: equity minus the previous trading day's last equity, minus the cash flows booked
  since (a deposit is not profit, a withdrawal not a loss). In percent of that day's starting
  value (previous close plus today's cash flows). The first trading day is measured from the first
  row.
- Drawdown: percent below the running peak of equity. A cash flow moves the peak by its amount,
  as ``TradingCircuitBreakers.record_cash_flow`` moves the breakers' own high-water mark.
- Daily returns: the final daily P&L percent of each completed trading day (oldest first, the
  first trading day left out: it has no previous close), for the volatility breaker.

Percentages are rounded to 4 decimal places towards the loss, as the library rounds its own.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from decimal import ROUND_FLOOR, Decimal
from typing import Deque, List, Optional, Tuple

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_PLACES = Decimal("0.0001")


def percent_change(change: Decimal, base: Decimal) -> Decimal:
    """``change`` in percent of ``base``, 4 places, rounded towards the loss; 0 when ``base`` <= 0."""
    if base <= 0:
        return _ZERO
    return (change * _HUNDRED / base).quantize(_PLACES, rounding=ROUND_FLOOR)


class HistoryProvider:
    """A PortfolioProvider over a history fed one row at a time with :meth:`advance`. Not thread-safe.

    Its methods only return what the last :meth:`advance` computed, so a reading costs nothing.
    ``days`` keeps (trading day, final daily P&L percent) of every trading day seen.
    """

    def __init__(self, lookback: int) -> None:
        self._lookback = lookback
        self._returns: Deque[Decimal] = deque(maxlen=lookback)
        self._returns_view: Tuple[Decimal, ...] = ()
        self.days: List[Tuple[dt.date, Decimal]] = []
        self._day: Optional[dt.date] = None
        self._day_open = _ZERO  # the previous trading day's last equity (the first row's, on day one)
        self._flows_today = _ZERO
        self._last_equity = _ZERO
        self._peak = _ZERO
        self.equity = _ZERO
        self.pnl = _ZERO
        self.pnl_pct = _ZERO
        self.drawdown_pct = _ZERO

    def advance(self, day: dt.date, equity: Decimal, cash_flow: Decimal) -> None:
        """Take the next row: its trading day, equity, and the cash flow booked with it."""
        if self._day is None:  # the first row: its cash flow is already in the starting value
            self._day, self._day_open, self._peak = day, equity, equity
            cash_flow = _ZERO
        elif day != self._day:
            self._complete_day()
            self._day, self._day_open, self._flows_today = day, self._last_equity, _ZERO
        self._flows_today += cash_flow
        self._peak += cash_flow
        self._peak = max(self._peak, equity)
        self.equity = self._last_equity = equity
        self.pnl = equity - self._day_open - self._flows_today
        self.pnl_pct = percent_change(self.pnl, self._day_open + self._flows_today)
        self.drawdown_pct = percent_change(equity - self._peak, self._peak) if equity < self._peak else _ZERO
        if self.days and self.days[-1][0] == day:
            self.days[-1] = (day, self.pnl_pct)
        else:
            self.days.append((day, self.pnl_pct))

    def _complete_day(self) -> None:
        if len(self.days) > 1:  # the first trading day has no previous close to measure from
            self._returns.append(self.days[-1][1])
            self._returns_view = tuple(self._returns)

    # --- PortfolioProvider -----------------------------------------------------------------------

    def get_total_value(self) -> Decimal:
        return self.equity

    def get_daily_pnl(self) -> Decimal:
        return self.pnl

    def get_daily_pnl_pct(self) -> Decimal:
        return self.pnl_pct

    def get_max_drawdown(self) -> Decimal:
        return self.drawdown_pct

    def get_position_concentration(self, symbol: str) -> Decimal:
        """A history has no positions: every symbol holds 0 %."""
        return _ZERO

    def get_daily_returns(self) -> Tuple[Decimal, ...]:
        """Completed trading days' P&L percent, oldest first, at most ``lookback`` of them."""
        return self._returns_view
