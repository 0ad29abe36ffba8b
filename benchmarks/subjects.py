"""What the benchmarks call: the trivial protected function, the lock baseline, a counting provider,
and builders of our hot paths (shared by the cases and by ``run.py --profile``)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Callable, Dict, Optional, Tuple

from harness import Loop, call_loop, catch_loop, with_loop

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerManager,
    CircuitOpenException,
    Limit,
    RateLimiter,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    circuit_breaker,
)


def trivial() -> int:
    """The protected function of every closed-path figure: as cheap as a Python call gets."""
    return 1


def one_ms_call() -> None:
    """A blocking 1 ms call (a stand-in for a broker round trip)."""
    time.sleep(0.001)


def lock_baseline(func: Callable[[], int]) -> Callable[[], int]:
    """The cheapest thread-safe wrapper worth the name: ``with lock: counter += 1; return f()``."""
    lock = threading.Lock()
    counter = 0

    def wrapped() -> int:
        nonlocal counter
        with lock:
            counter += 1
        return func()

    return wrapped


class CountingProvider:
    """An in-memory PortfolioProvider that counts every call made to it."""

    def __init__(self, daily_pnl_pct: Decimal = Decimal("-0.5")) -> None:
        self.calls = 0
        self.daily_pnl_pct = daily_pnl_pct

    def get_total_value(self) -> Decimal:
        self.calls += 1
        return Decimal("1000000")

    def get_daily_pnl(self) -> Decimal:
        self.calls += 1
        return self.daily_pnl_pct * Decimal("10000")

    def get_daily_pnl_pct(self) -> Decimal:
        self.calls += 1
        return self.daily_pnl_pct

    def get_max_drawdown(self) -> Decimal:
        self.calls += 1
        return Decimal("-3.0")

    def get_position_concentration(self, symbol: str) -> Decimal:
        self.calls += 1
        return Decimal("12.0")


TRIPPED_PNL_PCT = Decimal("-3.0")
"""Below the default daily loss limit (-2 %): one check_now() latches the daily_loss breaker."""


def trading(
    *, tripped: bool = False, orders_per_minute: int = 10, orders_per_hour: int = 100, check_interval: float = 1.0
) -> Tuple[TradingCircuitBreakers, CountingProvider]:
    """A facade over a counting provider; with ``tripped``, daily_loss is latched by one check_now()."""
    provider = CountingProvider(TRIPPED_PNL_PCT if tripped else Decimal("-0.5"))
    config = TradingBreakerConfig(
        max_orders_per_minute=orders_per_minute,
        max_orders_per_hour=orders_per_hour,
        check_interval_seconds=check_interval,
    )
    breakers = TradingCircuitBreakers(provider, config)
    if tripped:
        breakers.check_now()
        if breakers.can_trade():
            raise AssertionError("a daily P&L below the limit did not halt trading")
    return breakers, provider


ADMIT_ALL = 10**9
"""A limit no benchmark reaches: every attempt is admitted."""


# --- our hot paths, by name (also the choices of ``run.py --profile``) ----------------------------


def _decorator() -> Loop:
    return call_loop(CircuitBreaker("profile_decorator")(trivial))


def _named_decorator() -> Loop:
    return call_loop(circuit_breaker("profile_named", manager=CircuitBreakerManager())(trivial))


def _call() -> Loop:
    return call_loop(CircuitBreaker("profile_call").call, trivial)


def _with() -> Loop:
    return with_loop(CircuitBreaker("profile_with"), trivial)


def _open_raise() -> Loop:
    breaker = CircuitBreaker("profile_open")
    protected = breaker(trivial)
    breaker.force_open()
    return catch_loop(protected, CircuitOpenException)


def _open_allow() -> Loop:
    breaker = CircuitBreaker("profile_allow")
    breaker.force_open()
    return call_loop(breaker.allow)


def _can_trade() -> Loop:
    return call_loop(trading()[0].can_trade)


def _can_trade_tripped() -> Loop:
    return call_loop(trading(tripped=True)[0].can_trade)


def _blocking_reasons_tripped() -> Loop:
    return call_loop(trading(tripped=True)[0].get_blocking_reasons)


def _try_acquire() -> Loop:
    return call_loop(RateLimiter(Limit(ADMIT_ALL, 60)).try_acquire)


def _try_acquire_refused() -> Loop:
    limiter = RateLimiter(Limit(10, 60))
    while limiter.try_acquire():
        pass
    return call_loop(limiter.try_acquire)


def _record_order() -> Loop:
    return call_loop(trading(orders_per_minute=ADMIT_ALL, orders_per_hour=ADMIT_ALL)[0].record_order)


HOT_PATHS: Dict[str, Callable[[], Loop]] = {
    "decorator": _decorator,
    "named_decorator": _named_decorator,
    "call": _call,
    "with": _with,
    "open_raise": _open_raise,
    "open_allow": _open_allow,
    "can_trade": _can_trade,
    "can_trade_tripped": _can_trade_tripped,
    "blocking_reasons_tripped": _blocking_reasons_tripped,
    "try_acquire": _try_acquire,
    "try_acquire_refused": _try_acquire_refused,
    "record_order": _record_order,
}
"""Builders of a loop over one of our hot paths, for ``run.py --profile NAME``."""


def hot_path(name: str) -> Optional[Loop]:
    builder = HOT_PATHS.get(name)
    return None if builder is None else builder()
