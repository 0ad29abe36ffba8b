"""replay(): drive the real TradingCircuitBreakers through an account's history on a simulated clock.

For each row, in order:

1. The clock moves to the row's time (monotonic and wall clock together). When the row starts a
   new trading day, the clock stops first at the start of the day after the previous row's, where
   the day halts lift (the breakers decide, asked for their ``trading_state``), and at the instant a
   kill switch is due to be reset (``reset_after_days``), where ``reset_kill_switch(key)`` runs.
2. The desk's state just before the row decides the "with breakers" curve: while ACTIVE it earns
   the row's return like the history; while REDUCING or HALTED it stands flat (cash flows still
   count).
3. The provider takes the row, a cash flow goes to ``record_cash_flow``, and ``refresh()`` (what
   ``check_now()`` does, without building a status) evaluates the reading: once per row, every row.

The breakers watch the history as it happened: a halted desk's strategy is assumed to keep running
on paper, so every breach of a limit in the history shows, halted or not.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections import Counter
from decimal import Decimal
from typing import Iterable, List, Optional, Set, Tuple, Union

from circuit_breakers.clock import ManualClock
from circuit_breakers.config import check_int
from circuit_breakers.errors import ConfigTypeError
from circuit_breakers.replay.history import CsvHistory, HistoryRow, Point, place, read_csv
from circuit_breakers.replay.provider import HistoryProvider, percent_change
from circuit_breakers.replay.result import Curve, EventKind, ReplayEvent, ReplayResult, Span, Summary
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.config_file import LimitsFile
from circuit_breakers.trading.orders import OrderLimits, TradingState

History = Union[str, "os.PathLike[str]", CsvHistory, Iterable[HistoryRow]]
"""A CSV path, a CSV already read (:func:`~circuit_breakers.replay.history.read_csv`), or rows."""

_ACTIVE = TradingState.ACTIVE
_ZERO = Decimal(0)
_ONE_DAY = dt.timedelta(days=1)
_COOLED = "cleared after the cooldown (auto_recovery)"  # the one way a halt lifts within a trading day


def replay(
    history: History,
    config: Union[TradingBreakerConfig, LimitsFile, None] = None,
    *,
    order_limits: Optional[OrderLimits] = None,
    reset_after_days: Optional[int] = None,
) -> ReplayResult:
    """Replay ``history`` through TradingCircuitBreakers built with ``config``; return what happened.

    ``config`` is a TradingBreakerConfig or what :func:`~circuit_breakers.load_config` returns (its
    order limits then apply unless ``order_limits`` is given; they decide which halts leave the desk
    REDUCING rather than HALTED). ``reset_after_days``: reset the kill switch with its key at the
    start of the trading day that many days after the one it engaged on (default: never).

    Raises HistoryError (a ConfigError) naming the line for a bad row, ConfigTypeError for a bad
    argument. Runs on the calling thread, no sleeps; blocks while a CSV path is read.
    """
    if isinstance(config, LimitsFile):
        trading, orders = config.trading, config.orders if order_limits is None else order_limits
    elif config is None or isinstance(config, TradingBreakerConfig):
        trading = TradingBreakerConfig() if config is None else config
        orders = OrderLimits() if order_limits is None else order_limits
    else:
        raise ConfigTypeError(f"config must be a TradingBreakerConfig or a LimitsFile, got {config!r}")
    if reset_after_days is not None:
        check_int("reset_after_days", reset_after_days, 1)
    if isinstance(history, (str, os.PathLike)):
        history = read_csv(history)
    if isinstance(history, CsvHistory):
        points = place(history.rows, trading, source=history.source, lines=history.lines)
        source = history.source
    else:
        points, source = place(history, trading), "history"
    return _Replay(points, trading, orders, reset_after_days, source).run()


class _Replay:
    """One run over placed points. Built and used once."""

    def __init__(
        self,
        points: List[Point],
        config: TradingBreakerConfig,
        orders: OrderLimits,
        reset_after_days: Optional[int],
        source: str,
    ) -> None:
        self.points, self.config, self.orders, self.source = points, config, orders, source
        self.reset_after_days = reset_after_days
        self.now = points[0].at
        self.clock = ManualClock(start=self.now)
        self.provider = HistoryProvider(config.volatility_lookback_days)
        # A key only when the replay resets the kill switch: hashing it costs about 0.1 s.
        self.key = secrets.token_urlsafe(16) if reset_after_days is not None else None
        self.breakers = TradingCircuitBreakers(
            self.provider, config, reset_key=self.key, clock=self.clock, order_limits=orders
        )
        self.events: List[ReplayEvent] = []
        self.reset_at: Optional[dt.datetime] = None
        self.lifting = _COOLED  # why a halt lifts, for the RECOVERED event of the current step
        self.state = _ACTIVE
        self.since = self.now
        self.spans: List[Span] = []
        breakers = self.breakers
        breakers.register_warning_callback(lambda name, message: self._event(EventKind.WARNING, name, message))
        breakers.register_trip_callback(lambda name, reason: self._event(EventKind.TRIP, name, reason))
        breakers.register_recovery_callback(lambda name: self._event(EventKind.RECOVERED, name, self.lifting))
        breakers.register_kill_handler(self._killed)

    def _event(self, kind: EventKind, breaker: str, reason: str) -> None:
        self.events.append(ReplayEvent(self.now, kind, breaker, reason))

    def _killed(self, reason: str) -> None:
        self._event(EventKind.KILL, "max_drawdown", reason)
        if self.reset_after_days is not None:
            day = self.config.trading_day(self.now)
            self.reset_at = self.config.day_start(day + dt.timedelta(days=self.reset_after_days))

    def _set_state(self, state: TradingState) -> None:
        if state is not self.state:
            if self.state is not _ACTIVE and self.now > self.since:
                self.spans.append(Span(self.since, self.now, self.state))
            self.state, self.since = state, self.now

    def _step(self, instant: dt.datetime, lifting: str) -> None:
        """Move the clock to ``instant`` and let the breakers apply their time rules there."""
        self.clock.advance((instant - self.now).total_seconds())
        self.clock.set_wall(instant)  # exact, whatever the float seconds rounded to
        self.now = instant
        if self.state is not _ACTIVE:  # only a halt can lift with time; an ACTIVE desk stays so
            self.lifting = lifting
            self._set_state(self.breakers.trading_state)

    def run(self) -> ReplayResult:
        config, provider, breakers, events = self.config, self.provider, self.breakers, self.events
        equity: List[Decimal] = []
        with_breakers: List[Decimal] = []
        drawdown: List[Decimal] = []
        drawdown_with: List[Decimal] = []
        pnl: List[Decimal] = []
        halted_days: Set[dt.date] = set()
        previous: Optional[Point] = None
        wealth = peak = _ZERO
        try:
            for point in self.points:
                if previous is None:
                    wealth = peak = point.equity
                else:
                    if point.day > previous.day:
                        self._step(config.day_start(previous.day + _ONE_DAY), f"trading day {previous.day} ended")
                    if self.reset_at is not None and self.key is not None and self.reset_at <= point.at:
                        self._reset_kill_switch(self.reset_at, self.key)
                    self._step(point.at, _COOLED)
                    if self.state is _ACTIVE:
                        wealth += wealth * (point.equity - previous.equity - point.cash_flow) / previous.equity
                    wealth += point.cash_flow
                    peak += point.cash_flow
                before = self.state
                provider.advance(point.day, point.equity, point.cash_flow)
                if previous is not None and point.cash_flow:
                    breakers.record_cash_flow(point.cash_flow)
                seen = len(events)
                self.lifting = _COOLED
                breakers.refresh()
                if len(events) != seen:
                    self._set_state(breakers.trading_state)
                if before is not _ACTIVE or self.state is not _ACTIVE:
                    halted_days.add(point.day)
                peak = max(peak, wealth)
                equity.append(point.equity)
                with_breakers.append(wealth)
                drawdown.append(provider.drawdown_pct)
                drawdown_with.append(percent_change(wealth - peak, peak) if wealth < peak else _ZERO)
                pnl.append(provider.pnl_pct)
                previous = point
        finally:
            breakers.close()
        self._set_state(_ACTIVE)  # closes an open span at the last row
        times = [point.at for point in self.points]
        flows = [_ZERO, *(point.cash_flow for point in self.points[1:])]
        curve = Curve(times, equity, with_breakers, drawdown, drawdown_with, pnl, flows)
        return ReplayResult(
            events=tuple(self.events),
            summary=self._summary(curve, len(halted_days)),
            curve=curve,
            spans=tuple(self.spans),
            config=config,
            orders=self.orders,
            reset_after_days=self.reset_after_days,
            date_only=all(point.date_only for point in self.points),
            source=self.source,
        )

    def _reset_kill_switch(self, reset_at: dt.datetime, key: str) -> None:
        self.reset_at = None
        lifting = f"kill switch reset with its key, {self.reset_after_days} days after it engaged"
        self._step(reset_at, lifting)
        self.lifting = lifting
        self.breakers.reset_kill_switch(key, actor="replay")
        self._set_state(self.breakers.trading_state)

    def _summary(self, curve: Curve, days_halted: int) -> Summary:
        first, last = self.points[0].at, self.points[-1].at
        halted = sum(((span.end - span.start) for span in self.spans), dt.timedelta())
        span = (last - first).total_seconds()
        trips = Counter(event.breaker for event in self.events if event.kind is EventKind.TRIP)
        worst: Tuple[dt.date, Decimal] = min(self.provider.days, key=lambda day: day[1])
        return Summary(
            rows=len(self.points),
            first=first,
            last=last,
            trading_days=len(self.provider.days),
            trips=dict(sorted(trips.items())),
            kills=sum(1 for event in self.events if event.kind is EventKind.KILL),
            days_halted=days_halted,
            halted_share=halted.total_seconds() / span if span > 0 else 0.0,
            worst_day=worst,
            max_drawdown_pct=min(curve.drawdown_pct),
            max_drawdown_with_breakers_pct=min(curve.drawdown_with_breakers_pct),
            final_equity=curve.equity[-1],
            final_equity_with_breakers=curve.equity_with_breakers[-1],
            net_cash_flow=sum(curve.cash_flow, _ZERO),
        )
