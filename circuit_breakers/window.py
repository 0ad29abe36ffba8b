"""Sliding windows of counts in time buckets: memory bounded by the bucket count, not the call count.

The owner holds its lock around every method. One thing may happen without the lock: counting a
success into the newest bucket through :attr:`BucketedWindow.live` (see there), which is how a
breaker keeps its closed-path call free of locks. Times are passed in (seconds from the owner's
monotonic clock), so the window never reads a clock itself.
"""

from __future__ import annotations

import itertools
from typing import Callable, List, Optional, Tuple


class Tally:
    """A counter that any thread may increment without a lock: ``tally.add()`` is one C call.

    ``add`` is ``itertools.count().__next__``, atomic under the GIL. :meth:`value` reads it by
    taking one more number and subtracting the numbers taken by earlier reads; call it under the
    owner's lock (two concurrent reads could each see the other's probe).
    """

    __slots__ = ("add", "_probes")

    def __init__(self) -> None:
        self.add: Callable[[], int] = itertools.count().__next__
        self._probes = 0

    def value(self) -> int:
        """The number of ``add()`` calls so far."""
        taken = self.add() - self._probes
        self._probes += 1
        return taken


_NO_BUCKET: Tuple[float, float, Callable[[], int]] = (0.0, 0.0, Tally().add)  # an empty range


class BucketedWindow:
    """Calls and failures over the last ``window_seconds``, in ``buckets`` equal time buckets.

    An event stops counting between ``window_seconds - window_seconds / buckets`` and
    ``window_seconds`` after it happened, never later: with the default 60 buckets of a 60 s window,
    each expires in the second before its 60th.
    """

    __slots__ = ("_width", "_size", "_calls", "_failures", "_tallies", "_folded", "_head", "calls", "failures", "live")

    def __init__(self, window_seconds: float, buckets: int = 60) -> None:
        self._width = window_seconds / buckets
        self._size = buckets
        self._head = -(2**62)  # index (time // width) of the newest bucket in use; none yet
        self.calls = 0  # totals over the live buckets, as of the last method call
        self.failures = 0
        self.live = _NO_BUCKET
        """``(start, end, add)`` of the newest bucket. Lock-free success counting: if
        ``start <= now < end``, ``add()`` counts a success at ``now``; otherwise count it with
        :meth:`add` under the lock (which moves the newest bucket on). Every bucket keeps the tally
        it was given until it expires, so a count that lands late (its thread was descheduled
        between reading ``live`` and counting) still counts in its own bucket, never elsewhere."""
        self.clear()

    def _fold(self) -> None:
        """Move the lock-free counts into the totals."""
        for slot, tally in enumerate(self._tallies):
            if tally is not None:
                fresh = tally.value() - self._folded[slot]
                if fresh:
                    self._folded[slot] += fresh
                    self._calls[slot] += fresh
                    self.calls += fresh

    def _advance(self, now: float) -> int:
        self._fold()
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
                    calls[slot] = failures[slot] = self._folded[slot] = 0
                    self._tallies[slot] = None
            self._head = index
            slot = index % self._size
            tally = self._tallies[slot] = Tally()
            self.live = (index * self._width, (index + 1) * self._width, tally.add)
            return slot
        # A clock that stepped back (only an injected one can) counts into the newest bucket.
        return head % self._size

    def add(self, now: float, failed: bool) -> Tuple[int, int]:
        """Count one call at time ``now``, a failure if ``failed``; return ``(calls, failures)`` in the window."""
        slot = self._advance(now)
        self._calls[slot] += 1
        self.calls += 1
        if failed:
            self._failures[slot] += 1
            self.failures += 1
        return self.calls, self.failures

    def totals(self, now: float) -> Tuple[int, int]:
        """Return ``(calls, failures)`` in the window ending at ``now``."""
        self._advance(now)
        return self.calls, self.failures

    def clear(self) -> None:
        """Forget every event (and every lock-free count still on its way)."""
        self._calls = [0] * self._size
        self._failures = [0] * self._size
        self._tallies: List[Optional[Tally]] = [None] * self._size
        self._folded = [0] * self._size  # how much of each bucket's tally is in _calls already
        self.calls = self.failures = 0
        self._head = -(2**62)
        self.live = _NO_BUCKET  # the next success takes the lock and opens a bucket
