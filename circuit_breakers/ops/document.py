"""The status document: a JSON-ready dict of a desk's state, served as /status.json and shown on the page.

Its keys (all optional but ``trading_state``, which is None for breakers without a trading desk)::

    generated_at        ISO time the document was made
    desk                the desk's name ("default" when unnamed)
    store               {"kind", "where", "healthy", "error"}: where shared state lives
    trading_state       "active" | "reducing" | "halted" | None
    kill_switch_active  bool
    reasons             ["max_drawdown: kill switch engaged: risk desk", ...]
    latches             [{"name", "reason", "since", "actor", "trading_day"}]: latched halts
    rate_limit          {"windows": [{"window", "max_calls", "period_seconds", "calls_in_window"}], "error"}
    breakers            [{"name", "state", "failures_in_window", "calls_in_window", "failure_rate",
                          "seconds_until_retry"}]; state "forced_open" for a breaker held open by hand
    processes           [{"id", "host", "pid", "last_heartbeat", "age_seconds", "stale",
                          "trading_state", "kill_switch_active", "reasons"}]

Readers (the page, the command line) must cope with any key missing or null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Dict, List, Optional

from circuit_breakers.ops.metrics import window_name
from circuit_breakers.trading.status import TradingStatus, jsonable

LATCHES = ("max_drawdown", "daily_loss", "volatility")
"""The trading breakers that latch (hold until released); the kill switch first."""

BREAKER_KEYS = ("failures_in_window", "calls_in_window", "failure_rate", "seconds_until_retry")


def breaker_entry(status: Mapping[str, Any]) -> Dict[str, Any]:
    """A ``breakers`` entry from a breaker's ``get_status()``."""
    state = "forced_open" if status.get("forced_open") else status.get("state")
    entry: Dict[str, Any] = {"name": status.get("name"), "state": state}
    entry.update((key, status.get(key)) for key in BREAKER_KEYS)
    return entry


def latches(details: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The latched halts in a TradingStatus' details: name, reason and since when."""
    found = []
    for name in LATCHES:
        part = details.get(name)
        if isinstance(part, Mapping) and part.get("tripped"):
            found.append({"name": name, "reason": part.get("last_trip_reason"), "since": part.get("last_trip_time")})
    return found


def rate_limit(details: Mapping[str, Any]) -> Dict[str, Any]:
    """The order-rate windows in a TradingStatus' details (none, with the error, while a store cannot say)."""
    part = details.get("rate_limit")
    if not isinstance(part, Mapping):
        return {"windows": [], "error": None}
    windows = []
    limits = part.get("limits")
    for limit in limits if isinstance(limits, Sequence) else ():
        if isinstance(limit, Mapping):
            windows.append(
                {
                    "window": window_name(limit.get("period_seconds")),
                    "max_calls": limit.get("max_calls"),
                    "period_seconds": limit.get("period_seconds"),
                    "calls_in_window": limit.get("calls_in_window"),
                }
            )
    return {"windows": windows, "error": part.get("error")}


def status_document(
    *,
    now: dt.datetime,
    desk: str,
    trading: Optional[TradingStatus] = None,
    breakers: Iterable[Mapping[str, Any]] = (),
) -> Dict[str, Any]:
    """The status document of one desk from its TradingStatus (if any) and its breakers' statuses."""
    document: Dict[str, Any] = {"generated_at": now, "desk": desk, "trading_state": None}
    if trading is not None:
        document.update(
            trading_state=trading.trading_state,
            kill_switch_active=trading.kill_switch_active,
            reasons=list(trading.reasons),
            latches=latches(trading.details),
            rate_limit=rate_limit(trading.details),
        )
    document["breakers"] = [breaker_entry(status) for status in breakers]
    result: Dict[str, Any] = jsonable(document)
    return result
