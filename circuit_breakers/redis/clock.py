"""The client side of the namespace clock (``scripts/clock.lua``): time that a stepped server clock cannot move.

Every script that needs the time passes the caller's estimate of namespace time, taken from its own
monotonic clock since its last reply; the script accepts the server's clock only within
``tolerance_seconds`` of that estimate and otherwise moves the namespace's offset so that time
continues from the caller's clock. A step of the server's clock, either way, thus moves namespace
time by at most the tolerance, and namespace time never goes backwards. A client that has no
estimate yet (its first call) takes namespace time as the server gives it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, List, Optional, Tuple

from circuit_breakers.config import check_number

logger = logging.getLogger(__name__)


class NamespaceClock:
    """One client's view of a namespace's clock. Thread-safe.

    ``server_time``: for tests, a function giving the "server's" time in seconds, used instead of
    Redis ``TIME``; ``monotonic`` then replaces this process's monotonic clock too.
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
        self.steps_seen = 0  # replies that moved the offset, for status and tests

    def arguments(self) -> Tuple[List[str], float]:
        """The clock's ARGV for one script call, and the monotonic time they were taken at."""
        mono = self._monotonic()
        with self._lock:
            anchor = self._anchor
        estimate = -1 if anchor is None else anchor[0] + round((mono - anchor[1]) * 1_000_000)
        given = -1 if self._server_time is None else round(self._server_time() * 1_000_000)
        return [str(estimate), str(round(self.tolerance_seconds * 1_000_000)), str(given)], mono

    def observe(self, now: int, stepped: bool, mono: float) -> None:
        """Remember the namespace time a reply carried, as of the call's monotonic time."""
        with self._lock:
            if self._anchor is None or now >= self._anchor[0]:
                self._anchor = (now, mono)
            if stepped:
                self.steps_seen += 1
        if stepped:
            logger.warning(
                "the redis server's clock disagrees with this process's by more than %gs: "
                "namespace time continues from this process's monotonic clock",
                self.tolerance_seconds,
            )

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
