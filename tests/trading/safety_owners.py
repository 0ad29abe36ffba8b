"""Owners of one trading state, for the safety-state contract suites: several TradingCircuitBreakers on
one store (as several processes would share it), their kill handlers, the audit events they log, and
a real child process that opens a SQLite state file and says what it sees.

An "owner" is one TradingCircuitBreakers. Two owners of one backend stand for two processes: on a
MemoryStore they share the one object; on SQLite each has its own SqliteStore on the same path; on
Redis each has its own client on the same namespace.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from circuit_breakers import ManualClock, StateStoreError, TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.stores import Store, Tables

from ..stores.backends import Backend, SqliteBackend
from .conftest import RESET_KEY, START, FakeProvider

ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0
"""The longest a bounded wait for another thread or process may take; none should come close."""

D = Decimal


class Kills:
    """A kill handler that remembers every reason it was called with; waits for calls made on other threads."""

    def __init__(self) -> None:
        self.reasons: List[str] = []
        self._changed = threading.Condition()

    def __call__(self, reason: str) -> None:
        with self._changed:
            self.reasons.append(reason)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = WAIT) -> List[str]:
        """The reasons once at least ``count`` calls were made; fails after ``timeout`` seconds."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.reasons) >= count, timeout), self.reasons
            return list(self.reasons)


class Desk:
    """Owners of one backend's trading state, on one ManualClock; all closed at teardown."""

    def __init__(self, backend: Backend, clock: ManualClock) -> None:
        self.backend = backend
        self.clock = clock
        self.owners: List[TradingCircuitBreakers] = []
        self._stores: Dict[int, Store] = {}

    @property
    def kind(self) -> str:
        return self.backend.kind

    def owner(
        self, provider: Optional[FakeProvider] = None, *, reset_key: Optional[str] = RESET_KEY, **fields: Any
    ) -> TradingCircuitBreakers:
        """A new owner (a new "process") on the backend's state, with its own handle on the store."""
        store = self.backend.open()
        breakers = TradingCircuitBreakers(
            FakeProvider() if provider is None else provider,
            TradingBreakerConfig(**fields),
            reset_key=reset_key,
            store=store,
            clock=self.clock,
        )
        self.owners.append(breakers)
        self._stores[id(breakers)] = store
        return breakers

    def store_of(self, breakers: TradingCircuitBreakers) -> Store:
        """The handle on the store that ``breakers`` was given (for memory: the one shared object)."""
        return self._stores[id(breakers)]

    def owner_with_kills(
        self, provider: Optional[FakeProvider] = None, **fields: Any
    ) -> Tuple[TradingCircuitBreakers, Kills]:
        breakers = self.owner(provider, **fields)
        kills = Kills()
        breakers.register_kill_handler(kills)
        return breakers, kills

    def restart(self, breakers: TradingCircuitBreakers, **fields: Any) -> TradingCircuitBreakers:
        """Drop ``breakers`` (closed, its handle gone) and build its successor on the same state."""
        breakers.close()
        provider = breakers.provider
        assert isinstance(provider, FakeProvider)
        return self.owner(provider, **fields)

    def sees(self, breakers: TradingCircuitBreakers, condition: Callable[[], object]) -> None:
        """``breakers.check_now()``, after which ``condition()`` holds: at once on memory and SQLite. On Redis,
        within WAIT seconds of further check_now() calls: a check_now() racing the listener's own re-read
        yields to it, and a re-read that began before the change may be the one that counts."""
        breakers.check_now()
        if self.kind != "redis":
            assert condition(), breakers.get_blocking_reasons()
            return
        deadline = time.monotonic() + WAIT
        while not condition():
            assert time.monotonic() < deadline, breakers.get_blocking_reasons()
            time.sleep(0.01)  # the listener re-reads every 0.05 s
            breakers.check_now()

    def records(self) -> Tables:
        """What the store holds now, read through a handle of its own."""
        return self.backend.open().read()

    @property
    def path(self) -> Path:
        assert isinstance(self.backend, SqliteBackend)
        return self.backend.path

    def describe(self) -> str:
        return self.backend.open().describe()

    def close(self) -> None:
        for breakers in self.owners:
            if isinstance(breakers.provider, FakeProvider):
                breakers.provider.release.set()
            assert breakers.stop_monitoring(timeout=WAIT), "monitor thread did not stop"
            breakers.close()


@pytest.fixture
def desk(backend: Backend, clock: ManualClock) -> Iterator[Desk]:
    """Owners of the trading state of each store in turn (memory, SQLite, Redis)."""
    made = Desk(backend, clock)
    yield made
    made.close()


def without_listener(breakers: TradingCircuitBreakers) -> TradingCircuitBreakers:
    """Stop a Redis owner's store listener so that only its own calls re-read the store (no race with it)."""
    subscription = breakers._subscription
    if subscription is not None:
        subscription.close()
    return breakers


def engage_by_drawdown(breakers: TradingCircuitBreakers, provider: FakeProvider) -> None:
    """A peak of 1,000,000, then 880,000 (-12 %): the kill switch engages on its own."""
    provider.total_value, provider.max_drawdown = D(1_000_000), D(0)
    breakers.check_now()
    provider.total_value = D(880_000)
    breakers.check_now()
    assert breakers.kill_switch_active


def fail_writes_of(store: Store, refused: Callable[[str, str], bool]) -> Callable[[], None]:
    """Make the writes of ``store`` to the records ``refused(table, key)`` picks fail as a full disk would, until
    the returned function is called (backends.fail_writes refuses every write; this one picks)."""
    saved_cas, saved_put = store.compare_and_set, store.put

    def refuse(table: str, key: str) -> None:
        why = "OSError: [Errno 28] No space left on device"
        raise StateStoreError(f"{store.describe()}: cannot write {table}/{key}: {why}")

    def compare_and_set(table: str, key: str, expected: Optional[str], new: Optional[str]) -> bool:
        if refused(table, key):
            refuse(table, key)
        return saved_cas(table, key, expected, new)

    def put(table: str, key: str, value: Optional[str]) -> None:
        if refused(table, key):
            refuse(table, key)
        saved_put(table, key, value)

    setattr(store, "compare_and_set", compare_and_set)  # noqa: B010 - an instance attribute over the method
    setattr(store, "put", put)  # noqa: B010

    def restore() -> None:
        setattr(store, "compare_and_set", saved_cas)  # noqa: B010
        setattr(store, "put", saved_put)  # noqa: B010

    return restore


def state_reasons(breakers: TradingCircuitBreakers) -> List[str]:
    return [reason for reason in breakers.get_blocking_reasons() if reason.startswith("state: ")]


class AuditWatch:
    """The audit entries every owner in this process logs (``circuit_breakers.audit``), whatever the store."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        caplog.set_level(logging.WARNING, logger="circuit_breakers.audit")

    def entries(self) -> List[Dict[str, Any]]:
        return [
            json.loads(record.getMessage())
            for record in self._caplog.records
            if record.name == "circuit_breakers.audit" and record.getMessage().startswith("{")
        ]

    def events(self) -> List[str]:
        return [entry["event"] for entry in self.entries()]


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> AuditWatch:
    return AuditWatch(caplog)


# --- a real child process on a SQLite state file ------------------------------------------------------

PEEK = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime
    from decimal import Decimal
    from circuit_breakers import ManualClock, StateStoreError, TradingBreakerConfig, TradingCircuitBreakers

    args = json.loads(sys.argv[1])

    class Provider:
        def get_total_value(self): return Decimal(args["value"])
        def get_daily_pnl(self): return Decimal(0)
        def get_daily_pnl_pct(self): return Decimal(0)
        def get_max_drawdown(self): return Decimal(0)
        def get_position_concentration(self, symbol): return Decimal(0)

    clock = ManualClock(start=datetime.fromisoformat(args["start"]))
    breakers = TradingCircuitBreakers(
        Provider(), TradingBreakerConfig(**args["config"]), reset_key=args["key"], state_path=args["path"], clock=clock
    )
    if args["check"]:
        breakers.check_now()
    status = breakers.get_status()
    drawdown = status.details["max_drawdown"]
    print(json.dumps({
        "kill_switch": breakers.kill_switch_active,
        "can_trade": breakers.can_trade(),
        "reasons": list(status.reasons),
        "high_water": None if drawdown["own_high_water_mark"] is None else str(drawdown["own_high_water_mark"]),
        "own_drawdown": None if drawdown["own_drawdown_pct"] is None else str(drawdown["own_drawdown_pct"]),
        "failed_attempts": drawdown["reset"]["failed_attempts"],
        "locked_out_for": drawdown["reset"]["locked_out_for"],
    }))
    breakers.close()
    """
)


MILLION = D(1_000_000)


def peek_process(
    path: Path,
    *,
    value: Decimal = MILLION,
    check: bool = False,
    key: str = RESET_KEY,
    start: Any = START,
    **config: Any,
) -> subprocess.CompletedProcess[str]:
    """Run :data:`PEEK` in a real child process on the state file at ``path`` and return how it ended."""
    argument = {"path": str(path), "value": str(value), "check": check, "key": key, "config": config}
    argument["start"] = start.isoformat()
    return subprocess.run(
        [sys.executable, "-c", PEEK, json.dumps(argument)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def peek(path: Path, **options: Any) -> Dict[str, Any]:
    """What a new owner in a real child process sees on the state file at ``path`` (after one check_now()
    with ``check=True``), on a ManualClock at ``start`` (the parent's START by default: the same trading day).
    Options: those of :func:`peek_process`."""
    done = peek_process(path, **options)
    assert done.returncode == 0, done.stderr
    result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
