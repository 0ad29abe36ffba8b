"""Latched halts as records: what a halt is, how it is stored, and when a day halt may lift.

A latch is stored as one JSON object (``reason``, ``since``, ``trading_day``, ``actor``, ``id``) in
the store's ``latches`` table under its breaker's name. Decoding is strict: any record that is not
exactly that shape, or whose dates are out of range, is refused with a message naming the field,
so that garbage in a store can only ever block trading (the caller's decision), never crash it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from circuit_breakers.trading.config import TradingBreakerConfig

KILL_SWITCH = "max_drawdown"
"""The latch that is the kill switch."""

DAY_HALTS = ("daily_loss", "volatility")
"""Latches that lift when the trading day rolls over."""

LATCH_NAMES = (KILL_SWITCH, *DAY_HALTS)

CLOCK_SLACK = 60.0
"""Seconds by which the monotonic clock may run behind the wall clock across one trading day
(NTP slewing) before a day halt's lift waits for it; also the most a wall clock stepped forward
can advance a lift."""

_MAX_REASON = 2000  # characters kept of a reason or an actor: a record stays small
_ONE_DAY = dt.timedelta(days=1)
_EARLIEST = dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)
_DST_MARGIN = dt.timedelta(hours=2)


def as_text(value: object, *, limit: int = _MAX_REASON) -> str:
    """``str(value)``, shortened to ``limit`` characters; never raises (a failing ``__str__`` gives the type)."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        text = f"<{type(value).__name__} whose str() failed>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Latch:
    """One latched halt: which breaker, why, since when, on which trading day, by whom."""

    name: str
    reason: str
    since: dt.datetime
    trading_day: dt.date
    actor: Optional[str]
    id: str
    resets: Optional[int] = None  # keyed resets counted in the store when it was engaged (None: not known)

    @classmethod
    def new(
        cls, name: str, reason: object, now: dt.datetime, config: TradingBreakerConfig, *, actor: object, resets: int
    ) -> Latch:
        """A latch engaged now; ``reason`` and ``actor`` are kept as text whatever they are."""
        return cls(
            name,
            as_text(reason),
            now,
            config.trading_day(now),
            None if actor is None else as_text(actor, limit=200),
            uuid.uuid4().hex,
            resets,
        )

    def to_text(self) -> str:
        """The record as the store keeps it."""
        record = {
            "reason": self.reason,
            "since": self.since.isoformat(),
            "trading_day": self.trading_day.isoformat(),
            "actor": self.actor,
            "id": self.id,
            "resets": self.resets,
        }
        return json.dumps(record, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_text(cls, name: str, text: str) -> Latch:
        """Decode a stored record; ValueError naming the problem for anything but a well-formed one.

        Records of the previous format (no ``id``, no ``actor``) are accepted; their id is derived
        from their content, so every process reading one agrees on it.
        """
        try:
            record: Any = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValueError(f"not a JSON object but a {type(record).__name__}")
        reason, since, day = record.get("reason"), record.get("since"), record.get("trading_day")
        actor, ident = record.get("actor"), record.get("id", f"legacy-{uuid.uuid5(uuid.NAMESPACE_OID, text).hex}")
        for field, value in (("reason", reason), ("since", since), ("trading_day", day), ("id", ident)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field} must be a non-empty string, got {value!r}")
        if actor is not None and not isinstance(actor, str):
            raise ValueError(f"actor must be a string or null, got {actor!r}")
        try:
            moment = dt.datetime.fromisoformat(str(since))
            trading_day = dt.date.fromisoformat(str(day))
        except ValueError as exc:
            raise ValueError(f"bad date: {exc}") from None
        if moment.tzinfo is None:
            raise ValueError(f"since must carry a time zone, got {since!r}")
        # Days near the ends of the calendar would overflow the day arithmetic of the lift rule.
        if not dt.date(1970, 1, 2) <= trading_day <= dt.date(9000, 1, 1):
            raise ValueError(f"trading_day out of range: {day!r}")
        if not _EARLIEST <= moment <= _LATEST:
            raise ValueError(f"since out of range: {since!r}")
        resets = record.get("resets")
        if resets is not None and (isinstance(resets, bool) or not isinstance(resets, int) or resets < 0):
            raise ValueError(f"resets must be a count or null, got {resets!r}")
        actor_text = None if actor is None else as_text(actor, limit=200)
        return cls(name, as_text(reason), moment, trading_day, actor_text, str(ident), resets)


@dataclass(frozen=True)
class Held:
    """A latch as this process holds it: the record, and the two clocks' readings when it was taken on.

    ``wall`` and ``mono`` are the wall and monotonic times at which this process engaged or adopted
    the latch; a day halt lifts only when both clocks agree that its trading day is over.
    """

    latch: Latch
    wall: dt.datetime
    mono: float

    def lift_after(self, config: TradingBreakerConfig) -> Tuple[dt.datetime, float]:
        """(wall, monotonic) times before which this day halt certainly holds.

        The wall bound is two hours before the next trading day starts (a margin for any DST
        oddity of the reset time; the exact rule is :meth:`day_over`); the monotonic bound is the
        time the wall clock said was left, less :data:`CLOCK_SLACK`.
        """
        boundary = config.day_start(self.latch.trading_day + _ONE_DAY)
        left = (boundary - self.wall).total_seconds()
        return boundary - _DST_MARGIN, self.mono + left - CLOCK_SLACK

    def day_over(self, now: dt.datetime, mono: float, config: TradingBreakerConfig) -> bool:
        """Whether the latch's trading day is over by both clocks: a wall clock stepped forward alone
        lifts nothing (nor one stepped back: the wall clock must agree too)."""
        if config.trading_day(now) <= self.latch.trading_day:
            return False
        boundary = config.day_start(self.latch.trading_day + _ONE_DAY)
        return mono - self.mono >= (boundary - self.wall).total_seconds() - CLOCK_SLACK


def release_marker(latch: Latch, now: dt.datetime, actor: Optional[str]) -> str:
    """The record a keyed reset leaves in ``values`` before dropping the kill switch: which engagement
    it released. A process that finds the kill switch gone without this marker restores it."""
    record: Dict[str, Any] = {"id": latch.id, "at": now.isoformat(), "actor": actor}
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def released_id(text: Optional[str]) -> Optional[str]:
    """The engagement id a release marker names, or None for no marker or garbage."""
    if text is None:
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return None
    ident = record.get("id") if isinstance(record, dict) else None
    return ident if isinstance(ident, str) else None
