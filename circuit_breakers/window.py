"""Sliding windows of counts in time buckets: memory bounded by the bucket count, not the call count.

Not thread-safe: the owner holds its lock around every method. Times are passed in (seconds from
the owner's monotonic clock), so the window never reads a clock itself.
"""

from __future__ import annotations

from typing import List, Tuple


class BucketedWindow:
    """Calls and failures over the last ``window_seconds``, in ``buckets`` equal time buckets.

    An event stops counting between ``window_seconds - window_seconds / buckets`` and
    ``window_seconds`` after it happened, never later: with the default 60 buckets of a 60 s window,
    each expires in the second before its 60th.
    """

    __slots__ = ("_width", "_size", "_calls", "_failures", "_head", "calls", "failures")

    def __init__(self, window_seconds: float, buckets: int = 60) -> None:
        self._width = window_seconds / buckets
        self._size = buckets
        self._calls: List[int] = [0] * buckets
        self._failures: List[int] = [0] * buckets
        self._head = -(2**62)  # index (time // width) of the newest bucket in use; none yet
        self.calls = 0  # totals over the live buckets
        self.failures = 0

    def _advance(self, now: float) -> int:
        index = int(now // self._width)
        head = self._head
        if index > head:
            if index - head >= self._size:
                self.clear()
            else:
                calls, failures, size = self._calls, self._failures, self._size
                for stale in range(head + 1, index + 1):
                    slot = stale % size
                    self.calls -= calls[slot]
                    self.failures -= failures[slot]
                    calls[slot] = failures[slot] = 0
            self._head = index
            return index % self._size
        # A clock that stepped back (only an injected one can) counts into the newest bucket.
        return head % self._size

    def add(self, now: float, failed: bool) -> None:
        """Count one call at time ``now``, a failure if ``failed``."""
        slot = self._advance(now)
        self._calls[slot] += 1
        self.calls += 1
        if failed:
            self._failures[slot] += 1
            self.failures += 1

    def totals(self, now: float) -> Tuple[int, int]:
        """Return ``(calls, failures)`` in the window ending at ``now``."""
        self._advance(now)
        return self.calls, self.failures

    def clear(self) -> None:
        """Forget every event."""
        self._calls = [0] * self._size
        self._failures = [0] * self._size
        self.calls = self.failures = 0
