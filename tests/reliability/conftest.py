"""Fixtures for the reliability tests: the trading FakeProvider and a breakers factory that cleans up.

The ``clock`` fixture of tests/conftest.py (a ManualClock at 2026-01-05 14:30 UTC, 09:30 in New
York) drives everything unless a test passes ``clock_=None`` for the real clock.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest

from circuit_breakers import ManualClock, TradingBreakerConfig, TradingCircuitBreakers

from ..trading.conftest import FakeProvider

WAIT = 5.0
"""The longest any bounded wait or join here may take; none should come close."""

MakeBreakers = Callable[..., TradingCircuitBreakers]


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.release.set()


@pytest.fixture
def make_breakers(provider: FakeProvider, clock: ManualClock) -> Iterator[MakeBreakers]:
    """``make_breakers(provider_=None, *, clock_=clock, reset_key=None, state_path=None, **config)``.

    Monitoring is stopped (bounded) and hanging providers released at teardown.
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
    provider.release.set()
    for breakers in created:
        if isinstance(breakers.provider, FakeProvider):
            breakers.provider.release.set()
    for breakers in created:
        assert breakers.stop_monitoring(timeout=WAIT), "monitor thread did not stop"
        breakers.close()


def join_all(threads: List[threading.Thread], timeout: float = WAIT) -> None:
    """Join every thread with one shared deadline; fail naming those still alive (a deadlock)."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"
