"""Fixtures for the reliability tests: the trading tests' FakeProvider and breakers factory, shared.

The ``clock`` fixture of tests/conftest.py (a ManualClock at 2026-01-05 14:30 UTC, 09:30 in New
York) drives everything unless a test passes ``clock_=None`` for the real clock.
"""

from __future__ import annotations

import threading
import time
from typing import List

from ..trading.conftest import FakeProvider, MakeBreakers, make_breakers, provider

__all__ = ["WAIT", "FakeProvider", "MakeBreakers", "join_all", "make_breakers", "provider"]  # fixtures shared

WAIT = 5.0
"""The longest any bounded wait or join here may take; none should come close."""


def join_all(threads: List[threading.Thread], timeout: float = WAIT) -> None:
    """Join every thread with one shared deadline; fail naming those still alive (a deadlock)."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"
