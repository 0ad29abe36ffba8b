"""Shared helpers for the trading tests: a scriptable FakeProvider, a ManualClock and a breakers factory."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Sequence

import pytest

from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers

START = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
"""Monday 2026-01-05 09:30 in New York (EST, UTC-5): the start of every ManualClock here."""

NY_MIDNIGHT_AFTER_START = datetime(2026, 1, 6, 5, 0, tzinfo=timezone.utc)
"""The first New York midnight after START (2026-01-06 00:00 EST)."""

RESET_KEY = "Kx7-trading-reset-secret-9Qz"
WRONG_KEY = "not-the-reset-key-4Lm"

PROVIDER_METHODS = frozenset(
    {
        "get_total_value",
        "get_daily_pnl",
        "get_daily_pnl_pct",
        "get_max_drawdown",
        "get_position_concentration",
        "get_daily_returns",
    }
)


class FakeProvider:
    """A PortfolioProvider whose figures are plain attributes, with switches to misbehave.

    ``mode`` is ``"ok"`` (answer the figures), ``"raise"`` (raise ``error``), ``"garbage"`` (return
    ``garbage``) or ``"hang"`` (set ``hanging`` and block on ``release`` before answering). ``only``
    limits the misbehaviour to some method names. ``get_daily_returns`` exists only when ``returns``
    is given (or :meth:`set_returns` is called). Thread-safe call counting: ``calls`` counts
    ``get_total_value`` calls (one per reading), and :meth:`notify_after` gives an Event set once
    that count reaches a number.
    """

    def __init__(
        self,
        *,
        total_value: Decimal = Decimal("1000000"),
        daily_pnl: Decimal = Decimal(0),
        daily_pnl_pct: Decimal = Decimal(0),
        max_drawdown: Decimal = Decimal(0),
        concentration: Optional[Dict[str, Decimal]] = None,
        returns: Optional[Sequence[Any]] = None,
    ) -> None:
        self.total_value: Any = total_value
        self.daily_pnl: Any = daily_pnl
        self.daily_pnl_pct: Any = daily_pnl_pct
        self.max_drawdown: Any = max_drawdown
        self.concentration: Dict[str, Any] = dict(concentration or {})
        self.mode = "ok"
        self.only: Optional[FrozenSet[str]] = None
        self.error: BaseException = ConnectionError("provider unreachable")
        self.garbage: Any = None
        self.release = threading.Event()
        self.hanging = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()
        self._waiters: List[tuple[int, threading.Event]] = []
        if returns is not None:
            self.set_returns(returns)

    # --- switches ---------------------------------------------------------------------------------

    def set_returns(self, returns: Sequence[Any]) -> None:
        self.returns = list(returns)
        self.get_daily_returns: Callable[[], Any] = self._get_daily_returns

    def misbehave(self, mode: str, *, only: Optional[Sequence[str]] = None, **what: Any) -> None:
        assert mode in ("ok", "raise", "garbage", "hang"), mode
        if only is not None:
            assert set(only) <= PROVIDER_METHODS, only
        self.only = None if only is None else frozenset(only)
        if "error" in what:
            self.error = what.pop("error")
        if "garbage" in what:
            self.garbage = what.pop("garbage")
        assert not what, what
        self.mode = mode

    def heal(self) -> None:
        self.mode = "ok"
        self.only = None

    def notify_after(self, count: int) -> threading.Event:
        """An Event set once ``get_total_value`` has been called ``count`` more times."""
        event = threading.Event()
        with self._lock:
            self._waiters.append((self.calls + count, event))
        return event

    # --- the protocol -----------------------------------------------------------------------------

    def _answer(self, method: str, value: Any) -> Any:
        if self.mode != "ok" and (self.only is None or method in self.only):
            if self.mode == "raise":
                raise self.error
            if self.mode == "garbage":
                return self.garbage
            if self.mode == "hang":
                self.hanging.set()
                assert self.release.wait(10), "a hanging FakeProvider was never released"
        return value

    def get_total_value(self) -> Decimal:
        with self._lock:
            self.calls += 1
            for target, event in self._waiters:
                if self.calls >= target:
                    event.set()
        return self._answer("get_total_value", self.total_value)  # type: ignore[no-any-return]

    def get_daily_pnl(self) -> Decimal:
        return self._answer("get_daily_pnl", self.daily_pnl)  # type: ignore[no-any-return]

    def get_daily_pnl_pct(self) -> Decimal:
        return self._answer("get_daily_pnl_pct", self.daily_pnl_pct)  # type: ignore[no-any-return]

    def get_max_drawdown(self) -> Decimal:
        return self._answer("get_max_drawdown", self.max_drawdown)  # type: ignore[no-any-return]

    def get_position_concentration(self, symbol: str) -> Decimal:
        return self._answer("get_position_concentration", self.concentration.get(symbol, Decimal(0)))  # type: ignore[no-any-return]

    def _get_daily_returns(self) -> Any:
        return self._answer("get_daily_returns", self.returns)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.release.set()


MakeBreakers = Callable[..., TradingCircuitBreakers]


@pytest.fixture
def make_breakers(provider: FakeProvider, clock: ManualClock) -> Iterator[MakeBreakers]:
    """``make_breakers(provider=..., clock=..., reset_key=None, state_path=None, **config_fields)``.

    Defaults: the ``provider`` fixture and the ManualClock fixture (pass ``clock=None`` for the real
    clock). Monitoring is stopped and hanging providers released at teardown.
    """
    created: List[TradingCircuitBreakers] = []
    unset: Any = object()

    def make(
        provider_: Any = None,
        *,
        clock_: Any = unset,
        reset_key: Optional[str] = None,
        state_path: Any = None,
        **fields: Any,
    ) -> TradingCircuitBreakers:
        breakers = TradingCircuitBreakers(
            provider if provider_ is None else provider_,
            TradingBreakerConfig(**fields),
            reset_key=reset_key,
            state_path=state_path,
            clock=clock if clock_ is unset else clock_,
        )
        created.append(breakers)
        return breakers

    yield make
    for breakers in created:
        if isinstance(breakers.provider, FakeProvider):
            breakers.provider.release.set()
    provider.release.set()
    for breakers in created:
        assert breakers.stop_monitoring(timeout=5), "monitor thread did not stop"
        breakers.close()


@pytest.fixture
def breakers(make_breakers: MakeBreakers) -> TradingCircuitBreakers:
    """Default-config breakers on the ``provider`` fixture and the ManualClock, without a reset key."""
    return make_breakers()


@pytest.fixture
def keyed_breakers(make_breakers: MakeBreakers) -> TradingCircuitBreakers:
    """Default-config breakers with RESET_KEY configured."""
    return make_breakers(reset_key=RESET_KEY)


def advance_to(clock: ManualClock, when: datetime) -> None:
    clock.advance((when - clock.now()).total_seconds())


def unit_returns() -> List[Decimal]:
    """Five daily returns with mean 0 and sample standard deviation exactly 1 (percent)."""
    return [Decimal(1), Decimal(-1), Decimal(1), Decimal(-1), Decimal(0)]


class Recorder:
    """Collects callback arguments, thread-safely."""

    def __init__(self) -> None:
        self.calls: List[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.calls.append(args)

    def names(self) -> List[Any]:
        return [call[0] for call in self.calls]


@pytest.fixture
def recorder() -> Callable[[], Recorder]:
    return Recorder
