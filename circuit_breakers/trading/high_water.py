"""The safety core's durable values: its own high-water mark and the drawdown baseline.

A mixin over :class:`~circuit_breakers.trading.safety_state.SafetyState` (it keeps no state of its
own); every method runs with the core's lock held. What is stricter (a higher mark, a baseline
forgotten) applies at once and is written when the store takes it; what is less strict (a re-based
or moved mark) is written first and applies only once written.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Dict, Optional

from circuit_breakers.events import Pending
from circuit_breakers.trading.records import BASELINE, HIGH_WATER, baseline_text, number, text_of
from circuit_breakers.trading.safety_state import SafetyState


class HighWaterMark(SafetyState):
    """Raising, re-basing, moving and adopting the high-water mark and the drawdown baseline."""

    def raise_high_water(self, total: Decimal, pending: Pending) -> None:
        """Raise the high-water mark to ``total`` if higher (stricter: applied at once, written when it can)."""
        if self.high_water is not None and total <= self.high_water:
            return
        self.high_water = total

        def merge(current: Optional[str]) -> Optional[str]:
            try:
                stored = number(current)
            except ValueError:
                stored = None
            return current if stored is not None and stored >= total else str(total)

        self._queue(HIGH_WATER, merge, self._adopt_high_water)
        self._flush(pending)

    def _adopt_high_water(self, stored: Optional[str], pending: Pending) -> None:
        """A higher mark another process wrote meanwhile is the desk's: adopt it (stricter)."""
        try:
            mark = number(stored)
        except ValueError:
            return
        if mark is not None and (self.high_water is None or mark > self.high_water):
            self.high_water = mark

    def set_high_water(self, value: Optional[Decimal], baseline: Optional[Decimal], pending: Pending) -> None:
        """Replace the high-water mark and (unless None) the baseline: written first. Raises StateStoreError."""
        self._write_now(HIGH_WATER, lambda current: None if value is None else str(value))
        self.high_water = value
        if baseline is not None:
            self._write_now(BASELINE, lambda current: baseline_text(baseline))
            self.baseline = baseline

    def clear_baseline(self, pending: Pending) -> None:
        """Forget the drawdown baseline (the provider saw a new peak): stricter, so applied at once."""
        self.baseline = Decimal(0)
        self._queue(BASELINE, lambda current: None)
        self._flush(pending)

    def move_high_water(self, delta: Decimal, pending: Pending) -> None:
        """Move the stored high-water mark by a cash flow; written first. Raises StateStoreError."""
        if self.high_water is None:
            return

        def moved(current: Optional[str]) -> Optional[str]:
            mark = (number(current) if current is not None else self.high_water) or Decimal(0)
            mark += delta
            return str(mark) if mark > 0 else None

        stored = self._write_now(HIGH_WATER, moved)
        self.high_water = number(stored)

    def _merge_marks(self, values: Dict[str, str], pending: Pending) -> None:
        """Adopt the stored mark and baseline, unless this process's own wait in the outbox; garbage in
        either engages the kill switch and is overwritten with what this process holds."""
        for ref, attribute in ((HIGH_WATER, "high_water"), (BASELINE, "baseline")):
            text = values.get(ref[1])
            if ref in self._outbox:
                continue  # ours is newer, and on its way
            try:
                value = number(text)
            except ValueError as exc:
                mine: Optional[Decimal] = getattr(self, attribute)
                self._garbage_value(ref, str(text), str(exc), functools.partial(text_of, mine), pending)
                continue
            if attribute == "high_water":
                self.high_water = value
            else:
                self.baseline = Decimal(0) if value is None else value
