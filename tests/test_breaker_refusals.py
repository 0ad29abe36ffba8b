"""The library's own refusals never count as failures of a breaker, whatever the config and call style.

The tests taking ``make_any`` are part of the breaker contract: they run against every
implementation (tests/breakers.py).

A refusal (RateLimitExceeded, CircuitOpenException, TradingHalted, OrderRejected, KillSwitchError)
means nothing reached the remote side: it is counted as ignored (neither success nor failure) and
gives back a half-open trial permit, even under ``failure_exceptions=(Exception,)``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, List

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerError,
    CircuitBreakerManager,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    KillSwitchError,
    ManualClock,
    OrderDecision,
    OrderRejected,
    RateLimitExceeded,
    RejectReason,
    TradingHalted,
    circuit_breaker,
    rate_limited,
)

from .breakers import MakeAny
from .conftest import Boom

REFUSALS: List[CircuitBreakerError] = [
    RateLimitExceeded("orders", 1.5),
    CircuitOpenException("inner", CircuitType.CONNECTION_FAILURE, CircuitState.OPEN, 30.0),
    TradingHalted(["daily_loss: -2.5 % (limit -2.0 %)"]),
    OrderRejected(OrderDecision(False, RejectReason.MAX_QUANTITY, "quantity 5000 > 1000")),
    KillSwitchError("reset locked out"),
]
REFUSAL_IDS = [type(refusal).__name__ for refusal in REFUSALS]

# failure_exceptions settings that name the refusals outright (and Boom): the refusals still never count.
GREEDY_CONFIGS = [
    (Exception,),
    (CircuitBreakerError, Boom),
    (RateLimitExceeded, CircuitOpenException, TradingHalted, KillSwitchError, Boom),
    (lambda exc: True,),
]


def counts(breaker: Any) -> tuple[int, int, int, int]:
    """(successes, failures, ignored, rejected)."""
    metrics = breaker.metrics
    return (
        metrics.successful_requests,
        metrics.failed_requests,
        metrics.ignored_requests,
        metrics.rejected_requests,
    )


def raiser(exc: BaseException) -> Callable[[], None]:
    def call() -> None:
        raise exc

    return call


# --- decorator order --------------------------------------------------------------------------


def test_circuit_breaker_over_rate_limited_ignores_the_throttled_calls(clock: ManualClock) -> None:
    @circuit_breaker("broker", manager=CircuitBreakerManager(clock=clock), failure_threshold=3)
    @rate_limited(max_per_minute=2, clock=clock)
    def get_quote(symbol: str) -> float:
        return 101.25

    assert [get_quote("SPY"), get_quote("QQQ")] == [101.25, 101.25]
    for _ in range(5):  # more than failure_threshold throttled calls
        with pytest.raises(RateLimitExceeded):
            get_quote("SPY")
    breaker = get_quote.breaker
    assert breaker.is_closed
    assert counts(breaker) == (2, 0, 5, 0)
    assert breaker.metrics.circuit_trips == 0
    clock.advance(60)  # the limiter's window has moved on: calls flow again
    assert get_quote("SPY") == 101.25
    assert counts(breaker) == (3, 0, 5, 0)


def test_any_breaker_over_rate_limited_ignores_the_throttled_calls(make_any: MakeAny, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=(Exception,))

    @breaker
    @rate_limited(max_per_minute=1, clock=clock)
    def get_quote() -> float:
        return 101.25

    assert get_quote() == 101.25
    for _ in range(3):
        with pytest.raises(RateLimitExceeded):
            get_quote()
    assert breaker.state is CircuitState.CLOSED
    assert counts(breaker) == (1, 0, 3, 0)


def test_rate_limited_over_circuit_breaker_never_reaches_the_breaker(clock: ManualClock) -> None:
    @rate_limited(max_per_minute=2, clock=clock)
    @circuit_breaker("broker", manager=CircuitBreakerManager(clock=clock), failure_threshold=3)
    def get_quote(symbol: str) -> float:
        return 101.25

    get_quote("SPY")
    get_quote("SPY")
    for _ in range(5):
        with pytest.raises(RateLimitExceeded):
            get_quote("SPY")
    breaker = get_quote.__wrapped__.breaker  # type: ignore[attr-defined]
    assert breaker.is_closed
    assert counts(breaker) == (2, 0, 0, 0)


def test_an_open_inner_breaker_does_not_open_the_outer_one(clock: ManualClock) -> None:
    manager = CircuitBreakerManager(clock=clock)
    inner = CircuitBreaker("inner", config=CircuitBreakerConfig(failure_threshold=1), clock=clock)

    @circuit_breaker("outer", manager=manager, failure_threshold=2)
    @inner
    def place_order() -> str:
        raise Boom("broker down")

    with pytest.raises(Boom):
        place_order()
    assert inner.is_open
    for _ in range(4):
        with pytest.raises(CircuitOpenException):
            place_order()
    outer = place_order.breaker
    assert outer.is_closed  # one real failure below its threshold of 2; the rejections are ignored
    assert counts(outer) == (0, 1, 4, 0)
    assert counts(inner) == (0, 1, 0, 4)


# --- every refusal, every call style, every greedy config -------------------------------------


@pytest.mark.parametrize("failure_exceptions", GREEDY_CONFIGS, ids=["Exception", "base", "types", "predicate"])
@pytest.mark.parametrize("refusal", REFUSALS, ids=REFUSAL_IDS)
def test_call_counts_a_refusal_as_ignored(
    make_any: MakeAny, refusal: CircuitBreakerError, failure_exceptions: Any
) -> None:
    breaker = make_any(failure_threshold=1, failure_exceptions=failure_exceptions)
    for _ in range(3):
        with pytest.raises(type(refusal)) as info:
            breaker.call(raiser(refusal))
        assert info.value is refusal
    assert breaker.is_closed
    assert counts(breaker) == (0, 0, 3, 0)
    with pytest.raises(Boom):  # an ordinary failure still counts, and trips at once
        breaker.call(raiser(Boom()))
    assert breaker.is_open
    assert counts(breaker) == (0, 1, 3, 0)


@pytest.mark.parametrize("refusal", REFUSALS, ids=REFUSAL_IDS)
def test_decorator_counts_a_refusal_as_ignored(make_any: MakeAny, refusal: CircuitBreakerError) -> None:
    breaker = make_any(failure_threshold=1)
    protected = breaker(raiser(refusal))
    for _ in range(3):
        with pytest.raises(type(refusal)):
            protected()
    assert breaker.is_closed
    assert counts(breaker) == (0, 0, 3, 0)


@pytest.mark.parametrize("refusal", REFUSALS, ids=REFUSAL_IDS)
def test_with_block_counts_a_refusal_as_ignored(make_any: MakeAny, refusal: CircuitBreakerError) -> None:
    breaker = make_any(failure_threshold=1)
    for _ in range(3):
        with pytest.raises(type(refusal)), breaker:
            raise refusal
    assert breaker.is_closed
    assert counts(breaker) == (0, 0, 3, 0)


@pytest.mark.parametrize("style", ["call", "decorator", "with"])
@pytest.mark.parametrize("refusal", REFUSALS, ids=REFUSAL_IDS)
def test_a_refused_trial_gives_its_half_open_permit_back(
    make_any: MakeAny, clock: ManualClock, refusal: CircuitBreakerError, style: str
) -> None:
    breaker = make_any(failure_threshold=1, open_timeout_seconds=10, success_threshold=1, half_open_max_calls=1)
    with pytest.raises(Boom):
        breaker.call(raiser(Boom()))
    clock.advance(10)
    assert breaker.state is CircuitState.HALF_OPEN
    trial = raiser(refusal)
    if style == "call":
        call = functools.partial(breaker.call, trial)
    elif style == "decorator":
        call = breaker(trial)
    else:

        def call() -> None:
            with breaker:
                trial()

    with pytest.raises(type(refusal)):
        call()
    assert breaker.state is CircuitState.HALF_OPEN  # not re-opened, as a failure would have
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.call(lambda: "filled") == "filled"  # the permit was given back: the next trial runs
    assert breaker.is_closed
    assert counts(breaker) == (1, 1, 1, 0)


def test_excluded_exceptions_still_apply_next_to_the_refusals(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=5, excluded_exceptions=(KeyError,))
    with pytest.raises(KeyError):
        breaker.call(raiser(KeyError("order_id")))
    with pytest.raises(RateLimitExceeded):
        breaker.call(raiser(REFUSALS[0]))
    with pytest.raises(Boom):
        breaker.call(raiser(Boom()))
    assert counts(breaker) == (0, 1, 2, 0)
