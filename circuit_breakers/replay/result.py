"""What a replay returns: its events, its curves, the halted spans and a summary, as text or data."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.orders import OrderLimits, TradingState


class EventKind(str, enum.Enum):
    """What happened: a warning level crossed, a halt, a halt lifted, the kill switch engaged."""

    WARNING = "WARNING"
    TRIP = "TRIP"
    RECOVERED = "RECOVERED"
    KILL = "KILL"


@dataclass(frozen=True)
class ReplayEvent:
    """One callback of the breakers during a replay, at the simulated time it fired (UTC)."""

    time: dt.datetime
    kind: EventKind
    breaker: str
    reason: str


@dataclass(frozen=True)
class Span:
    """A stretch of time when the desk could not trade freely: ``state`` is REDUCING or HALTED."""

    start: dt.datetime
    end: dt.datetime
    state: TradingState


@dataclass(frozen=True)
class Curve:
    """The replayed series, one entry per row: time (UTC), equity and drawdown (percent, <= 0),
    as the history went and as it would have gone with the breakers (flat while not ACTIVE), and
    the history's daily P&L percent and cash flow at each row."""

    times: Sequence[dt.datetime]
    equity: Sequence[Decimal]
    equity_with_breakers: Sequence[Decimal]
    drawdown_pct: Sequence[Decimal]
    drawdown_with_breakers_pct: Sequence[Decimal]
    daily_pnl_pct: Sequence[Decimal]
    cash_flow: Sequence[Decimal]


@dataclass(frozen=True)
class Summary:
    """The figures of a replay.

    ``trips`` counts TRIP events by breaker (the kill switch's as ``max_drawdown``); ``days_halted``
    the trading days with rows on which the desk was REDUCING or HALTED at some row;
    ``halted_share`` the fraction of the time from the first row to the last spent so (0 to 1).
    ``worst_day`` is the history's worst daily P&L (trading day, percent).
    """

    rows: int
    first: dt.datetime
    last: dt.datetime
    trading_days: int
    trips: Mapping[str, int]
    kills: int
    days_halted: int
    halted_share: float
    worst_day: Tuple[dt.date, Decimal]
    max_drawdown_pct: Decimal
    max_drawdown_with_breakers_pct: Decimal
    final_equity: Decimal
    final_equity_with_breakers: Decimal
    net_cash_flow: Decimal

    @property
    def total_trips(self) -> int:
        """Every TRIP, all breakers together."""
        return sum(self.trips.values())


_CENTS = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    """``value`` rounded to cents, for display."""
    return value.quantize(_CENTS)


@dataclass(frozen=True)
class ReplayResult:
    """Everything a replay found. ``events`` are in time order; ``spans`` cover every moment not ACTIVE.

    ``date_only`` is True when every row was a date (times are then shown as trading days).
    """

    events: Tuple[ReplayEvent, ...]
    summary: Summary
    curve: Curve
    spans: Tuple[Span, ...]
    config: TradingBreakerConfig
    orders: OrderLimits
    reset_after_days: Optional[int]
    date_only: bool
    source: str

    def show_time(self, time: dt.datetime) -> str:
        """``time`` as the report shows it: the trading day for a daily history, else local ISO time."""
        if self.date_only:
            return self.config.trading_day(time).isoformat()
        return time.astimezone(self.config.zone).isoformat(sep=" ", timespec="seconds")

    def to_dict(self) -> Dict[str, Any]:
        """The events and the summary as JSON-ready data (Decimals as strings, times in ISO 8601)."""
        summary = self.summary
        worst_day, worst_pct = summary.worst_day
        return {
            "history": self.source,
            "trading_day_timezone": self.config.trading_day_timezone,
            "reset_after_days": self.reset_after_days,
            "events": [
                {
                    "time": event.time.astimezone(self.config.zone).isoformat(),
                    "trading_day": self.config.trading_day(event.time).isoformat(),
                    "kind": event.kind.value,
                    "breaker": event.breaker,
                    "reason": event.reason,
                }
                for event in self.events
            ],
            "summary": {
                "rows": summary.rows,
                "first": summary.first.astimezone(self.config.zone).isoformat(),
                "last": summary.last.astimezone(self.config.zone).isoformat(),
                "trading_days": summary.trading_days,
                "trips": dict(summary.trips),
                "total_trips": summary.total_trips,
                "kills": summary.kills,
                "days_halted": summary.days_halted,
                "halted_share": round(summary.halted_share, 6),
                "worst_day": {"trading_day": worst_day.isoformat(), "pnl_pct": str(worst_pct)},
                "max_drawdown_pct": str(summary.max_drawdown_pct),
                "max_drawdown_with_breakers_pct": str(summary.max_drawdown_with_breakers_pct),
                "final_equity": str(money(summary.final_equity)),
                "final_equity_with_breakers": str(money(summary.final_equity_with_breakers)),
                "net_cash_flow": str(money(summary.net_cash_flow)),
            },
        }

    def report(self) -> List[str]:
        """The events, one line each, then the summary: what ``circuit-breakers replay`` prints."""
        lines = [
            f"{self.show_time(event.time):<25}  {event.kind.value:<9}  {event.breaker:<14}  {event.reason}".rstrip()
            for event in self.events
        ]
        if not lines:
            lines.append("no warnings, trips or halts")
        summary = self.summary
        worst_day, worst_pct = summary.worst_day
        trips = ", ".join(f"{name} {count}" for name, count in summary.trips.items()) or "none"
        share = f"{summary.days_halted / summary.trading_days:.1%}" if summary.trading_days else "n/a"
        reset = "never" if self.reset_after_days is None else f"{self.reset_after_days} days after it engages"
        lines += [
            "",
            "Summary",
            f"  rows replayed        {summary.rows:,} ({self.show_time(summary.first)} to "
            f"{self.show_time(summary.last)}, {summary.trading_days:,} trading days)",
            f"  trips                {trips}",
            f"  kill switch reset    {reset}",
            f"  trading days halted  {summary.days_halted:,} of {summary.trading_days:,} ({share})",
            f"  time halted          {summary.halted_share:.1%} of the time from the first row to the last",
            f"  worst day            {worst_day.isoformat()}: {worst_pct}%",
            f"  maximum drawdown     {summary.max_drawdown_pct}% without breakers, "
            f"{summary.max_drawdown_with_breakers_pct}% with",
            f"  final equity         {money(summary.final_equity):,} without breakers, "
            f"{money(summary.final_equity_with_breakers):,} with",
        ]
        if summary.net_cash_flow:
            lines.append(f"  net cash flow        {money(summary.net_cash_flow):+,} (deposits less withdrawals)")
        return lines
