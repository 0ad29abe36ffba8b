"""The one source of time: ``monotonic()`` for intervals, ``now()`` for wall time and day boundaries.

Every interval in the library (open timeouts, failure windows, rate windows, staleness) is measured
with ``monotonic()``, so a wall clock stepped by NTP or a DST change never opens or closes anything.
``now()`` is only used for display (``opened_at``) and for deciding which trading day it is.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the library needs from a clock. Both methods must be thread-safe."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware."""
        ...


class SystemClock:
    """The real clock. Reads ``time.monotonic`` and ``datetime.now`` at call time, so freezegun works."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to, for tests and simulations. Thread-safe.

    >>> clock = ManualClock()
    >>> clock.advance(1.5)
    >>> clock.monotonic()
    1.5
    """

    def __init__(self, start: datetime | None = None, monotonic_start: float = 0.0) -> None:
        self._lock = threading.Lock()  # guards _mono and _wall
        self._mono = float(monotonic_start)
        self._wall = start if start is not None else datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
        if self._wall.tzinfo is None:
            raise ValueError(f"ManualClock start must be timezone-aware, got {start!r}")

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (must be >= 0)."""
        if not seconds >= 0:
            raise ValueError(f"ManualClock.advance needs seconds >= 0, got {seconds!r}")
        with self._lock:
            self._mono += seconds
            self._wall += timedelta(seconds=seconds)

    def set_wall(self, wall: datetime) -> None:
        """Step the wall clock alone (as NTP or a DST change would), leaving monotonic time alone."""
        if wall.tzinfo is None:
            raise ValueError(f"ManualClock wall time must be timezone-aware, got {wall!r}")
        with self._lock:
            self._wall = wall

    def __repr__(self) -> str:
        return f"ManualClock(monotonic={self._mono!r}, now={self._wall.isoformat()!r})"


SYSTEM_CLOCK = SystemClock()
