"""How the command line shows a desk: text that fits 80x24 (in colour on a terminal), and the JSON document."""

from __future__ import annotations

import datetime as dt
import os
from typing import IO, Any, Dict, List, Mapping, Optional

from circuit_breakers.ops.document import status_document
from circuit_breakers.ops.state import Snapshot

CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
WIDTH, HEIGHT = 80, 24
_COLOURS = {"active": "\x1b[1;32m", "reducing": "\x1b[1;33m", "halted": "\x1b[1;31m", "engaged": "\x1b[1;31m"}
_RESET = "\x1b[0m"


def has_colour(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal that shows colour (and NO_COLOR is not set)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM", "") not in ("", "dumb")


def _paint(text: str, key: str, colour: bool) -> str:
    return f"{_COLOURS[key]}{text}{_RESET}" if colour and key in _COLOURS else text


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _moment(value: Optional[str]) -> str:
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def document(snapshot: Snapshot) -> Dict[str, Any]:
    """The status document (see :mod:`circuit_breakers.ops.document`) of a snapshot from the store."""
    status = snapshot.status
    doc = status_document(now=dt.datetime.now(dt.timezone.utc), desk="default", trading=status)
    doc["store"] = dict(snapshot.store)
    doc["latches"] = [dict(latch) for latch in snapshot.latches]
    doc["processes"] = [process.to_dict() for process in snapshot.processes]
    doc["rate_limit"]["shared"] = bool(status.details["rate_limit"].get("shared"))
    return doc


def text(snapshot: Snapshot, *, colour: bool, clock: bool = False) -> str:
    """The desk in at most 24 lines of at most 80 characters."""
    status = snapshot.status
    state = status.trading_state.value
    now = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S UTC") if clock else ""
    head = f"circuit_breakers · {snapshot.store['where']}"
    lines: List[str] = [_fit(head + now.rjust(WIDTH - len(head))) if clock else _fit(head)]
    kill = _paint("ENGAGED", "engaged", colour) if status.kill_switch_active else "off"
    lines.append(f"trading {_paint(state.upper(), state, colour)}    kill switch {kill}")
    lines.append("")
    if snapshot.latches:
        lines.append("latches")
        for latch in snapshot.latches:
            actor = latch.get("actor") or "-"
            lines.append(_fit(f"  {latch['name']:<13} {_moment(latch.get('since'))}  {actor:<10} {latch['reason']}"))
    else:
        lines.append("latches          none")
    lines.append(_fit(f"order rate       {_windows(status.details.get('rate_limit', {}))}"))
    store = snapshot.store
    healthy = "healthy" if store.get("healthy") else f"UNHEALTHY: {store.get('error')}"
    lines.append(_fit(f"store            {healthy}"))
    processes = list(snapshot.processes)
    lines.append(f"processes ({len(processes)})")
    room = HEIGHT - len(lines) - 2 - min(len(status.reasons), 4)
    for process in processes[: max(room, 1)]:
        seen = "stale" if process.stale else (process.trading_state or "?")
        age = "-" if process.age_seconds is None else f"{process.age_seconds:.1f}s ago"
        painted = _paint(f"{seen:<9}", seen, colour) if seen in _COLOURS else f"{seen:<9}"
        lines.append(_fit(f"  {process.id:<28} {painted} heartbeat {age}"))
    if len(processes) > max(room, 1):
        lines.append(f"  … {len(processes) - max(room, 1)} more")
    if status.reasons:
        lines.append("reasons")
        lines.extend(_fit(f"  {reason}") for reason in list(status.reasons)[:4])
    return "\n".join(lines[:HEIGHT])


def _windows(part: Mapping[str, Any]) -> str:
    if part.get("error"):
        return f"unknown ({part['error']})"
    shown = []
    for limit in part.get("limits") or ():
        period = {60.0: "minute", 3600.0: "hour"}.get(float(limit["period_seconds"]), f"{limit['period_seconds']}s")
        count = "?" if limit.get("calls_in_window") is None else limit["calls_in_window"]
        shown.append(f"{count}/{limit['max_calls']} per {period}")
    scope = "shared" if part.get("shared") else "summed over live processes"
    return ", ".join(shown) + f" ({scope})" if shown else "-"


def unreadable(where: str, error: str, *, colour: bool) -> str:
    """What watch shows while the state cannot be read."""
    return "\n".join([_fit(f"circuit_breakers · {where}"), _paint("STATE UNREADABLE", "halted", colour), _fit(error)])


def audit_line(entry: Mapping[str, Any]) -> str:
    """One audit entry on one line: time, event, actor, where, reason."""
    where = f"{entry.get('host')}:{entry.get('pid')}"
    return f"{entry.get('time')}  {entry.get('event')}  actor={entry.get('actor')}  {where}  {entry.get('reason')}"
