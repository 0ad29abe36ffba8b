"""Helpers for the fork tests: providers without locks, a watched child, and a fork storm run as a script.

``python -m tests.trading.forking KIND WHERE FORKS`` (run from the repository root) forks FORKS children
of desks whose monitors poll every 0.5 ms, one after another; each child engages the kill switch and
reports; the script prints one JSON line (see :func:`storm`). It runs in a process of its own because
fork() costs time in proportion to the forking process's memory: a test runner that has loaded a
whole suite forks many times slower than a fresh interpreter.
"""

from __future__ import annotations

import faulthandler
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from decimal import Decimal
from typing import Any, Callable, Dict, List, Tuple

from tests.providers import FlatPortfolio

WATCHDOG = 10  # seconds a child may live; a deadlocked child is killed by SIGALRM
WAIT = 5.0  # bound on every wait for another thread's or process's effect

Report = Callable[..., None]


class Portfolio(FlatPortfolio):
    """A PortfolioProvider that a child never blocks in (a lock of the test's own held at the fork would hang it).

    In its creator's process the monitor thread can be parked in a reading (``park``), where it holds no
    lock and is outside the store: a fork then happens at a known point (see :func:`fork_while_parked`).
    """

    def __init__(self) -> None:
        self.total_value = Decimal(1000000)
        self.owner = os.getpid()
        self.park = threading.Event()  # set: the owner's monitor stops at its next reading...
        self.parked = threading.Event()  # ...says so...
        self.unpark = threading.Event()  # ...and waits for this

    def get_total_value(self) -> Decimal:
        if (
            os.getpid() == self.owner
            and self.park.is_set()
            and threading.current_thread().name.startswith("circuit_breakers-monitor")
        ):
            self.park.clear()
            self.parked.set()
            self.unpark.wait(WAIT)
        return self.total_value


class GatedPortfolio(Portfolio):
    """In any process but its creator's, each reading waits for a byte on a pipe (or its end)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_read, self.gate_write = os.pipe()

    def get_total_value(self) -> Decimal:
        if os.getpid() != self.owner:
            os.read(self.gate_read, 1)  # blocks until the child opens the gate (closes the last write end)
        return super().get_total_value()


class Child:
    """A forked child running ``body(report)`` under the watchdog; ``report(**facts)`` writes a JSON line."""

    def __init__(self, body: Callable[[Report], int], *, watchdog: int = WATCHDOG) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 70
            try:
                os.close(read_end)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(watchdog)
                # Where every thread stands, on stderr, just before the watchdog strikes.
                faulthandler.dump_traceback_later(watchdog - 0.5)

                def report(**facts: Any) -> None:
                    os.write(write_end, (json.dumps(facts) + "\n").encode())

                code = body(report)
            except BaseException:
                with_trace = traceback.format_exc()[-3000:]
                os.write(write_end, (json.dumps({"error": with_trace}) + "\n").encode())
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid = pid
        self._read_end = read_end
        self._buffer = b""
        self._deadline = time.monotonic() + watchdog + 5

    def _read_more(self) -> bool:
        """Read what the child wrote; False at its end. Bounded by the child's watchdog."""
        ready, _, _ = select.select([self._read_end], [], [], max(self._deadline - time.monotonic(), 0))
        assert ready, f"child {self.pid} outlived its watchdog"
        chunk = os.read(self._read_end, 65536)
        self._buffer += chunk
        return bool(chunk)

    def next_report(self) -> Dict[str, Any]:
        """The child's next report; waits for it."""
        while b"\n" not in self._buffer:
            assert self._read_more(), f"child {self.pid} ended without reporting: {self._buffer!r}"
        line, self._buffer = self._buffer.split(b"\n", 1)
        report: Dict[str, Any] = json.loads(line)
        return report

    def finish(self) -> Tuple[int, List[Dict[str, Any]]]:
        """Wait for the child (bounded by its watchdog); return its wait status and its remaining reports."""
        try:
            while self._read_more():
                pass
        finally:
            os.close(self._read_end)
        _, status = os.waitpid(self.pid, 0)
        return status, [json.loads(line) for line in self._buffer.decode().splitlines()]


def fork_while_parked(provider: Portfolio, body: Callable[[Report], int]) -> Child:
    """Fork ``body`` while the parent's monitor waits in a reading, outside the store (a fork in the middle of an
    SQLite call is another test's subject); the monitor goes on once the child exists."""
    provider.park.set()
    if not provider.parked.wait(WAIT):
        raise AssertionError("the monitor never took a reading")
    try:
        return Child(body)
    finally:
        provider.unpark.set()


def exit_code(status: int) -> str:
    """A child's wait status in words; a child killed by the watchdog deadlocked."""
    if os.WIFSIGNALED(status):
        signal_number = os.WTERMSIG(status)
        if signal_number == signal.SIGALRM:
            return "killed by the watchdog: deadlocked"
        return f"killed by signal {signal_number}"
    return f"exit {os.WEXITSTATUS(status)}"


def wait_until(condition: Callable[[], bool], seconds: float = WAIT) -> bool:
    """Poll ``condition`` (an effect of another thread) until it holds or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _unwritten(reasons: List[str]) -> bool:
    return any(reason.startswith("state:") for reason in reasons)


def _engage_in_child(breakers: Any, number: int, report: Report) -> int:
    breakers.engage_kill_switch(f"child {number}")  # the watchdog kills a child that blocks here
    reasons = breakers.get_blocking_reasons()
    can_trade, engaged = breakers.can_trade(), breakers.kill_switch_active
    retried = reasons
    for _ in range(5):  # a write that met another process's transaction goes through at a retry
        if not _unwritten(retried):
            break
        breakers.check_now()
        retried = breakers.get_blocking_reasons()
    report(
        can_trade=can_trade,
        engaged=engaged,
        reasons=reasons,
        written=not _unwritten(retried),
        monitors=sum(thread.name.startswith("circuit_breakers-monitor") for thread in threading.enumerate()),
    )
    return 0


def _release(breakers: Any) -> bool:
    """Release the kill switch without a key; a release that met another desk's write is tried again."""
    from circuit_breakers import StateStoreError  # noqa: PLC0415

    for _ in range(20):
        try:
            return bool(breakers.reset_breaker("max_drawdown"))
        except StateStoreError:
            continue  # still engaged; the busy timeout already waited
    return False


def _stores(kind: str, where: str, desks: int) -> List[Any]:
    """One store per desk, all holding the same state (one object for memory: a process's desks share it)."""
    from circuit_breakers.stores import MemoryStore, SqliteStore  # noqa: PLC0415

    if kind == "memory":
        return [MemoryStore()] * desks
    if kind == "sqlite":
        # A short busy timeout: a write a child cannot make fails in 0.05 s instead of 2 s (shown as `state:`).
        return [SqliteStore(os.path.join(where, "desk.db"), timeout=0.05) for _ in range(desks)]
    import redis  # noqa: PLC0415 - only where Redis runs

    from circuit_breakers.redis import RedisStore  # noqa: PLC0415

    url, namespace = where.rsplit("#", 1)
    return [
        RedisStore(redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), namespace)
        for _ in range(desks)
    ]


def storm(kind: str, where: str, forks: int, *, desks: int = 1, stop_at_loss: bool = False) -> List[Dict[str, Any]]:
    """Fork ``forks`` children one by one while ``desks`` desks on one ``kind`` of store poll every 0.5 ms.

    Each child engages the kill switch on the first desk. Returns, per child, its wait status, its
    reports and what the parent's first desk saw afterwards (on a shared store it adopts the child's
    engage, and releases it cheaply, without a key, for the next child); then whether the monitors
    stopped. ``where`` is a directory (sqlite) or ``<redis url>#<namespace>`` (redis).
    ``stop_at_loss``: stop after the first child that deadlocked or could not write its engage (five retries).
    """
    from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers  # noqa: PLC0415

    sys.setswitchinterval(0.0001)  # a 0.5 ms monitor would otherwise starve the forking thread of the GIL
    config = TradingBreakerConfig(check_interval_seconds=0.0005, require_manual_reset=False)
    everyone = [TradingCircuitBreakers(Portfolio(), config, store=store) for store in _stores(kind, where, desks)]
    breakers = everyone[0]
    for desk in everyone:
        desk.start_monitoring()
    outcomes: List[Dict[str, Any]] = []
    try:
        for number in range(forks):
            engaged_before = breakers.kill_switch_active
            child = Child(lambda report, n=number: _engage_in_child(breakers, n, report), watchdog=3)
            status, reports = child.finish()
            breakers.check_now()  # adopts what the child wrote to a store they share
            for _ in range(5):  # a read that met another process's transaction goes through at a retry
                if not _unwritten(breakers.get_blocking_reasons()):
                    break
                breakers.check_now()
            outcome = {
                "number": number,
                "engaged_before": engaged_before,
                "status": exit_code(status),
                "reports": reports,
                "parent_reasons": breakers.get_blocking_reasons(),
            }
            if breakers.kill_switch_active:
                outcome["released"] = _release(breakers)
            outcomes.append(outcome)
            if stop_at_loss and (status != 0 or not all(report.get("written") for report in reports)):
                break
    finally:
        stopped = [desk.stop_monitoring(timeout=5) for desk in everyone]
        for desk in everyone:
            desk.close()
    return [*outcomes, {"stopped": all(stopped)}]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["memory", "sqlite", "redis"])
    parser.add_argument("where", help="a directory (sqlite), <redis url>#<namespace> (redis), anything (memory)")
    parser.add_argument("forks", type=int)
    parser.add_argument("--desks", type=int, default=1)
    parser.add_argument("--stop-at-loss", action="store_true")
    arguments = parser.parse_args()
    print(
        json.dumps(
            storm(
                arguments.kind,
                arguments.where,
                arguments.forks,
                desks=arguments.desks,
                stop_at_loss=arguments.stop_at_loss,
            )
        )
    )
