"""refresh(): check_now() without the status, and the returns a reading need not check twice."""

from __future__ import annotations

import decimal
import threading
from decimal import Decimal
from typing import Any, List, Tuple

import pytest

from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.trading import rules
from circuit_breakers.trading.provider import BadReading, ReturnsSeen, take_reading

from .conftest import FakeProvider

D = Decimal
CALM = [D("0.1"), D("-0.2"), D("0.15"), D("-0.05"), D("0.2"), D("-0.1")]


def test_refresh_applies_the_rules_as_check_now_does() -> None:
    provider = FakeProvider()
    breakers = TradingCircuitBreakers(provider)
    assert breakers.refresh() is None
    assert breakers.can_trade()
    provider.daily_pnl_pct = D("-2.5")
    breakers.refresh()
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons() == ["daily_loss: P&L -2.50% <= limit -2.00%"]


def test_refresh_counts_bad_readings_as_check_now_does() -> None:
    provider = FakeProvider()
    breakers = TradingCircuitBreakers(provider)
    breakers.refresh()
    provider.misbehave("raise")
    for _ in range(breakers.config.connection_failure_threshold):
        breakers.refresh()
    assert not breakers.can_trade()
    assert breakers.get_blocking_reasons()[0].startswith("provider:")


class TupleReturns(FakeProvider):
    """Returns the same tuple object until told otherwise, and counts the calls."""

    def __init__(self, returns: Tuple[Any, ...]) -> None:
        super().__init__(returns=list(returns))
        self.tuple: Tuple[Any, ...] = returns
        self.get_daily_returns = lambda: self.tuple


def test_the_same_returns_tuple_is_checked_once_and_a_new_one_again() -> None:
    seen = ReturnsSeen()
    provider = TupleReturns(tuple(CALM))
    first = take_reading(provider, 20, seen)
    assert first.daily_returns == tuple(CALM)
    assert seen.last is not None
    assert seen.last[0] is provider.tuple
    again = take_reading(provider, 20, seen)
    assert again.daily_returns is first.daily_returns  # not checked again
    provider.tuple = (*CALM, 0.5)  # a new tuple, with a float in it: checked, and refused
    with pytest.raises(BadReading, match=r"get_daily_returns returned 0\.5"):
        take_reading(provider, 20, seen)
    with pytest.raises(BadReading, match=r"get_daily_returns returned 0\.5"):
        take_reading(provider, 20, seen)  # a refused tuple is never remembered


def test_a_returns_list_is_checked_every_time() -> None:
    seen = ReturnsSeen()
    provider = FakeProvider(returns=list(CALM))
    take_reading(provider, 20, seen)
    assert seen.last is None  # a list can change in place: never remembered
    provider.returns.append(0.5)
    with pytest.raises(BadReading, match=r"get_daily_returns returned 0\.5"):
        take_reading(provider, 20, seen)


def test_a_desk_whose_provider_returns_one_tuple_still_sees_a_new_one() -> None:
    wide = tuple(x * 10 for x in CALM)
    provider = TupleReturns(wide)
    provider.daily_pnl_pct = D("-1.5")
    breakers = TradingCircuitBreakers(provider)
    breakers.refresh()
    breakers.refresh()
    assert breakers.can_trade()  # -1.5 % is within 3 std devs of the wide returns
    provider.tuple = tuple(CALM)
    breakers.refresh()
    assert breakers.get_blocking_reasons()[0].startswith("volatility: ")


def test_volatility_is_the_same_remembered_or_not_and_whatever_the_callers_context() -> None:
    config = TradingBreakerConfig()
    samples = tuple(D(x) for x in ("0.1", "-0.2", "0.15", "-0.05", "0.2", "-0.1", "0.3"))
    fresh = rules.volatility(D("0.9"), samples, config)
    with decimal.localcontext(decimal.Context(prec=6)):
        remembered = rules.volatility(D("0.9"), samples, config)
    rules._moments.cache_clear()
    with decimal.localcontext(decimal.Context(prec=6)):
        computed_in_a_narrow_context = rules.volatility(D("0.9"), samples, config)
    assert fresh == remembered == computed_in_a_narrow_context


def test_threads_reading_changing_tuples_never_pair_one_with_anothers_check() -> None:
    seen = ReturnsSeen()
    tuples = [tuple(D(i) + x for x in CALM) for i in range(8)]
    errors: List[str] = []
    start = threading.Barrier(8)

    def reader(index: int) -> None:
        provider = TupleReturns(tuples[index])
        start.wait(10)
        for _ in range(500):
            reading = take_reading(provider, 20, seen)
            if reading.daily_returns != tuples[index]:
                errors.append(f"thread {index} got {reading.daily_returns}")

    threads = [threading.Thread(target=reader, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
