"""Races on the kill switch and the day halts: only a right key that answered True ever releases the switch.

Every race starts its threads on a ``threading.Barrier`` with the interpreter handing the GIL over
every 10 us, so that the threads interleave inside the library's calls. The callbacks record on
which thread each trip and recovery happened: they run on the thread whose call caused the event,
before that call returns, so a recovery of the kill switch can be traced to the call that made it.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from circuit_breakers import (
    KillSwitchError,
    ManualClock,
    TradingBreakerConfig,
    TradingCircuitBreakers,
)
from circuit_breakers.stores import MemoryStore
from circuit_breakers.trading import killswitch
from circuit_breakers.trading.audit import AuditLog

from .conftest import RESET_KEY, WRONG_KEY, FakeProvider

WAIT = 10.0  # bound on every join; never reached when the library works


class AuditTrail(logging.Handler):
    """Every audit entry of this process, as the ``circuit_breakers.audit`` logger sees it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.entries: List[Dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(record.getMessage()))

    def events(self, name: str) -> List[Dict[str, Any]]:
        return [entry for entry in self.entries if entry["event"] == name]


@pytest.fixture
def audit_trail() -> Iterator[AuditTrail]:
    handler = AuditTrail()
    logger = logging.getLogger("circuit_breakers.audit")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Hand the GIL over every 10 us, so that two threads interleave inside each other's calls."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def run_threads(*bodies: Callable[[], None]) -> None:
    """Run each body on its own thread, released together by a barrier; re-raise the first error."""
    barrier = threading.Barrier(len(bodies))
    errors: List[BaseException] = []

    def start(body: Callable[[], None]) -> None:
        try:
            barrier.wait(WAIT)
            body()
        except BaseException as exc:
            errors.append(exc)

    # Daemons: a thread deadlocked in the library fails the test below instead of hanging the run at exit.
    threads = [threading.Thread(target=start, args=(body,), daemon=True) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a racing thread hung"
    if errors:
        raise errors[0]


# --- (a) reset_breaker("max_drawdown") against engage_kill_switch ------------------------------------------

CALLS = 20


def race_reset_against_engage(
    breakers: TradingCircuitBreakers, number: int
) -> Tuple[List[Tuple[bool, object, bool]], List[bool]]:
    """One round: a thread calling ``reset_breaker("max_drawdown")`` CALLS times against one calling
    ``engage_kill_switch`` CALLS times. Returns (engaged before, answer, engaged after) of each reset
    and whether the switch was engaged after each engage.

    Both outcomes of a reset are made certain, whatever the scheduler does: the engaging thread
    starts once the resetting one has made ``lead`` calls (which find nothing to refuse), and in
    every other round the last reset waits for the first engage (so it must be refused). Every other
    call races.
    """
    resets: List[Tuple[bool, object, bool]] = []
    engages: List[bool] = []
    lead = random.Random(number).randrange(1, CALLS)
    may_engage, engaged_once = threading.Event(), threading.Event()
    wait_for_engage = number % 2 == 0

    def reset_loop() -> None:
        for call in range(CALLS):
            if call == lead:
                may_engage.set()
            if call == CALLS - 1 and wait_for_engage:
                assert engaged_once.wait(WAIT)
            before = breakers.kill_switch_active
            try:
                answer: object = breakers.reset_breaker("max_drawdown")
            except KillSwitchError:
                answer = "refused"
            resets.append((before, answer, breakers.kill_switch_active))
        may_engage.set()

    def engage_loop() -> None:
        assert may_engage.wait(WAIT)
        for _ in range(CALLS):
            breakers.engage_kill_switch("risk desk")
            engaged_once.set()
            engages.append(breakers.kill_switch_active)

    run_threads(reset_loop, engage_loop)
    return resets, engages


@pytest.mark.parametrize(("kind", "rounds"), [("memory", 100), ("sqlite", 5)])
def test_reset_breaker_racing_engage_never_releases_the_kill_switch(
    kind: str, rounds: int, audit_trail: AuditTrail, clock: ManualClock, tmp_path: Path
) -> None:
    outcomes = set()
    for number in range(rounds):
        audit_trail.entries.clear()
        state_path = tmp_path / f"desk-{number}.db" if kind == "sqlite" else None
        breakers = TradingCircuitBreakers(FakeProvider(), clock=clock, state_path=state_path)
        try:
            resets, engages = race_reset_against_engage(breakers, number)
            assert engages == [True] * CALLS
            seen_engaged = False
            for before, answer, after in resets:
                assert answer in (False, "refused"), resets  # never True: nothing was released
                if before:
                    assert answer == "refused", resets  # engaged before the call and never released since
                seen_engaged = seen_engaged or before
                assert after or not seen_engaged, resets  # once engaged, engaged at every later look
                outcomes.add(answer)
            assert breakers.kill_switch_active
            assert not breakers.can_trade()
            refused = sum(answer == "refused" for _, answer, _ in resets)
            assert [entry["event"] for entry in audit_trail.entries].count("kill_switch_engaged") == 1
            assert audit_trail.events("kill_switch_reset") == []
            refusals = audit_trail.events("kill_switch_reset_refused")
            assert len(refusals) == refused
            assert {entry["reason"] for entry in refusals} <= {"reset_breaker: require_manual_reset is on"}
            if state_path is not None:  # the trail on disk says the same
                on_disk = [entry["event"] for entry in AuditLog.read(f"{state_path}.audit.jsonl")]
                assert on_disk == [entry["event"] for entry in audit_trail.entries]
        finally:
            breakers.close()
    assert outcomes == {False, "refused"}  # certain by construction (see race_reset_against_engage)


# --- (b) every pair of the methods that touch the kill switch and the day halts -----------------------------

Log = List[Tuple[int, int, str, object]]  # (sequence, thread id, what, detail)
_sequence = itertools.count()


def _record(log: Log, what: str, detail: object) -> None:
    log.append((next(_sequence), threading.get_ident(), what, detail))


def _can_trade(breakers: TradingCircuitBreakers) -> object:
    before = breakers.kill_switch_active
    answer = breakers.can_trade()
    return before, answer, breakers.kill_switch_active


def _get_status(breakers: TradingCircuitBreakers) -> object:
    status = breakers.get_status()
    return status.kill_switch_active, status.can_trade, status.reasons


OPS: Dict[str, Callable[[TradingCircuitBreakers], object]] = {
    "engage": lambda breakers: breakers.engage_kill_switch("risk desk"),
    "reset_key_right": lambda breakers: breakers.reset_kill_switch(RESET_KEY),
    "reset_key_wrong": lambda breakers: breakers.reset_kill_switch(WRONG_KEY),
    **{
        f"reset_breaker:{name}": (lambda breakers, name=name: breakers.reset_breaker(name))
        for name in ("daily_loss", "max_drawdown", "position_concentration", "volatility", "rate_limit", "connection")
    },
    "reset_all": lambda breakers: breakers.reset_all(),
    "check_now": lambda breakers: breakers.check_now().kill_switch_active,
    "can_trade": _can_trade,
    "get_status": _get_status,
}
PAIRS = list(itertools.combinations_with_replacement(OPS, 2))
STARTS = ("clear", "engaged_by_reading", "engaged_by_hand")
REPEATS = 3


@pytest.fixture
def cheap_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at its smallest cost: hundreds of keyed resets in a second (the race is the point, not the hash)."""
    monkeypatch.setattr(killswitch, "_SCRYPT_N", 2)


def _one_round(clock: ManualClock, start: str, pair: Tuple[str, str]) -> None:
    provider = FakeProvider(max_drawdown=Decimal("-15"), daily_pnl_pct=Decimal("-3"))
    store = MemoryStore()
    config = TradingBreakerConfig(reset_max_attempts=0)
    breakers = TradingCircuitBreakers(provider, config, reset_key=RESET_KEY, clock=clock, store=store)
    log: Log = []
    breakers.register_trip_callback(lambda name, reason: _record(log, "trip", name))
    breakers.register_recovery_callback(lambda name: _record(log, "recover", name))
    if start == "engaged_by_reading":
        breakers.check_now()  # -15 % drawdown and -3 % today: the kill switch and the daily-loss halt
    elif start == "engaged_by_hand":
        breakers.engage_kill_switch("set-up")
    log.clear()
    initially = breakers.kill_switch_active
    assert initially == (start != "clear")

    def body(op: str) -> Callable[[], None]:
        def run() -> None:
            _record(log, "start", op)
            try:
                answer = OPS[op](breakers)
            except KillSwitchError as exc:
                answer = f"KillSwitchError: {exc}"
            _record(log, "end", (op, answer))

        return run

    try:
        run_threads(body(pair[0]), body(pair[1]))
        _check_round(breakers, store, log, initially=initially, pair=pair, start=start)
    finally:
        breakers.close()


def _op_at(log: Log, thread: int, sequence: int) -> Tuple[str, object]:
    """The operation the thread was running at ``sequence``, and what it answered."""
    op: Optional[str] = None
    for seq, ident, what, detail in log:
        if ident != thread:
            continue
        if what == "start" and seq < sequence:
            op = str(detail)
        elif what == "end" and seq > sequence and op is not None:
            ended, answer = detail  # type: ignore[misc]
            assert ended == op
            return op, answer
    raise AssertionError(f"no operation was running on thread {thread} at {sequence}: {log}")


def _check_round(
    breakers: TradingCircuitBreakers,
    store: MemoryStore,
    log: Log,
    *,
    initially: bool,
    pair: Tuple[str, str],
    start: str,
) -> None:
    where = f"{pair} from {start}: {log}"
    answers = [detail for _, _, what, detail in log if what == "end"]
    trips = recoveries = 0
    for sequence, thread, what, name in log:
        if what not in ("trip", "recover") or name not in ("max_drawdown", "daily_loss", "volatility"):
            continue
        op, answer = _op_at(log, thread, sequence)
        if what == "trip":
            assert op in ("engage", "check_now") or name != "max_drawdown", where
            assert op == "check_now" or name == "max_drawdown", where
            trips += name == "max_drawdown"
        elif name == "max_drawdown":  # a release of the kill switch: only by the right key, answering True
            assert (op, answer) == ("reset_key_right", True), where
            recoveries += 1
        else:  # a day halt lifts only by its own reset (the clock stands still: no new trading day)
            assert op in (f"reset_breaker:{name}", "reset_all"), where
    # Trips and releases alternate: released only after it was engaged, and the end state agrees.
    assert int(initially) + trips - recoveries == int(breakers.kill_switch_active), where
    assert ("max_drawdown" in store.read()["latches"]) == breakers.kill_switch_active, where
    released = recoveries > 0
    engaged_in_round = trips > 0
    for op, answer in answers:  # type: ignore[misc]
        if op == "reset_breaker:max_drawdown":
            assert answer is False or str(answer).startswith("KillSwitchError"), where
        elif op == "reset_key_wrong":
            assert answer is False, where
        elif op == "reset_key_right":
            assert answer is True, where
        elif op == "can_trade":
            before, can_trade, after = answer
            assert not (before and can_trade) or released, where  # engaged throughout: cannot trade
            assert not (can_trade and after) or engaged_in_round, where
        elif op == "get_status":
            kill_switch, can_trade, reasons = answer
            if kill_switch:
                assert not can_trade, where
                assert reasons[0].startswith("max_drawdown: kill switch engaged: "), where
        else:
            assert not str(answer).startswith("KillSwitchError"), where
    if breakers.kill_switch_active:
        assert not breakers.can_trade(), where
        assert breakers.get_blocking_reasons()[0].startswith("max_drawdown: kill switch engaged: "), where


@pytest.mark.usefixtures("cheap_key")
def test_every_pair_of_kill_switch_and_halt_methods_racing(clock: ManualClock) -> None:
    for pair in PAIRS:
        for start in STARTS:
            for _ in range(REPEATS):
                _one_round(clock, start, pair)
