"""The safety state's records in a store: where each lives, and how stored text is read and merged.

A record is addressed by a :data:`Ref` ``(table, key)``. A :data:`Merge` turns the text a store holds
into the text this process needs there (the write is a compare-and-set from one to the other); a
:data:`Done` runs once such a write went through, with what the store then holds. The readers here
raise ValueError for garbage; what garbage means (the kill switch engages) is decided by the core
(:mod:`circuit_breakers.trading.safety`).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from typing import Callable, Optional, Tuple

from circuit_breakers.events import Pending
from circuit_breakers.trading.killswitch import Attempts, ResetKey
from circuit_breakers.trading.latches import Latch

Ref = Tuple[str, str]  # (table, key)
Merge = Callable[[Optional[str]], Optional[str]]  # stored text -> the text this process needs there
Done = Callable[[Optional[str], Pending], None]  # called with what the store holds once a write went through
MISSING = object()  # "never read", as opposed to None: "read, and absent"
HIGH_WATER, BASELINE, EPOCH, KEY, RESETS, LOCKOUT = (
    ("values", name)
    for name in (
        "high_water_mark",
        "drawdown_baseline_pct",
        "epoch",
        "reset_key",
        "kill_switch_resets",
        "reset_lockout",
    )
)
AUTOMATIC = "circuit_breakers"  # the actor of what the library engages by itself
_LARGEST_EXPONENT = 21  # 1e21: no amount or percentage of a desk comes near; beyond, arithmetic overflows


def number(text: Optional[str]) -> Optional[Decimal]:
    """A stored finite Decimal, None when absent; ValueError for garbage."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise ValueError(f"not a number: {text[:40]!r}") from None
    if not value.is_finite():
        raise ValueError(f"not finite: {text[:40]!r}")
    if value.adjusted() >= _LARGEST_EXPONENT:  # no context arithmetic: abs() itself would overflow
        raise ValueError(f"out of range: {text[:40]!r}")
    return value


def text_of(value: Optional[Decimal], current: Optional[str]) -> Optional[str]:
    """A Merge that writes ``value`` whatever is stored."""
    return None if value is None else str(value)


def replace_garbage(garbage: str, text: Optional[str], current: Optional[str]) -> Optional[str]:
    """A Merge that writes ``text`` over ``garbage`` (and leaves anything else another process wrote)."""
    return text if current == garbage else current


def keep_or(text: str, current: Optional[str]) -> Optional[str]:
    """A Merge that keeps what is stored, or writes ``text`` where nothing is."""
    return current if current is not None else text


def baseline_text(baseline: Decimal) -> Optional[str]:
    """The stored drawdown baseline: only a negative one is kept."""
    return str(baseline) if baseline < 0 else None


def latch_or_none(name: str, text: Optional[str]) -> Optional[Latch]:
    """The latch a record holds; None when absent or unreadable."""
    try:
        return None if text is None else Latch.from_text(name, text)
    except ValueError:
        return None


def count(text: Optional[str]) -> int:
    """A stored count; -1 for garbage (never taken as a release)."""
    if text is None:
        return 0
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else -1


def checked_count(text: str) -> None:
    """Raise ValueError unless ``text`` is a stored count."""
    if count(text) < 0:
        raise ValueError(f"not a count: {text[:40]!r}")


def key_text(key: ResetKey) -> str:
    """The stored form of a reset key's hash."""
    return json.dumps(key.to_dict(), sort_keys=True)


def stored_key(text: str) -> ResetKey:
    """The reset key's stored hash; ValueError if it is not one."""
    try:
        return ResetKey.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ValueError(f"not a reset key hash: {exc}") from None


def lockout(text: Optional[str]) -> Attempts:
    """The stored wrong-key count and lockout end ((0, None) when absent); ValueError for garbage."""
    if text is None:
        return 0, None
    try:
        record = json.loads(text)
        until = record["locked_until"]
        moment = None if until is None else dt.datetime.fromisoformat(until)
        failures = record["failures"]
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError, RecursionError) as exc:
        raise ValueError(f"not a lockout record: {exc}") from None
    if moment is not None and moment.tzinfo is None:
        raise ValueError("a lockout time without a zone")
    if type(failures) is not int or failures < 0:
        raise ValueError(f"not a count of wrong keys: {failures!r}")
    return failures, moment


def lockout_text(attempts: Attempts) -> str:
    """The stored form of a wrong-key count and lockout end."""
    failures, until = attempts
    return json.dumps({"failures": failures, "locked_until": None if until is None else until.isoformat()})
