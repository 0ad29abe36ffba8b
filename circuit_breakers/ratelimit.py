"""Rate limits over exact sliding windows: "at most N permits in any P seconds", several at once.

A :class:`RateLimiter` keeps, for each :class:`Limit`, the monotonic times of the permits it
admitted, oldest first. A permit admitted at ``t`` counts while ``t + period > now``, that is while
``t`` lies in the half-open window ``(now - period, now]``: at ``now == t + period`` it no longer
counts. An attempt is admitted only if every limit has fewer than ``max_calls`` permits in its
window; the check and the record happen under one lock, so two threads never share the last permit
of a window and a permit refused by one limit is recorded by none. Refused attempts record nothing.

A time is appended only to a window holding fewer than ``max_calls``, and each is appended once and
removed once: memory is bounded by the sum of ``max_calls`` however many attempts are made, and an
attempt costs O(1) amortised per limit.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple, TypeVar

from typing_extensions import ParamSpec, Protocol

from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import check_int, check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError, RateLimitExceeded

P = ParamSpec("P")
P2 = ParamSpec("P2")
S = TypeVar("S")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_MAX_WAIT = 0.05
"""Longest real wait of a blocked acquire() before it reads its clock again (which may be fake)."""


@dataclass(frozen=True)
class Limit:
    """At most ``max_calls`` permits in any ``period_seconds`` (stored as a float).

    >>> Limit(10, 60)
    Limit(max_calls=10, period_seconds=60.0)
    """

    max_calls: int
    period_seconds: float

    def __post_init__(self) -> None:
        check_int("max_calls", self.max_calls, 1)
        object.__setattr__(self, "period_seconds", check_number("period_seconds", self.period_seconds))


def check_limits(name: object, limits: Tuple[object, ...], kind: str) -> None:
    """Validate a rate limiter's name and limits: ConfigTypeError / ConfigError naming what is wrong."""
    if not isinstance(name, str):
        raise ConfigTypeError(f"rate limiter name must be a str, got {name!r}")
    if not name.strip():
        raise ConfigError(f"rate limiter name must not be blank, got {name!r}")
    if not limits:
        raise ConfigError(f"{kind} needs at least one Limit, got none")
    periods = []
    for limit in limits:
        if not isinstance(limit, Limit):
            raise ConfigTypeError(f"{kind} limits must be Limit objects, got {limit!r}")
        periods.append(limit.period_seconds)
    for period in periods:
        if periods.count(period) > 1:
            raise ConfigError(f"{kind} limits must have distinct periods, got {period:g}s twice in {limits!r}")


class RateLimiter:
    """Admits a permit only while every one of its limits has room. Thread-safe.

    >>> from circuit_breakers.clock import ManualClock
    >>> limiter = RateLimiter(Limit(2, 60), Limit(100, 3600), name="quotes", clock=ManualClock())
    >>> limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire()
    (True, True, False)
    >>> limiter.retry_after()
    60.0

    Time is read only from ``clock`` (default: the system's monotonic clock, looked up at each read
    so freezegun moves it). Blocked :meth:`acquire` calls are not served in arrival order: whichever
    caller checks first once a permit frees takes it, a :meth:`try_acquire` included.
    """

    def __init__(self, *limits: Limit, name: str = "rate_limiter", clock: Optional[Clock] = None) -> None:
        check_limits(name, limits, "RateLimiter")
        if clock is None:
            clock = SYSTEM_CLOCK
        elif not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
        self.name = name
        self._limits = limits
        self._mono = clock.monotonic
        # _lock guards every deque in _windows, and the clock is read under it too, so each deque
        # stays sorted oldest first. _changed (on the same lock) wakes blocked acquire() calls.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._windows: Tuple[Tuple[Deque[float], int, float], ...] = tuple(
            (deque(), limit.max_calls, limit.period_seconds) for limit in limits
        )

    @property
    def limits(self) -> Tuple[Limit, ...]:
        """The limits, in the order given."""
        return self._limits

    # --- decision and record (lock held) ----------------------------------------------------------

    def _wait(self, now: float) -> float:
        """Drop the times that left their windows; return seconds until every limit has room (0.0: now)."""
        wait = 0.0
        for window, max_calls, period in self._windows:
            while window and window[0] + period <= now:
                window.popleft()
            if len(window) >= max_calls:
                # Positive: the oldest time still counts, so window[0] + period > now.
                wait = max(wait, window[0] + period - now)
        return wait

    def _admit(self, now: float) -> float:
        """Record a permit at ``now`` and return 0.0, or record nothing and return the (positive) wait."""
        wait = self._wait(now)
        if wait == 0.0:
            for window, _, _ in self._windows:
                window.append(now)
        return wait

    # --- permits ------------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a permit and return True if every limit has room now; else return False. Never blocks."""
        with self._lock:
            return self._admit(self._mono()) == 0.0

    def acquire(self, timeout: Optional[float] = None) -> None:
        """Take a permit, blocking until every limit has room or ``timeout`` seconds have passed.

        ``timeout=None`` waits for as long as it takes; ``timeout=0`` never blocks. Raises
        RateLimitExceeded, whose ``retry_after`` is the wait still needed, when the timeout passes
        first; ConfigError or ConfigTypeError for a negative, infinite or non-numeric timeout.

        The timeout is measured on the limiter's clock, and each wait on the condition lasts at most
        0.05 s of real time before that clock is read again: a fake clock (ManualClock, freezegun)
        advanced from another thread wakes a blocked call within 0.05 s, but a fake clock that never
        moves never reaches the timeout either. :meth:`reset` wakes blocked calls at once.
        """
        limit = None if timeout is None else check_number("timeout", timeout, minimum=0.0, inclusive=True)
        with self._changed:
            now = self._mono()
            deadline = None if limit is None else now + limit
            while True:
                wait = self._admit(now)
                if wait == 0.0:
                    return
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0.0:
                        raise RateLimitExceeded(self.name, wait)
                    wait = min(wait, remaining)
                self._changed.wait(min(wait, _MAX_WAIT))
                now = self._mono()

    def _room_and_record(self, record: bool) -> float:
        """Lock held by the caller: the wait until a permit (0.0: now), recording one if ``record`` and 0.0."""
        now = self._mono()
        return self._admit(now) if record else self._wait(now)

    def retry_after(self) -> float:
        """Seconds until a permit could be admitted (0.0: now), if no one else takes it first."""
        with self._lock:
            return self._wait(self._mono())

    def reset(self) -> None:
        """Forget every admitted permit, so that every limit has full room, and wake blocked acquire() calls."""
        with self._changed:
            for window, _, _ in self._windows:
                window.clear()
            self._changed.notify_all()

    # --- status -------------------------------------------------------------------------------------

    def status(self) -> Dict[str, Any]:
        """Return a JSON-serialisable snapshot: per limit, the permits in its window and when one frees."""
        with self._lock:
            now = self._mono()
            wait = self._wait(now)
            limits: List[Dict[str, Any]] = [
                {
                    "max_calls": max_calls,
                    "period_seconds": period,
                    "calls_in_window": len(window),
                    "seconds_until_free": window[0] + period - now if len(window) >= max_calls else 0.0,
                }
                for window, max_calls, period in self._windows
            ]
        return {"name": self.name, "seconds_until_permit": wait, "limits": limits}

    def __repr__(self) -> str:
        limits = ", ".join(repr(limit) for limit in self._limits)
        return f"RateLimiter({limits}, name={self.name!r})"


class Permits(Protocol):
    """What the trading layer needs of a rate limiter: RateLimiter here, RedisRateLimiter shared."""

    name: str

    @property
    def limits(self) -> Tuple[Limit, ...]: ...

    def try_acquire(self) -> bool: ...

    def retry_after(self) -> float: ...

    def status(self) -> Dict[str, Any]: ...

    def reset(self) -> None: ...


def acquire_together(*limiters: Permits) -> Optional[Permits]:
    """Take one permit from every limiter, or from none; return None, or the first limiter without room.

    In-process limiters are locked in a fixed order (by ``id``), so concurrent callers cannot
    deadlock. At most one limiter may be remote (its try_acquire decides atomically on its own);
    its decision is taken while the local locks are held, so that a remote refusal leaves the local
    windows untouched: the one place a lock is held across I/O, bounded by the store's timeout.
    """
    local = sorted({limiter for limiter in limiters if isinstance(limiter, RateLimiter)}, key=id)
    remote = [limiter for limiter in limiters if not isinstance(limiter, RateLimiter)]
    if len(remote) > 1:
        raise ConfigError(f"acquire_together takes at most one remote limiter, got {remote!r}")
    held: List[Any] = []  # the locks taken, released in reverse order (cheaper than an ExitStack)
    try:
        for limiter in local:
            limiter._lock.acquire()
            held.append(limiter._lock)
        for candidate in limiters:
            if isinstance(candidate, RateLimiter) and candidate._room_and_record(record=False) > 0.0:
                return candidate
        if remote and not remote[0].try_acquire():
            return remote[0]
        for limiter in local:
            limiter._room_and_record(record=True)
        return None
    finally:
        for lock in reversed(held):
            lock.release()
