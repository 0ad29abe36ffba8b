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
from typing import Callable, Dict, List, Sequence

from circuit_breakers.clock import ManualClock
from circuit_breakers.errors import TradingHalted
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.config import TradingBreakerConfig

CENT = Decimal("0.01")
NEW_YORK_OPEN = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.timezone.utc)  # Monday 09:30 in New York
RESET_KEY = "demo-reset-key"


class SimPortfolio:
    """A PortfolioProvider over a simulated account: value, day P&L, drawdown, positions."""

    def __init__(self, value: Decimal) -> None:
        self.value = value
        self.day_open = value
        self.peak = value
        self.positions: Dict[str, Decimal] = {"SPY": value * Decimal("0.10")}
        self.returns: List[Decimal] = [Decimal(x) for x in ("0.4", "-0.6", "0.9", "-0.3", "0.5", "-1.1", "0.7", "0.2")]

    def move(self, pct: Decimal) -> None:
        self.value = (self.value * (1 + pct / 100)).quantize(CENT)
        self.peak = max(self.peak, self.value)

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
        return (self.positions.get(symbol, Decimal(0)) / self.value * 100).quantize(CENT)

    def get_daily_returns(self) -> Sequence[Decimal]:
        return list(self.returns)


class FakeBroker:
    """A blocking broker client whose connection fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.filled = 0

    def place_order(self, symbol: str, quantity: int) -> str:
        if self.down:
            raise ConnectionError("broker gateway: connection refused")
        self.filled += 1
        return f"ord-{self.filled}"


class _Session:
    """The simulated desk: clock, portfolio, broker, breakers, and a timeline writer."""

    def __init__(self, write: Callable[[str], None], seed: int) -> None:
        self.write = write
        self.rng = random.Random(seed)
        self.clock = ManualClock(start=NEW_YORK_OPEN)
        self.portfolio, self.broker = SimPortfolio(Decimal("1000000.00")), FakeBroker()
        self.config = TradingBreakerConfig(max_orders_per_minute=10, connection_timeout_seconds=20)
        self.breakers = TradingCircuitBreakers(self.portfolio, self.config, reset_key=RESET_KEY, clock=self.clock)
        self.breakers.register_trip_callback(lambda name, reason: self.log("TRIP", f"{name}: {reason}"))
        self.breakers.register_warning_callback(lambda name, message: self.log("WARNING", f"{name}: {message}"))
        self.breakers.register_recovery_callback(lambda name: self.log("RECOVERED", name))

    def log(self, kind: str, text: str) -> None:
        local = self.clock.now().astimezone(self.config.zone)
        self.write(f"{local:%a %H:%M:%S}  {kind:<9} {text}")

    def try_order(self, symbol: str, quantity: int) -> None:
        value = Decimal(quantity) * Decimal("512.30")
        try:
            with self.breakers.trade_guard(symbol, value):
                order_id = self.broker.place_order(symbol, quantity)
            self.log("ORDER", f"BUY {quantity} {symbol}: filled as {order_id}")
        except TradingHalted as halted:
            self.log("REFUSED", "; ".join(halted.reasons))
        except ConnectionError as exc:
            self.log("BROKER", f"order failed: {exc}")

    def new_day(self, days: int) -> None:
        self.clock.set_wall(NEW_YORK_OPEN + dt.timedelta(days=days))
        self.clock.advance(60)
        self.portfolio.new_day()

    def day_one(self) -> None:
        self.write("Day 1: orders every 4 s (limit 10/min), a broker outage, then a losing afternoon")
        self.breakers.check_now()
        for second in range(0, 330, 4):
            if second in (100, 140):
                self.broker.down = second == 100
                self.log("SCRIPT", "broker outage begins" if self.broker.down else "broker is back")
            self.portfolio.move(Decimal(str(round(self.rng.gauss(0, 0.02), 3))))
            if second in (200, 260, 300):
                self.portfolio.move(Decimal("-0.8"))
            self.breakers.check_now()
            if second < 200 or second % 20 == 0:
                self.try_order("SPY", 10 if second < 200 else 500)
            self.clock.advance(4)
        self.log("STATUS", f"can_trade={self.breakers.can_trade()}; {self.breakers.get_blocking_reasons()}")

    def day_two(self) -> None:
        self.write("Day 2: the halt lifts at the new trading day; a crash engages the kill switch")
        self.new_day(1)
        self.breakers.check_now()
        self.log("STATUS", f"can_trade={self.breakers.can_trade()}")
        for _ in range(12):
            self.portfolio.move(Decimal("-1.0") + Decimal(str(round(self.rng.gauss(0, 0.05), 3))))
            self.breakers.check_now()
            self.clock.advance(30)
        self.try_order("SPY", 10)
        for key in ("guess", RESET_KEY):
            accepted = self.breakers.reset_kill_switch(key, actor="risk-officer")
            shown = "<right key>" if key == RESET_KEY else "<wrong key>"
            self.log("RESET", f"reset_kill_switch({shown}) -> {accepted}")
        self.log("STATUS", f"kill switch active={self.breakers.kill_switch_active}; still blocked by the day halts")

    def day_three(self) -> None:
        self.write("Day 3: a new trading day; drawdown is now measured from the value at the reset")
        self.new_day(2)
        self.portfolio.move(Decimal("0.3"))
        self.breakers.check_now()
        self.log("STATUS", f"can_trade={self.breakers.can_trade()}")
        self.try_order("SPY", 10)


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
    for name in ("daily_loss", "max_drawdown", "volatility", "position_concentration"):
        detail = status.details[name]
        state = "TRIPPED" if detail["tripped"] else ("warning" if detail["warning"] else "ok")
        rows.append(
            (
                name,
                state,
                "-" if detail["value"] is None else str(detail["value"]),
                str(detail["limit"]),
                detail["last_trip_reason"] or "-",
            )
        )
    connection = status.details["connection"]
    rows.append(("connection", connection["state"], f"{connection['failed_requests']} failures", "-", "-"))
    rows.append(("rate_limit", "ok", f"{status.orders_last_minute}/min {status.orders_last_hour}/h", "-", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"can_trade: {status.can_trade}")
    return "\n".join(lines)
