"""What RedisCircuitBreaker and its scripts (``scripts/breaker*.lua``) say to each other: the
arguments that carry a config and an open-timeout policy, and the decoding of a script's answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Optional, Tuple

from circuit_breakers.backoff import Backoff, ExponentialBackoff, FixedBackoff
from circuit_breakers.config import CircuitBreakerConfig
from circuit_breakers.redis.client import text
from circuit_breakers.types import CircuitState

POLICY_STEPS = 32
"""Open timeouts sent for a policy the scripts cannot compute: for 1 to this many trips in a row."""


def micros(seconds: float) -> str:
    """``seconds`` in microseconds as the scripts read them (capped far beyond any real timeout)."""
    return repr(min(seconds * 1e6, 1e300))


def policy_argument(backoff: Backoff) -> str:
    """The open-timeout policy as the scripts' ``backoff(k)`` reads it.

    The library's own policies are sent as their parameters, ``x:<initial>,<multiplier>,<maximum>``
    (seconds), and computed in Lua as in Python (the same float operations), for any number of
    trips. Any other :class:`Backoff` is sent as its answers for trips 1 to :data:`POLICY_STEPS`,
    ``l:<t1>,<t2>,...`` (microseconds); trips past the last reuse it.
    """
    if type(backoff) is ExponentialBackoff:
        return f"x:{backoff.initial!r},{backoff.multiplier!r},{backoff.maximum!r}"
    if type(backoff) is FixedBackoff:
        return f"x:{backoff.seconds!r},1.0,{backoff.seconds!r}"
    return "l:" + ",".join(micros(backoff(trip)) for trip in range(1, POLICY_STEPS + 1))


def config_arguments(config: CircuitBreakerConfig, backoff: Backoff) -> List[str]:
    """ARGS[1..8] of every breaker script (see ``scripts/breaker.lua``)."""
    return [
        str(config.failure_threshold),
        repr(config.failure_rate_threshold),
        str(config.success_threshold),
        micros(config.failure_window_seconds),
        policy_argument(backoff),
        micros(config.half_open_timeout_seconds),
        str(config.minimum_calls),
        str(config.half_open_max_calls),
    ]


@dataclass(frozen=True)
class Reply:
    """A breaker script's answer: the namespace time, the shared state after the action, its events."""

    now: int
    stepped: bool
    generation: str
    state: CircuitState
    retry_after: Optional[float]
    events: Tuple[str, ...]
    consecutive_trips: int
    trips: int
    forced: bool
    in_flight: int
    opened_at: Optional[datetime]
    recovered_at: Optional[datetime]
    extra: Tuple[int, ...]


_LARGEST = 2**62  # a count or a time in microseconds past this is garbage


def _count(value: object) -> int:
    """A non-negative whole number from a reply; ValueError for anything else (garbage, inf, huge)."""
    number = float(value if isinstance(value, int) and not isinstance(value, bool) else text(value))
    if not 0 <= number < _LARGEST or number != int(number):
        raise ValueError(f"expected a count, got {value!r}")
    return int(number)


def _moment(value: object) -> Optional[datetime]:
    micros = _count(value)
    if micros >= 253_402_300_800_000_000:  # past the year 9999
        raise ValueError(f"expected a time, got {value!r}")
    return datetime.fromtimestamp(micros / 1e6, timezone.utc) if micros else None


_STATES = frozenset(state.value for state in CircuitState)


def _event(event: str) -> str:
    """A transition a script reported: "trip", "recovery" or "old>new"; ValueError for anything else."""
    old, _, new = event.partition(">")
    if event in ("trip", "recovery") or (old in _STATES and new in _STATES):
        return event
    raise ValueError(f"unexpected event {event!r}")


def parse(raw: object) -> Reply:
    """Decode a script's answer; raises TypeError or ValueError on anything unexpected."""
    if not isinstance(raw, list) or len(raw) < 12 or not isinstance(raw[5], list):
        raise TypeError("not a breaker reply")
    now, stepped = _count(raw[0]), _count(raw[1]) == 1
    raw = raw[2:]
    retry_after = float(text(raw[2]))
    return Reply(
        now=now,
        stepped=stepped,
        generation=str(_count(raw[0])),
        state=CircuitState(text(raw[1])),
        retry_after=None if retry_after < 0 else retry_after / 1e6,
        events=tuple(_event(text(event)) for event in raw[3]),
        consecutive_trips=_count(raw[4]),
        trips=_count(raw[5]),
        forced=_count(raw[6]) == 1,
        in_flight=_count(raw[7]),
        opened_at=_moment(raw[8]),
        recovered_at=_moment(raw[9]),
        extra=tuple(_count(value) for value in raw[10:]),
    )
