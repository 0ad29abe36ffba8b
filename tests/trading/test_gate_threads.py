"""The pre-trade gate under concurrent threads: no limit is ever overshot.

Every test starts its threads on a Barrier, joins them with a bound, and uses a ManualClock that does
not move, so windows never slide during a test and the expected counts are exact.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable, List, Optional

import pytest

from circuit_breakers import (
    ManualClock,
    OrderDecision,
    OrderLimits,
    RejectReason,
    Side,
    TradingCircuitBreakers,
    TradingState,
)

from .order_fakes import START, WAIT, D, Desk, make_breakers, messages_in_window, order, pending_notional, submit

THREADS = 16
QUANTITIES = [D(q) for q in (1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 50, 80, 100, 125, 200, 250)]  # divide 10 000
ROUNDS = 5  # each scenario is replayed on fresh breakers to give races more chances


def run_together(count: int, work: Callable[[int], Any]) -> List[Any]:
    """Run ``work(i)`` on ``count`` threads released together; return the results in thread order."""
    barrier = threading.Barrier(count)
    results: List[Any] = [None] * count
    errors: List[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(WAIT)
            results[index] = work(index)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(index,), name=f"gate-test-{index}") for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    for thread in threads:
        assert not thread.is_alive(), f"{thread.name} did not finish within {WAIT}s"
    assert not errors, errors
    return results


def reasons(decisions: List[OrderDecision]) -> Counter[Optional[RejectReason]]:
    return Counter(decision.reason for decision in decisions)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sixteen_threads_against_ten_orders_a_minute(round_: int) -> None:
    breakers = make_breakers(Desk(), OrderLimits(), clock=ManualClock(start=START), max_orders_per_minute=10)
    decisions = run_together(THREADS, lambda i: submit(breakers, order(quantity=str(i + 1))))
    assert sum(decision.accepted for decision in decisions) == 10
    assert reasons(decisions) == Counter({None: 10, RejectReason.RATE_LIMIT: 6})
    status = breakers.get_status()
    assert (status.orders_last_minute, status.orders_last_hour) == (10, 10)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sixteen_threads_against_room_for_seven_orders(round_: int) -> None:
    desk = Desk(total_value=D(100_000_000), gross_exposure=D(30_000))
    limits = OrderLimits(max_gross_exposure=D(100_000))  # room: 70 000 = 7 orders of 10 000
    breakers = make_breakers(desk, limits, clock=ManualClock(start=START), max_orders_per_minute=100)

    def send(index: int) -> OrderDecision:
        # distinct orders, each worth exactly 10 000 (1/7 of the room)
        quantity = QUANTITIES[index]
        return submit(breakers, order(quantity=quantity, price=D(10_000) / quantity, client_order_id=f"c-{index}"))

    decisions = run_together(THREADS, send)
    assert reasons(decisions) == Counter({None: 7, RejectReason.EXPOSURE: 9})
    assert pending_notional(breakers) == D(70_000)
    orders = breakers.get_status().details["orders"]
    assert orders["pending_orders"] == 7
    assert breakers.get_status().orders_last_minute == 7
    accepted = [index for index, decision in enumerate(decisions) if decision.accepted]
    for index in accepted:
        breakers.order_cancelled(f"c-{index}")
    assert pending_notional(breakers) == D(0)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sixteen_threads_sending_the_same_order(round_: int) -> None:
    breakers = make_breakers(
        Desk(), OrderLimits(duplicate_window_seconds=30), clock=ManualClock(start=START), max_orders_per_minute=100
    )
    same = order(symbol="QQQ", side=Side.SELL, quantity="25", price="101.5")
    decisions = run_together(THREADS, lambda _: submit(breakers, same))
    assert reasons(decisions) == Counter({None: 1, RejectReason.DUPLICATE: 15})
    assert breakers.get_status().orders_last_minute == 1
    assert breakers.get_status().details["orders"]["remembered_orders"] == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sixteen_threads_reusing_one_client_order_id(round_: int) -> None:
    breakers = make_breakers(Desk(), OrderLimits(), clock=ManualClock(start=START), max_orders_per_minute=100)
    decisions = run_together(THREADS, lambda i: submit(breakers, order(quantity=str(i + 1), client_order_id="same")))
    assert reasons(decisions) == Counter({None: 1, RejectReason.DUPLICATE: 15})
    assert breakers.get_status().details["orders"]["pending_orders"] == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_messages_shared_by_cancels_and_orders_never_exceed_the_limit(round_: int) -> None:
    limit = 20
    breakers = make_breakers(
        Desk(),
        OrderLimits(max_messages_per_minute=limit),
        clock=ManualClock(start=START),
        max_orders_per_minute=1000,
        max_orders_per_hour=1000,
    )

    def work(index: int) -> List[str]:
        outcomes = []
        for attempt in range(10):
            if index % 3 == 0:
                ok = submit(breakers, order(quantity=f"{index + 1}.{attempt + 1}")).accepted
                outcomes.append("order" if ok else "refused")
            elif index % 3 == 1:
                outcomes.append("cancel" if breakers.record_cancel() else "refused")
            else:
                outcomes.append("modify" if breakers.record_modify() else "refused")
        return outcomes

    results = run_together(THREADS, work)
    counts = Counter(outcome for outcomes in results for outcome in outcomes)
    assert counts["order"] + counts["cancel"] + counts["modify"] == limit
    assert counts["refused"] == THREADS * 10 - limit
    assert messages_in_window(breakers) == limit
    assert breakers.get_status().orders_last_minute == counts["order"]
    assert not breakers.record_cancel()
    assert breakers.check_order(order(quantity="7")).reason is RejectReason.MESSAGE_RATE


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_fills_and_cancels_release_exactly(round_: int) -> None:
    desk = Desk(total_value=D(100_000_000))
    breakers = make_breakers(
        desk, OrderLimits(max_gross_exposure=D(10**9)), clock=ManualClock(start=START), max_orders_per_minute=100
    )
    for index in range(THREADS):
        assert submit(breakers, order(quantity="100", price="10", client_order_id=f"c-{index}")).accepted
    assert pending_notional(breakers) == D(16_000)

    def settle(index: int) -> Any:
        for _ in range(4):
            breakers.order_filled(f"c-{index}", D(10))
        if index % 2:
            breakers.order_cancelled(f"c-{index}")
            return D(0)
        return breakers.order_filled(f"c-{index}", D(10))

    remaining = run_together(THREADS, settle)
    assert remaining == [D(50) if index % 2 == 0 else D(0) for index in range(THREADS)]
    assert pending_notional(breakers) == D(8 * 500)
    assert breakers.get_status().details["orders"]["pending_orders"] == 8


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_restrict_races_with_orders_without_errors(round_: int) -> None:
    breakers = make_breakers(
        Desk(), OrderLimits(), clock=ManualClock(start=START), max_orders_per_minute=1000, max_orders_per_hour=1000
    )

    def work(index: int) -> Any:
        if index == 0:
            for _ in range(50):
                breakers.restrict("GME")
                breakers.unrestrict("GME")
            breakers.restrict("GME")
            return None
        return [breakers.check_order(order(symbol="GME")).reason for _ in range(20)]

    results = run_together(THREADS, work)
    seen = {reason for result in results[1:] for reason in result}
    assert seen <= {None, RejectReason.RESTRICTED}
    assert breakers.check_order(order(symbol="GME")).reason is RejectReason.RESTRICTED


# --- a decision made across a kill-switch engagement ----------------------------------------------------


def _order_straddling_the_kill_switch(use_guard: bool) -> OrderDecision:
    """Thread A's order is waiting on the provider (reference price) while the kill switch engages."""
    desk = Desk()
    entered, release = threading.Event(), threading.Event()
    desk.hold_reference = (entered, release)
    breakers: TradingCircuitBreakers = make_breakers(
        desk, OrderLimits(price_collar_pct=D(5)), clock=ManualClock(start=START)
    )
    handler_ran = threading.Event()
    breakers.register_kill_handler(lambda reason: handler_ran.set())
    out: List[OrderDecision] = []

    def send() -> None:
        the_order = order(price="100", client_order_id="late")
        out.append(submit(breakers, the_order) if use_guard else breakers.check_order(the_order))

    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert entered.wait(WAIT)
        breakers.engage_kill_switch("flatten now")
        assert handler_ran.is_set()  # "cancel all working orders" has already run
        assert breakers.trading_state is TradingState.HALTED
    finally:
        desk.hold_reference = None
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    return out[0]


@pytest.mark.parametrize("use_guard", [False, True], ids=["check_order", "trade_guard"])
def test_order_decided_after_the_kill_switch_engaged_is_refused(use_guard: bool) -> None:
    decision = _order_straddling_the_kill_switch(use_guard)
    assert decision.reason is RejectReason.TRADING_HALTED
