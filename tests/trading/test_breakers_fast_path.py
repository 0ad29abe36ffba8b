"""TradingCircuitBreakers.can_trade()'s lock-free path: it must answer as the locked path would.

The cases where they could differ: a day halt at the trading-day boundary, auto-recovery after the
cooldown, a manual reset.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers


class LossProvider:
    def __init__(self) -> None:
        self.pnl_pct = Decimal("-3")

    def get_total_value(self) -> Decimal:
        return Decimal(1_000_000)

    def get_daily_pnl(self) -> Decimal:
        return self.pnl_pct * Decimal(10_000)

    def get_daily_pnl_pct(self) -> Decimal:
        return self.pnl_pct

    def get_max_drawdown(self) -> Decimal:
        return Decimal(0)

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal(0)


def test_can_trade_fast_path_holds_a_day_halt_until_the_next_trading_day() -> None:
    # 2026-03-06 is a Friday; the day resets at 00:00 America/New_York (05:00 UTC in winter).
    clock = ManualClock(start=dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.timezone.utc))
    provider = LossProvider()
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(), clock=clock)
    breakers.check_now()
    assert not breakers.can_trade()
    provider.pnl_pct = Decimal("0")
    breakers.check_now()
    clock.advance((dt.datetime(2026, 3, 7, 4, 59, 59, tzinfo=dt.timezone.utc) - clock.now()).total_seconds())
    assert not breakers.can_trade()  # still Friday in New York
    clock.advance(1)
    assert breakers.can_trade()  # Saturday has begun by both clocks: the halt lifts


def test_can_trade_fast_path_lets_auto_recovery_decide_after_the_cooldown() -> None:
    clock = ManualClock(start=dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.timezone.utc))
    provider = LossProvider()
    config = TradingBreakerConfig(auto_recovery=True, cooldown_seconds=300)
    breakers = TradingCircuitBreakers(provider, config, clock=clock)
    breakers.check_now()
    provider.pnl_pct = Decimal("0")
    breakers.check_now()
    clock.advance(299)
    assert not breakers.can_trade()
    clock.advance(1)
    assert breakers.can_trade()


def test_can_trade_fast_path_sees_a_manual_reset_at_once() -> None:
    clock = ManualClock(start=dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.timezone.utc))
    provider = LossProvider()
    breakers = TradingCircuitBreakers(provider, TradingBreakerConfig(), clock=clock)
    breakers.check_now()
    assert not breakers.can_trade()
    provider.pnl_pct = Decimal("0")
    breakers.reset_breaker("daily_loss")
    assert breakers.can_trade()
