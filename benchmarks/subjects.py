"""What the benchmarks call: the trivial protected function, the lock baseline, a counting provider,
and builders of our hot paths (shared by the cases and by ``run.py --profile``)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from itertools import cycle, repeat
from typing import Callable, Dict, List, Optional, Tuple

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerManager,
    CircuitOpenException,
    Limit,
    Order,
    OrderLimits,
    RateLimiter,
    Side,
    SymbolLimits,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    circuit_breaker,
)

from .harness import Loop, call_loop, catch_loop, with_loop


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


# --- pre-trade order checks -----------------------------------------------------------------------


class OrderProvider(CountingProvider):
    """A CountingProvider that also answers the order gate: reference price, position, gross exposure.

    ``by_method`` counts the calls of each method (``calls`` counts them all).
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_method: Dict[str, int] = {}

    def _tally(self, name: str) -> None:
        self.calls += 1
        self.by_method[name] = self.by_method.get(name, 0) + 1

    def get_total_value(self) -> Decimal:
        self._tally("get_total_value")
        return Decimal("1000000")

    def get_position_concentration(self, symbol: str) -> Decimal:
        self._tally("get_position_concentration")
        return Decimal("12.0")

    def get_reference_price(self, symbol: str) -> Decimal:
        self._tally("get_reference_price")
        return REFERENCE_PRICE

    def get_position_quantity(self, symbol: str) -> Decimal:
        self._tally("get_position_quantity")
        return Decimal("500")

    def get_gross_exposure(self) -> Decimal:
        self._tally("get_gross_exposure")
        return Decimal("250000")


REFERENCE_PRICE = Decimal("100.00")
SYMBOL = "SPY"


def all_checks(duplicate_window_seconds: float = 60.0) -> OrderLimits:
    """OrderLimits with every check on, each loose enough that ``accepted_order()`` passes them all.

    SPY has a per-symbol override (so the override path is taken) with a 2 % collar.
    """
    return OrderLimits(
        max_notional=Decimal("1000000"),
        max_quantity=Decimal("100000"),
        price_collar_pct=Decimal("5"),
        duplicate_window_seconds=duplicate_window_seconds,
        restricted_symbols=frozenset({"XYZ", "ABC"}),
        max_gross_exposure=Decimal("100000000"),
        max_messages_per_minute=ADMIT_ALL,
        per_symbol={SYMBOL: SymbolLimits(Decimal("500000"), Decimal("50000"), Decimal("2"))},
    )


def accepted_order(index: int = 0, client_order_id: Optional[str] = None) -> Order:
    """BUY 10 SPY at 100.50 (+ index x 0.0001: distinct prices make distinct fingerprints), 0.5 % off reference."""
    price = Decimal("100.50") + Decimal(index).scaleb(-4)
    return Order(SYMBOL, Side.BUY, Decimal("10"), price, client_order_id)


REFUSED_ORDER = Order(SYMBOL, Side.BUY, Decimal("10"), Decimal("110.00"))
"""10 % from the reference price, outside SPY's 2 % collar."""


def order_gate(
    limits: Optional[OrderLimits] = None, provider: Optional[OrderProvider] = None
) -> Tuple[TradingCircuitBreakers, OrderProvider]:
    """A facade with ``limits`` (every check on by default), order rate limits no benchmark reaches, and
    one working order already recorded (so the duplicate memory and pending exposure hold an entry)."""
    provider = OrderProvider() if provider is None else provider
    config = TradingBreakerConfig(max_orders_per_minute=ADMIT_ALL, max_orders_per_hour=ADMIT_ALL)
    breakers = TradingCircuitBreakers(provider, config, order_limits=all_checks() if limits is None else limits)
    with breakers.trade_guard(Order(SYMBOL, Side.BUY, Decimal("5"), Decimal("99.90"), "working-1")):
        pass
    return breakers, provider


GUARD_POOL = 8192
"""Distinct orders cycled through by the trade_guard loop; with a duplicate window of
``GUARD_WINDOW`` seconds, a fingerprint comes back only after 8192 orders (far longer than 5 ms)."""
GUARD_WINDOW = 0.005


def guard_orders() -> List[Order]:
    return [accepted_order(index, f"bench-{index}") for index in range(GUARD_POOL)]


def trade_guard_loop(breakers: TradingCircuitBreakers, orders: List[Order]) -> Loop:
    """``with breakers.trade_guard(order): pass`` then ``order_cancelled(id)`` (so pending exposure does not
    pile up), over distinct orders; raises OrderRejected if one is refused."""
    guard, cancelled = breakers.trade_guard, breakers.order_cancelled
    pool = cycle(orders)  # kept across calls: the next call goes on where the last one stopped

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            order = next(pool)
            with guard(order):
                pass
            cancelled(order.client_order_id)  # type: ignore[arg-type]

    return loop


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


def _call_open_raise() -> Loop:
    breaker = CircuitBreaker("profile_call_open")
    breaker.force_open()
    return catch_loop(breaker.call, CircuitOpenException, trivial)


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


def _check_order() -> Loop:
    breakers, _ = order_gate()
    return call_loop(breakers.check_order, accepted_order())


def _check_order_refused() -> Loop:
    breakers, _ = order_gate()
    return call_loop(breakers.check_order, REFUSED_ORDER)


def _trade_guard_order() -> Loop:
    return trade_guard_loop(order_gate(all_checks(GUARD_WINDOW))[0], guard_orders())


HOT_PATHS: Dict[str, Callable[[], Loop]] = {
    "decorator": _decorator,
    "named_decorator": _named_decorator,
    "call": _call,
    "with": _with,
    "open_raise": _open_raise,
    "call_open_raise": _call_open_raise,
    "open_allow": _open_allow,
    "can_trade": _can_trade,
    "can_trade_tripped": _can_trade_tripped,
    "blocking_reasons_tripped": _blocking_reasons_tripped,
    "try_acquire": _try_acquire,
    "try_acquire_refused": _try_acquire_refused,
    "record_order": _record_order,
    "check_order": _check_order,
    "check_order_refused": _check_order_refused,
    "trade_guard_order": _trade_guard_order,
}
"""Builders of a loop over one of our hot paths, for ``run.py --profile NAME``."""


def hot_path(name: str) -> Optional[Loop]:
    builder = HOT_PATHS.get(name)
    return None if builder is None else builder()
