"""A desk on Redis judges alike whatever the calling thread's decimal context (as tests/trading does in-process)."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import pytest

from tests.providers import FlatPortfolio
from tests.redis_server import RedisServer

from .conftest import KEY

CALLERS = {
    "inexact trapped": decimal.Context(traps=[decimal.Inexact]),
    "precision 1": decimal.Context(prec=1),
    "exponents up to 4": decimal.Context(Emax=4, Emin=-4),
}


class Falling(FlatPortfolio):
    def __init__(self) -> None:
        self.total = Decimal("1000000.37")
        self.drawdown = Decimal(0)

    def get_total_value(self) -> Decimal:
        return self.total

    def get_max_drawdown(self) -> Decimal:
        return self.drawdown


@pytest.mark.parametrize("caller", CALLERS.values(), ids=list(CALLERS))
def test_a_shared_desk_in_an_odd_context_engages_hears_and_resets_exactly(
    redis_server: RedisServer, desk: Any, caller: decimal.Context
) -> None:
    provider = Falling()
    first = desk(redis_server, "odd-context", provider=provider)
    second = desk(redis_server, "odd-context", provider=provider)  # one account, seen by two processes
    with decimal.localcontext(caller):
        first.check_now()
        second.record_cash_flow(Decimal("123.45"))
        provider.total, provider.drawdown = Decimal("700000.11"), Decimal("-30")
        first.check_now()
        assert first.kill_switch_active
        second.check_now()
        assert second.kill_switch_active
        assert not second.can_trade()
        status = second.get_status()
        assert status.kill_switch_active
        assert second.reset_kill_switch(KEY) is True
        first.check_now()
        second.check_now()
    assert first.can_trade()
    assert second.can_trade()
    marks = {desk_.get_status().details["max_drawdown"]["own_high_water_mark"] for desk_ in (first, second)}
    assert marks == {Decimal("700000.11")}  # the reset re-based the peak at the reading, exactly
