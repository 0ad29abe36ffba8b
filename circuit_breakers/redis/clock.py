"""The client side of the namespace clock (``scripts/clock.lua``): time that a stepped server clock cannot move.

Every script that needs the time passes the caller's estimate of namespace time, projected from
its own monotonic clock; the script accepts the server's clock only within ``tolerance_seconds`` of
that estimate and otherwise moves the namespace's offset so that time continues from the caller's
clock. The estimate follows the server's answers only as fast as real clocks drift apart (1 ms a
second, twice NTP's largest slew), so steps too small to be noticed one by one cannot add up: a
step of the server's clock, either way and however it is cut up, moves namespace time by at most
the tolerance. Namespace time never goes backwards. A client that has no estimate yet (its first
call after it started) takes namespace time as the server gives it: should the server's clock have
been stepped while no running client saw it, that step passes (a residual limit, in the README).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, List, Optional, Tuple

from circuit_breakers.config import check_number

logger = logging.getLogger(__name__)

MAX_DRIFT = 0.001
"""How fast a client's estimate may follow the server's clock: a second per thousand seconds."""


class NamespaceClock:
    """One client's view of a namespace's clock. Thread-safe.

    ``server_time``: for tests and replays, a function giving the "server's" time in seconds, used
    instead of Redis ``TIME``; ``monotonic`` replaces this process's monotonic clock (see
    :class:`~circuit_breakers.redis.RedisStore`'s ``clock``, which gives both).
    """

    def __init__(
        self,
        tolerance_seconds: float = 1.0,
        *,
        server_time: Optional[Callable[[], float]] = None,
        monotonic: Optional[Callable[[], float]] = None,
    ) -> None:
        self.tolerance_seconds = check_number("clock_tolerance_seconds", tolerance_seconds, maximum=3600.0)
        self._server_time = server_time
        self._monotonic = monotonic if monotonic is not None else time.monotonic
        self._lock = threading.Lock()  # guards _anchor
        self._anchor: Optional[Tuple[int, float]] = None  # (namespace time in us, monotonic seconds)

    def arguments(self) -> Tuple[List[str], float]:
        """The clock's ARGV for one script call, and the monotonic time they were taken at."""
        mono = self._monotonic()
        with self._lock:
            anchor = self._anchor
        estimate = -1 if anchor is None else anchor[0] + round((mono - anchor[1]) * 1_000_000)
        given = -1 if self._server_time is None else round(self._server_time() * 1_000_000)
        return [str(estimate), str(round(self.tolerance_seconds * 1_000_000)), str(given)], mono

    def observe(self, now: int, stepped: bool, mono: float) -> None:
        """Move the estimate toward the namespace time a reply carried (as of the call's monotonic time),
        by no more than clocks can drift in the time since the last reply."""
        with self._lock:
            anchor = self._anchor
            if anchor is None:
                self._anchor = (now, mono)
            elif mono >= anchor[1]:
                elapsed = mono - anchor[1]
                estimate = anchor[0] + round(elapsed * 1_000_000)
                allowed = round(elapsed * 1_000_000 * MAX_DRIFT)
                self._anchor = (estimate + max(-allowed, min(now - estimate, allowed)), mono)
        if stepped:
            logger.warning(
                "the redis server's clock disagrees with this process's by more than %gs: "
                "namespace time continues from this process's monotonic clock",
                self.tolerance_seconds,
            )

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
