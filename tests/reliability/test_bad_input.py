"""Bad input at every public entry point: one table, each row a wrong call, the documented error it
raises (ConfigError is a ValueError, ConfigTypeError a TypeError, UnknownBreakerError a KeyError),
a fragment its message must contain, and a check that nothing changed.

Field-by-field config validation is also covered in depth by tests/test_config.py and
tests/trading/test_config.py; rate-limiter construction by tests/test_ratelimit.py; reset keys by
tests/trading/test_reset_key.py. This table walks the public API as a caller meets it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple, Type

import pytest
import redis

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerManager,
    CircuitType,
    ConfigError,
    ConfigTypeError,
    DuplicateBreakerError,
    KillSwitchError,
    Limit,
    ManualClock,
    Order,
    OrderLimits,
    RateLimiter,
    RedisCircuitBreaker,
    RedisRateLimiter,
    RedisStore,
    Side,
    TradingBreakerConfig,
    TradingCircuitBreakers,
    UnknownBreakerError,
    UnknownOrderError,
    circuit_breaker,
    rate_limited,
)

from ..trading.conftest import FakeProvider

D = Decimal
NAN, INF = float("nan"), float("inf")


@dataclass
class World:
    clock: ManualClock
    breaker: CircuitBreaker
    manager: CircuitBreakerManager
    limiter: RateLimiter
    trading: TradingCircuitBreakers
    keyless: TradingCircuitBreakers
    tmp: Path

    def snapshot(self) -> str:
        """Everything observable, as one string: equal before and after a refused call."""
        return json.dumps(
            {
                "breaker": self.breaker.get_status(),
                "manager": sorted(breaker.name for breaker in self.manager),
                "limiter": self.limiter.status(),
                "trading": self.trading.get_status().to_dict(),
                "keyless": self.keyless.get_status().to_dict(),
                "files": sorted(path.name for path in self.tmp.iterdir()),
            },
            sort_keys=True,
            default=str,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock()
    manager = CircuitBreakerManager(clock=clock)
    breaker = manager.create_circuit_breaker("api", CircuitType.CONNECTION_FAILURE)
    breaker.record_failure("one failure, so the window is not empty")
    limiter = RateLimiter(Limit(3, 60), name="quotes", clock=clock)
    assert limiter.try_acquire()
    trading = TradingCircuitBreakers(FakeProvider(), clock=clock)
    trading.check_now()
    assert trading.record_order()
    keyless = TradingCircuitBreakers(FakeProvider(), clock=clock)
    keyless.engage_kill_switch("engaged, with no key to reset it")
    yield World(clock, breaker, manager, limiter, trading, keyless, tmp_path)
    trading.close()
    keyless.close()


Case = Tuple[str, Callable[[World], object], Type[Exception], str]


def _client(**options: Any) -> redis.Redis:
    """A client of nothing (port 1): building one, a store or a breaker does not connect."""
    options.setdefault("socket_timeout", 0.1)
    options.setdefault("socket_connect_timeout", 0.1)
    return redis.Redis(host="127.0.0.1", port=1, **options)


def _redis_breaker(name: str = "api", **kwargs: Any) -> Callable[[World], object]:
    client = kwargs.pop("client", None)
    namespace = kwargs.pop("namespace", "desk")
    return lambda w: RedisCircuitBreaker(name, store=RedisStore(client or _client(), namespace), **kwargs)


def _config(**fields: Any) -> Callable[[World], object]:
    return lambda w: CircuitBreakerConfig(**fields)


def _trading_config(**fields: Any) -> Callable[[World], object]:
    return lambda w: TradingBreakerConfig(**fields)


CASES: List[Case] = [
    # --- CircuitBreaker and its config ---
    ("breaker-empty-name", lambda w: CircuitBreaker(""), ConfigError, "non-empty"),
    ("breaker-blank-name", lambda w: CircuitBreaker("   "), ConfigError, "non-empty"),
    ("breaker-int-name", lambda w: CircuitBreaker(42), ConfigTypeError, "42"),  # type: ignore[arg-type]
    ("breaker-str-type", lambda w: CircuitBreaker("x", "generic"), ConfigTypeError, "CircuitType"),  # type: ignore[arg-type]
    ("breaker-dict-config", lambda w: CircuitBreaker("x", config={}), ConfigTypeError, "CircuitBreakerConfig"),  # type: ignore[arg-type]
    ("breaker-bad-clock", lambda w: CircuitBreaker("x", clock=object()), ConfigTypeError, "monotonic"),  # type: ignore[arg-type]
    ("threshold-zero", _config(failure_threshold=0), ConfigError, "failure_threshold"),
    ("threshold-negative", _config(failure_threshold=-1), ConfigError, "failure_threshold"),
    ("threshold-float", _config(failure_threshold=2.5), ConfigTypeError, "failure_threshold"),
    ("threshold-bool", _config(failure_threshold=True), ConfigTypeError, "failure_threshold"),
    ("threshold-str", _config(failure_threshold="5"), ConfigTypeError, "failure_threshold"),
    ("rate-nan", _config(failure_rate_threshold=NAN), ConfigError, "failure_rate_threshold"),
    ("rate-inf", _config(failure_rate_threshold=INF), ConfigError, "failure_rate_threshold"),
    ("rate-zero", _config(failure_rate_threshold=0), ConfigError, "failure_rate_threshold"),
    ("rate-above-one", _config(failure_rate_threshold=1.5), ConfigError, "failure_rate_threshold"),
    ("open-timeout-negative", _config(open_timeout_seconds=-1), ConfigError, "open_timeout_seconds"),
    ("open-timeout-zero", _config(open_timeout_seconds=0), ConfigError, "open_timeout_seconds"),
    ("open-timeout-minus-inf", _config(open_timeout_seconds=-INF), ConfigError, "open_timeout_seconds"),
    ("window-nan", _config(failure_window_seconds=NAN), ConfigError, "failure_window_seconds"),
    ("half-open-calls-zero", _config(half_open_max_calls=0), ConfigError, "half_open_max_calls"),
    ("backoff-below-open", _config(open_timeout_seconds=60, max_backoff_seconds=30), ConfigError, "max_backoff"),
    ("multiplier-below-one", _config(backoff_multiplier=0.5), ConfigError, "backoff_multiplier"),
    ("legacy-pct-float", _config(daily_loss_limit_pct=-2.0), ConfigTypeError, "daily_loss_limit_pct"),
    ("excluded-str", _config(excluded_exceptions="ValueError"), ConfigTypeError, "excluded_exceptions"),
    ("excluded-non-exception-type", _config(excluded_exceptions=(int,)), ConfigTypeError, "excluded_exceptions"),
    ("replace-unknown-field", lambda w: w.breaker.config.replace(threshold=3), ConfigTypeError, "threshold"),
    ("call-non-callable", lambda w: w.breaker.call(42), ConfigTypeError, "callable"),  # type: ignore[call-overload]
    ("decorate-non-callable", lambda w: w.breaker("not a function"), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("trip-callback-none", lambda w: w.breaker.register_trip_callback(None), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("recovery-callback-str", lambda w: w.breaker.register_recovery_callback("print"), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("change-callback-int", lambda w: w.breaker.register_state_change_callback(1), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    # --- the manager and the decorators ---
    ("manager-empty-name", lambda w: w.manager.create_circuit_breaker(""), ConfigError, "non-empty"),
    ("manager-duplicate", lambda w: w.manager.create_circuit_breaker("api"), DuplicateBreakerError, "api"),
    (
        "manager-other-type",
        lambda w: w.manager.get_or_create("api", CircuitType.GENERIC),
        DuplicateBreakerError,
        "api",
    ),
    ("decorator-bad-name", lambda w: circuit_breaker("", manager=w.manager), ConfigError, "non-empty"),
    ("rate-limited-nothing", lambda w: rate_limited(), ConfigError, "max_per_minute"),
    ("rate-limited-zero", lambda w: rate_limited(max_per_minute=0), ConfigError, "max_per_minute"),
    # --- RateLimiter and Limit ---
    ("limit-zero", lambda w: Limit(0, 60), ConfigError, "max_calls"),
    ("limit-negative", lambda w: Limit(-5, 60), ConfigError, "max_calls"),
    ("limit-float-calls", lambda w: Limit(5.0, 60), ConfigTypeError, "max_calls"),  # type: ignore[arg-type]
    ("limit-zero-period", lambda w: Limit(5, 0), ConfigError, "period_seconds"),
    ("limit-nan-period", lambda w: Limit(5, NAN), ConfigError, "period_seconds"),
    ("limit-inf-period", lambda w: Limit(5, INF), ConfigError, "period_seconds"),
    ("limiter-no-limits", lambda w: RateLimiter(), ConfigError, "at least one"),
    ("limiter-not-a-limit", lambda w: RateLimiter((5, 60)), ConfigTypeError, "Limit"),  # type: ignore[arg-type]
    ("limiter-blank-name", lambda w: RateLimiter(Limit(1, 1), name=" "), ConfigError, "blank"),
    ("limiter-same-period", lambda w: RateLimiter(Limit(1, 60), Limit(2, 60)), ConfigError, "distinct"),
    ("acquire-negative-timeout", lambda w: w.limiter.acquire(timeout=-1), ConfigError, "timeout"),
    ("acquire-nan-timeout", lambda w: w.limiter.acquire(timeout=NAN), ConfigError, "timeout"),
    ("acquire-inf-timeout", lambda w: w.limiter.acquire(timeout=INF), ConfigError, "timeout"),
    ("acquire-str-timeout", lambda w: w.limiter.acquire(timeout="1"), ConfigTypeError, "timeout"),  # type: ignore[arg-type]
    # --- TradingBreakerConfig ---
    ("loss-float", _trading_config(daily_loss_limit_pct=-2.0), ConfigTypeError, "daily_loss_limit_pct"),
    ("loss-nan", _trading_config(daily_loss_limit_pct=D("NaN")), ConfigError, "daily_loss_limit_pct"),
    ("loss-inf", _trading_config(daily_loss_limit_pct=D("-Infinity")), ConfigError, "daily_loss_limit_pct"),
    ("loss-str-nan", _trading_config(daily_loss_limit_pct="nan"), ConfigError, "daily_loss_limit_pct"),
    ("loss-zero", _trading_config(daily_loss_limit_pct=0), ConfigError, "daily_loss_limit_pct"),
    ("loss-positive", _trading_config(daily_loss_limit_pct=2), ConfigError, "daily_loss_limit_pct"),
    (
        "loss-warning-beyond-limit",
        _trading_config(daily_loss_limit_pct=D(-2), daily_loss_warning_pct=D("-2.5")),
        ConfigError,
        "daily_loss_warning_pct",
    ),
    (
        "loss-warning-equal-limit",
        _trading_config(daily_loss_limit_pct=D(-2), daily_loss_warning_pct=D(-2)),
        ConfigError,
        "daily_loss_warning_pct",
    ),
    (
        "drawdown-warning-positive",
        _trading_config(drawdown_warning_pct=D(1)),
        ConfigError,
        "drawdown_warning_pct",
    ),
    ("position-zero", _trading_config(max_position_pct=0), ConfigError, "max_position_pct"),
    ("position-over-100", _trading_config(max_position_pct=101), ConfigError, "max_position_pct"),
    (
        "position-warning-above-limit",
        _trading_config(max_position_pct=10, position_warning_pct=15),
        ConfigError,
        "position_warning_pct",
    ),
    ("volatility-float", _trading_config(volatility_std_threshold=3.0), ConfigTypeError, "volatility_std_threshold"),
    ("volatility-negative", _trading_config(volatility_std_threshold=-1), ConfigError, "volatility_std_threshold"),
    ("orders-per-minute-zero", _trading_config(max_orders_per_minute=0), ConfigError, "max_orders_per_minute"),
    (
        "orders-hour-below-minute",
        _trading_config(max_orders_per_minute=10, max_orders_per_hour=5),
        ConfigError,
        "max_orders_per_hour",
    ),
    ("interval-zero", _trading_config(check_interval_seconds=0), ConfigError, "check_interval_seconds"),
    ("interval-nan", _trading_config(check_interval_seconds=NAN), ConfigError, "check_interval_seconds"),
    ("timeout-inf", _trading_config(connection_timeout_seconds=INF), ConfigError, "connection_timeout_seconds"),
    ("stale-negative", _trading_config(stale_after_seconds=-1), ConfigError, "stale_after_seconds"),
    ("cooldown-negative", _trading_config(cooldown_seconds=-1), ConfigError, "cooldown_seconds"),
    ("auto-recovery-int", _trading_config(auto_recovery=1), ConfigTypeError, "auto_recovery"),
    ("zone-unknown", _trading_config(trading_day_timezone="Mars/Olympus"), ConfigError, "Mars/Olympus"),
    ("zone-not-str", _trading_config(trading_day_timezone=5), ConfigTypeError, "trading_day_timezone"),
    (
        "reset-time-aware",
        _trading_config(trading_day_reset_time=dt.time(17, tzinfo=dt.timezone.utc)),
        ConfigTypeError,
        "trading_day_reset_time",
    ),
    ("lockout-attempts-negative", _trading_config(reset_max_attempts=-1), ConfigError, "reset_max_attempts"),
    # --- TradingCircuitBreakers: construction ---
    ("provider-missing-methods", lambda w: TradingCircuitBreakers(object()), ConfigTypeError, "PortfolioProvider"),  # type: ignore[arg-type]
    (
        "trading-dict-config",
        lambda w: TradingCircuitBreakers(FakeProvider(), {}),
        ConfigTypeError,
        "TradingBreakerConfig",
    ),  # type: ignore[arg-type]
    ("reset-key-int", lambda w: TradingCircuitBreakers(FakeProvider(), reset_key=1234), ConfigTypeError, "reset key"),  # type: ignore[arg-type]
    ("reset-key-empty", lambda w: TradingCircuitBreakers(FakeProvider(), reset_key=""), ConfigError, "empty"),
    ("state-path-int", lambda w: TradingCircuitBreakers(FakeProvider(), state_path=7), ConfigTypeError, "path"),  # type: ignore[arg-type]
    ("state-path-empty", lambda w: TradingCircuitBreakers(FakeProvider(), state_path=""), ConfigError, "empty"),
    (
        "order-limits-dict",
        lambda w: TradingCircuitBreakers(FakeProvider(), order_limits={}),  # type: ignore[arg-type]
        ConfigTypeError,
        "OrderLimits",
    ),
    # --- TradingCircuitBreakers: methods ---
    (
        "reset-unknown-breaker",
        lambda w: w.trading.reset_breaker("daily_loss_typo"),
        UnknownBreakerError,
        "daily_loss_typo",
    ),
    ("reset-empty-breaker", lambda w: w.trading.reset_breaker(""), UnknownBreakerError, "daily_loss"),
    ("reset-none-breaker", lambda w: w.trading.reset_breaker(None), ConfigTypeError, "None"),  # type: ignore[arg-type]
    ("reset-kill-switch-no-key", lambda w: w.keyless.reset_kill_switch("anything"), KillSwitchError, "no reset key"),
    (
        "reset-breaker-kill-switch",
        lambda w: w.keyless.reset_breaker("max_drawdown"),
        KillSwitchError,
        "reset_kill_switch",
    ),
    ("concentration-float", lambda w: w.trading.check_position_concentration("SPY", 1000.0), ConfigTypeError, "float"),  # type: ignore[arg-type]
    ("concentration-nan", lambda w: w.trading.check_position_concentration("SPY", D("NaN")), ConfigError, "finite"),
    (
        "concentration-empty-symbol",
        lambda w: w.trading.check_position_concentration("", D(1)),
        ConfigTypeError,
        "symbol",
    ),
    ("cash-flow-float", lambda w: w.trading.record_cash_flow(100.0), ConfigTypeError, "amount"),  # type: ignore[arg-type]
    ("cash-flow-inf", lambda w: w.trading.record_cash_flow(D("Infinity")), ConfigError, "amount"),
    ("guard-value-without-symbol", lambda w: w.trading.trade_guard(None, D(1)), ConfigTypeError, "both"),
    ("check-order-not-an-order", lambda w: w.trading.check_order("BUY 10 SPY"), ConfigTypeError, "Order"),  # type: ignore[arg-type]
    ("fill-unknown-order", lambda w: w.trading.order_filled("nope", D(1)), UnknownOrderError, "nope"),
    ("cancel-unknown-order", lambda w: w.trading.order_cancelled("nope"), UnknownOrderError, "nope"),
    ("restrict-int", lambda w: w.trading.restrict(42), ConfigTypeError, "symbols"),  # type: ignore[arg-type]
    ("restrict-empty", lambda w: w.trading.restrict(""), ConfigError, "symbols"),
    ("guarded-non-callable", lambda w: w.trading.guarded(3), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("trading-trip-callback", lambda w: w.trading.register_trip_callback(None), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("trading-warning-callback", lambda w: w.trading.register_warning_callback("x"), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("trading-recovery-callback", lambda w: w.trading.register_recovery_callback(0), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("kill-handler", lambda w: w.trading.register_kill_handler(object()), ConfigTypeError, "callable"),  # type: ignore[arg-type]
    ("order-float-quantity", lambda w: Order("SPY", Side.BUY, 10.0, price=D(1)), ConfigTypeError, "quantity"),  # type: ignore[arg-type]
    ("order-limits-float", lambda w: OrderLimits(max_notional=1e6), ConfigTypeError, "max_notional"),  # type: ignore[arg-type]
    # --- Redis: RedisStore, RedisCircuitBreaker, the store's rate limiter (nothing connects) ---
    ("redis-store-not-a-client", lambda w: RedisStore(object(), "desk"), ConfigTypeError, "client"),  # type: ignore[arg-type]
    ("redis-store-url-as-client", lambda w: RedisStore("redis://127.0.0.1", "desk"), ConfigTypeError, "redis.Redis"),  # type: ignore[arg-type]
    (
        "redis-store-no-socket-timeout",
        lambda w: RedisStore(_client(socket_timeout=None)),
        ConfigError,
        "socket_timeout",
    ),
    (
        "redis-store-no-connect-timeout",
        lambda w: RedisStore(_client(socket_connect_timeout=None)),
        ConfigError,
        "socket_connect_timeout",
    ),
    ("redis-store-zero-timeout", lambda w: RedisStore(_client(socket_timeout=0)), ConfigError, "socket_timeout"),
    ("redis-store-empty-namespace", lambda w: RedisStore(_client(), ""), ConfigError, "namespace"),
    ("redis-store-blank-namespace", lambda w: RedisStore(_client(), "  "), ConfigError, "namespace"),
    ("redis-store-int-namespace", lambda w: RedisStore(_client(), 5), ConfigError, "namespace"),  # type: ignore[arg-type]
    ("redis-breaker-empty-name", _redis_breaker(name=""), ConfigError, "name"),
    ("redis-breaker-no-store", lambda w: RedisCircuitBreaker("api", store="desk"), ConfigTypeError, "RedisStore"),  # type: ignore[arg-type]
    ("redis-breaker-blank-namespace", _redis_breaker(namespace=" "), ConfigError, "namespace"),
    ("redis-breaker-not-a-client", _redis_breaker(client="localhost"), ConfigTypeError, "client"),
    (
        "redis-breaker-no-socket-timeout",
        _redis_breaker(client=_client(socket_timeout=None)),
        ConfigError,
        "socket_timeout",
    ),
    ("redis-breaker-timeout-zero", _redis_breaker(timeout=0), ConfigError, "timeout"),
    ("redis-breaker-timeout-negative", _redis_breaker(timeout=-1), ConfigError, "timeout"),
    ("redis-breaker-timeout-nan", _redis_breaker(timeout=NAN), ConfigError, "timeout"),
    ("redis-breaker-timeout-inf", _redis_breaker(timeout=INF), ConfigError, "timeout"),
    ("redis-breaker-timeout-str", _redis_breaker(timeout="1"), ConfigTypeError, "timeout"),
    ("redis-breaker-timeout-bool", _redis_breaker(timeout=True), ConfigTypeError, "timeout"),
    ("redis-breaker-bad-config", _redis_breaker(config={}), ConfigTypeError, "CircuitBreakerConfig"),
    (
        "redis-store-breaker-timeout-zero",
        lambda w: RedisCircuitBreaker("api", store=RedisStore(_client()), timeout=0),
        ConfigError,
        "timeout",
    ),
    (
        "redis-limiter-no-limits",
        lambda w: RedisRateLimiter(RedisStore(_client()), name="orders"),
        ConfigError,
        "at least one",
    ),
]


@pytest.mark.parametrize(("action", "error", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_raises_a_clear_error_and_changes_nothing(
    world: World, action: Callable[[World], object], error: Type[Exception], fragment: str
) -> None:
    before = world.snapshot()
    with pytest.raises(error) as info:
        action(world)
    assert fragment in str(info.value), f"{info.value!s} does not mention {fragment!r}"
    assert world.snapshot() == before


def test_the_table_covers_every_documented_error_kind() -> None:
    kinds: Dict[Type[Exception], int] = {}
    for _, _, error, _ in CASES:
        kinds[error] = kinds.get(error, 0) + 1
    assert set(kinds) >= {ConfigError, ConfigTypeError, UnknownBreakerError, DuplicateBreakerError, KillSwitchError}
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConfigTypeError, TypeError)
    assert issubclass(UnknownBreakerError, KeyError)


def test_non_callable_call_counts_nothing_even_while_closed(world: World) -> None:
    # Before the fix, call(42) was admitted, raised TypeError inside and counted as a failure:
    # enough of them tripped a breaker on a programming error.
    breaker = CircuitBreaker("strict", config=CircuitBreakerConfig(failure_threshold=1), clock=world.clock)
    for _ in range(3):
        with pytest.raises(ConfigTypeError):
            breaker.call(None)  # type: ignore[arg-type]
    assert breaker.is_closed
    assert breaker.metrics.total_requests == 0


# RedisStore.rate_limiter() does not check its limits and name as RateLimiter does (the rows above
# for RateLimiter): these are the same wrong calls, which it accepts or fails on with an AttributeError.
REDIS_LIMITER_GAPS: List[Case] = [
    (
        "redis-limiter-not-a-limit",
        lambda w: RedisRateLimiter(RedisStore(_client()), (5, 60), name="orders"),  # type: ignore[arg-type]
        ConfigTypeError,
        "Limit",
    ),
    (
        "redis-limiter-blank-name",
        lambda w: RedisRateLimiter(RedisStore(_client()), Limit(1, 1), name=" "),
        ConfigError,
        "blank",
    ),
    (
        "redis-limiter-same-period",
        lambda w: RedisRateLimiter(RedisStore(_client()), Limit(1, 60), Limit(2, 60), name="orders"),
        ConfigError,
        "distinct",
    ),
]


@pytest.mark.parametrize(
    ("action", "error", "fragment"),
    [case[1:] for case in REDIS_LIMITER_GAPS],
    ids=[case[0] for case in REDIS_LIMITER_GAPS],
)
def test_redis_rate_limiter_refuses_what_rate_limiter_refuses(
    world: World, action: Callable[[World], object], error: Type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        action(world)
    assert fragment in str(info.value)
