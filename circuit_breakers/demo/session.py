"""A deterministic simulated trading session, run by ``python -m circuit_breakers demo``.

A seeded random walk moves a portfolio; a fake blocking broker has an injected outage; a
ManualClock runs the session at simulation speed. Two days: day one shows the rate limit, the
connection breaker and the daily-loss halt; day two a crash engages the kill switch, which only
the reset key releases. Output goes to the ``write`` function given (print, a list, a log).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Callable, Dict, List, Optional, Sequence

from circuit_breakers.clock import ManualClock
from circuit_breakers.errors import TradingHalted
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.orders import Order, OrderLimits, Side

CENT = Decimal("0.01")
NEW_YORK_OPEN = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.timezone.utc)  # Monday 09:30 in New York
RESET_KEY = "demo-reset-key"


class SimPortfolio:
    """A PortfolioProvider over a simulated account: value, day P&L, drawdown, positions, prices."""

    def __init__(self, value: Decimal) -> None:
        self.value = value
        self.day_open = value
        self.peak = value
        self.price = Decimal("512.30")
        self.shares: Dict[str, Decimal] = {"SPY": Decimal(100)}
        self.returns: List[Decimal] = [Decimal(x) for x in ("0.4", "-0.6", "0.9", "-0.3", "0.5", "-1.1", "0.7", "0.2")]

    def move(self, pct: Decimal) -> None:
        self.value = (self.value * (1 + pct / 100)).quantize(CENT)
        self.price = (self.price * (1 + pct / 100)).quantize(CENT)
        self.peak = max(self.peak, self.value)

    def fill(self, order: Order) -> None:
        signed = order.quantity if order.side is Side.BUY else -order.quantity
        self.shares[order.symbol] = self.shares.get(order.symbol, Decimal(0)) + signed

    def new_day(self) -> None:
        self.returns.append(self.get_daily_pnl_pct())
        self.day_open = self.value

    def get_total_value(self) -> Decimal:
        return self.value

    def get_daily_pnl(self) -> Decimal:
        return self.value - self.day_open

    def get_daily_pnl_pct(self) -> Decimal:
        return ((self.value / self.day_open - 1) * 100).quantize(CENT)

    def get_max_drawdown(self) -> Decimal:
        return ((self.value / self.peak - 1) * 100).quantize(CENT)

    def get_position_concentration(self, symbol: str) -> Decimal:
        return (abs(self.get_position_quantity(symbol)) * self.price / self.value * 100).quantize(CENT)

    def get_position_quantity(self, symbol: str) -> Decimal:
        return self.shares.get(symbol, Decimal(0))

    def get_reference_price(self, symbol: str) -> Decimal:
        return self.price

    def get_daily_returns(self) -> Sequence[Decimal]:
        return list(self.returns)


class FakeBroker:
    """A blocking broker client whose connection fails while ``down`` is set."""

    def __init__(self, portfolio: SimPortfolio) -> None:
        self.portfolio = portfolio
        self.down = False
        self.filled = 0

    def place_order(self, order: Order) -> str:
        if self.down:
            raise ConnectionRefusedError("broker gateway: connection refused")
        self.filled += 1
        self.portfolio.fill(order)
        return f"ord-{self.filled}"


class _Session:
    """The simulated desk: clock, portfolio, broker, breakers, and a timeline writer."""

    def __init__(self, write: Callable[[str], None], seed: int) -> None:
        self.write = write
        self.rng = random.Random(seed)
        self.clock = ManualClock(start=NEW_YORK_OPEN)
        self.portfolio = SimPortfolio(Decimal("1000000.00"))
        self.broker = FakeBroker(self.portfolio)
        self.config = TradingBreakerConfig(max_orders_per_minute=10, connection_timeout_seconds=20)
        limits = OrderLimits(price_collar_pct=Decimal(2), duplicate_window_seconds=30, max_quantity=Decimal(1000))
        self.breakers = TradingCircuitBreakers(
            self.portfolio, self.config, reset_key=RESET_KEY, clock=self.clock, order_limits=limits
        )
        self.breakers.register_trip_callback(lambda name, reason: self.log("TRIP", f"{name}: {reason}"))
        self.breakers.register_warning_callback(lambda name, message: self.log("WARNING", f"{name}: {message}"))
        self.breakers.register_recovery_callback(lambda name: self.log("RECOVERED", name))
        self.breakers.register_kill_handler(lambda reason: self.log("KILL", "cancelling all working orders"))
        self.sent = 0
        self.last: Optional[Order] = None

    def log(self, kind: str, text: str) -> None:
        local = self.clock.now().astimezone(self.config.zone)
        self.write(f"{local:%a %H:%M:%S}  {kind:<9} {text}")

    def order(self, side: Side, quantity: int, price: Optional[Decimal] = None) -> Order:
        self.sent += 1
        limit = price if price is not None else self.portfolio.price + Decimal(self.rng.randint(-5, 5)) / 100
        return Order("SPY", side, Decimal(quantity), limit, client_order_id=f"c{self.sent}")

    def try_order(self, order: Order) -> None:
        text = f"{order.side.value.upper()} {order.quantity} {order.symbol} @ {order.price}"
        try:
            with self.breakers.trade_guard(order):
                try:
                    broker_id = self.broker.place_order(order)
                except ConnectionError as exc:  # told here, before the TRIP it may cause
                    self.log("BROKER", f"{text}: failed: {exc}")
                    raise
        except TradingHalted as refused:  # OrderRejected included
            self.log("REFUSED", f"{text}: {'; '.join(refused.reasons)}")
            return
        except ConnectionRefusedError:
            return  # it never left: trade_guard already released it (no pending exposure, no duplicate)
        self.breakers.order_filled(str(order.client_order_id), order.quantity)
        self.last = order
        self.log("ORDER", f"{text}: filled as {broker_id}")

    def new_day(self, days: int) -> None:
        # Both clocks move overnight: a day halt lifts only when the wall and the monotonic clock agree.
        target = NEW_YORK_OPEN + dt.timedelta(days=days, seconds=60)
        self.clock.advance((target - self.clock.now()).total_seconds())
        self.portfolio.new_day()

    def day_one(self) -> None:
        self.write(
            "Day 1: orders every 4 s (limit 10/min), a fat finger, a resend, a broker outage, a losing afternoon"
        )
        self.breakers.check_now()
        for second in range(0, 330, 4):
            if second in (100, 140):
                self.broker.down = second == 100
                self.log("SCRIPT", "broker outage begins" if self.broker.down else "broker is back")
            self.portfolio.move(Decimal(str(round(self.rng.gauss(0, 0.02), 3))))
            if second in (200, 260, 300):
                self.portfolio.move(Decimal("-0.8"))
            self.breakers.check_now()
            if second == 64 and self.last is not None:
                self.try_order(self.order(Side.BUY, int(self.last.quantity), self.last.price))  # a resend
            elif second == 68:
                self.try_order(self.order(Side.BUY, 10, self.portfolio.price * 10))  # a price typed 10x too high
            elif second < 200 or second % 20 == 0:
                self.try_order(self.order(Side.BUY, 10 if second < 200 else 500))  # big ones meet the limit
            self.clock.advance(4)
        self.write("")
        self.log("STATUS", f"trading_state={self.breakers.trading_state.value}: only risk-reducing orders pass")
        self.try_order(self.order(Side.BUY, 10))
        self.try_order(self.order(Side.SELL, 100))

    def day_two(self) -> None:
        self.write("Day 2: the halt lifts at the new trading day; a crash engages the kill switch")
        self.new_day(1)
        self.breakers.check_now()
        self.log("STATUS", f"trading_state={self.breakers.trading_state.value}")
        for _ in range(12):
            self.portfolio.move(Decimal("-1.0") + Decimal(str(round(self.rng.gauss(0, 0.05), 3))))
            self.breakers.check_now()
            self.clock.advance(30)
        self.try_order(self.order(Side.SELL, 10))
        for key in ("guess", RESET_KEY):
            shown = "<right key>" if key == RESET_KEY else "<wrong key>"
            self.log("RESET", f"reset_kill_switch({shown})")  # told before the RECOVERED it causes
            if not self.breakers.reset_kill_switch(key, actor="risk-officer"):
                self.log("REFUSED", "wrong key: the kill switch holds")
        self.log(
            "STATUS",
            f"kill switch active={self.breakers.kill_switch_active}; "
            f"trading_state={self.breakers.trading_state.value} (the day halts still hold)",
        )

    def day_three(self) -> None:
        self.write("Day 3: a new trading day; drawdown is now measured from the value at the reset")
        self.new_day(2)
        self.portfolio.move(Decimal("0.3"))
        self.breakers.check_now()
        self.log("STATUS", f"trading_state={self.breakers.trading_state.value}")
        self.try_order(self.order(Side.BUY, 10))


def run_demo(write: Callable[[str], None], seed: int = 7) -> TradingCircuitBreakers:
    """Run the session, writing one line per event; return the breakers for inspection."""
    session = _Session(write, seed)
    for day in (session.day_one, session.day_two, session.day_three):
        day()
        write("")
    write(status_table(session.breakers))
    return session.breakers


def status_table(breakers: TradingCircuitBreakers) -> str:
    """The status of every breaker as a fixed-width table."""
    status = breakers.get_status()
    rows = [("breaker", "state", "value", "limit", "last trip")]
    units = {"daily_loss": "%", "max_drawdown": "%", "volatility": "std devs", "position_concentration": "%"}
    for name, unit in units.items():
        detail = status.details[name]
        state = "TRIPPED" if detail["state"] == "tripped" else detail["state"]
        value = "-" if detail["value"] is None else f"{detail['value']:.2f} {unit}"
        limit = "-" if detail["limit"] is None else f"{detail['limit']:.2f} {unit}"  # one precision, as the values
        rows.append((name, state, value, limit, detail["last_trip_reason"] or "-"))
    connection = status.details["connection"]
    failures = f"{connection['failures_in_window']} failures in window"
    rows.append(("connection", connection["state"], failures, "-", connection["last_failure_message"] or "-"))
    orders = f"{status.orders_last_minute}/min, {status.orders_last_hour}/h"
    limits = f"{breakers.config.max_orders_per_minute}/min, {breakers.config.max_orders_per_hour}/h"
    rows.append(("rate_limit", "ok", orders, limits, "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"can_trade: {status.can_trade}")
    return "\n".join(lines)
