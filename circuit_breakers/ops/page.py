"""The status page: the status document as one self-contained, read-only HTML page.

Rendered on the server, so the page shows the state without JavaScript; a small script
(:mod:`circuit_breakers.ops.page_assets`) refreshes it every second. Every value is escaped, and a
document with missing, null or oddly typed keys still renders (as "unknown" or not at all).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any, List, Optional

from circuit_breakers.ops.page_assets import SCRIPT, STYLE

_BANNERS = {
    "halted": ("HALTED", "No orders pass."),
    "reducing": ("REDUCE ONLY", "Only orders that reduce a position pass."),
    "active": ("ACTIVE", "Trading is allowed."),
}
_STATE_WORDS = {"closed": "closed", "open": "open", "half_open": "half open", "forced_open": "forced open"}
_OPEN = ("open", "forced_open")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _items(value: Any) -> List[Mapping[str, Any]]:
    """The mappings in a list-valued key (anything else in it is skipped)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _strings(value: Any) -> List[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [str(item) for item in value if item is not None]
    return []


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _when(value: Any, *, short: bool = False) -> str:
    """An ISO time for people: ``2026-12-01 22:00:00 UTC`` (``22:00:00 UTC`` when short)."""
    if not isinstance(value, str):
        return "unknown time"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    zone = "UTC" if moment.utcoffset() == dt.timedelta(0) else moment.strftime("%z") or "local"
    return f"{moment.strftime('%H:%M:%S' if short else '%Y-%m-%d %H:%M:%S')} {zone}"


def _seconds(value: Any) -> str:
    seconds = _number(value)
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _pill(kind: str, words: str) -> str:
    return f'<span class="pill {_e(kind)}">{_e(words)}</span>'


def _card(title: str, rows: List[str], *, note: Optional[str] = None) -> str:
    body = "".join(rows) or f'<p class="note">{_e(note or "none")}</p>'
    return f'<section class="card"><h2>{_e(title)}</h2>{body}</section>'


def _row(what: str, right: str, *, attrs: str = "") -> str:
    return f'<div class="row"{attrs}><div class="what">{what}</div>{right}</div>'


def _banner(document: Mapping[str, Any]) -> str:
    state = document.get("trading_state")
    reasons = _strings(document.get("reasons"))
    if state in _BANNERS:
        title, line = _BANNERS[state]
        kind = state
    elif state is None and "breakers" in document:  # breakers alone, no trading desk
        opened = [str(b.get("name")) for b in _items(document.get("breakers")) if b.get("state") in _OPEN]
        kind = "reducing" if opened else "active"
        title = f"{len(opened)} BREAKER{'S' if len(opened) != 1 else ''} OPEN" if opened else "ALL BREAKERS CLOSED"
        line = ", ".join(opened) if opened else "Every breaker lets calls through."
    else:
        kind, title, line = "unknown", "UNKNOWN", f"Unrecognised trading state: {state!r}"
    tag = '<span class="tag">KILL SWITCH ENGAGED</span>' if document.get("kill_switch_active") is True else ""
    listed = "".join(f"<li>{_e(reason)}</li>" for reason in reasons)
    listed = f'<ul class="reasons">{listed}</ul>' if listed else ""
    return (
        f'<section class="banner {kind}" role="status" data-state="{_e(kind)}"><h1>{_e(title)}</h1>'
        f"<p>{_e(line)}</p>{tag}{listed}</section>"
    )


def _latches(document: Mapping[str, Any]) -> str:
    rows = []
    for latch in _items(document.get("latches")):
        bits = [f"since {_when(latch.get('since'))}"]
        if latch.get("actor"):
            bits.append(f"by {latch['actor']}")
        if latch.get("trading_day"):
            bits.append(f"trading day {latch['trading_day']}")
        what = (
            f'<div class="name">{_e(latch.get("name"))}</div><div>{_e(latch.get("reason") or "no reason given")}</div>'
            f'<div class="detail">{_e(" · ".join(bits))}</div>'
        )
        rows.append(_row(what, _pill("bad", "latched")))
    return _card("Latched halts", rows) if rows else ""


def _rate_limit(document: Mapping[str, Any]) -> str:
    part = document.get("rate_limit")
    if not isinstance(part, Mapping):
        return ""
    rows = []
    for window in _items(part.get("windows")):
        calls, most = _number(window.get("calls_in_window")), _number(window.get("max_calls"))
        share = min(calls / most, 1.0) if calls is not None and most else 0.0
        level = "full" if share >= 1 else ("high" if share >= 0.8 else "")
        count = f"{_e(_whole(calls))} / {_e(_whole(most))}"
        meter = f'<div class="meter"><span class="{level}" style="width:{share * 100:.0f}%"></span></div>'
        name = f'<div class="name">orders per {_e(window.get("window"))}</div>'
        rows.append(_row(name + meter, f'<div class="count">{count}</div>'))
    error = part.get("error")
    if error:
        rows.append(f'<p class="note error">order counts unavailable: {_e(error)}</p>')
    return _card("Order rate", rows, note="no order-rate limits")


def _whole(value: Optional[float]) -> str:
    return "?" if value is None else f"{value:g}"


def _breakers(document: Mapping[str, Any]) -> str:
    if "breakers" not in document:
        return ""
    rows = []
    for breaker in _items(document.get("breakers")):
        state = breaker.get("state")
        kind = state if state in _STATE_WORDS else "unknown"
        bits = []
        failures, calls = _number(breaker.get("failures_in_window")), _number(breaker.get("calls_in_window"))
        if calls == 0:
            bits.append("no calls in the window")
        elif failures == 0 and calls is not None:
            bits.append(f"{calls:g} calls in the window, none failed")
        elif failures is not None and calls is not None:
            rate = _number(breaker.get("failure_rate"))
            share = f" ({rate:.0%})" if rate is not None else ""
            bits.append(f"{failures:g} of {calls:g} calls failed{share}")
        retry = _number(breaker.get("seconds_until_retry"))
        if retry is not None and state in _OPEN:
            bits.append(f"retry in {_seconds(retry)}")
        detail = f'<div class="detail">{_e(" · ".join(bits))}</div>' if bits else ""
        attrs = f' data-breaker="{_e(breaker.get("name"))}" data-state="{_e(kind)}"'
        what = f'<div class="name">{_e(breaker.get("name"))}</div>{detail}'
        rows.append(_row(what, _pill(kind, _STATE_WORDS.get(str(state), str(state))), attrs=attrs))
    return _card("Breakers", rows, note="no breakers registered")


def _processes(document: Mapping[str, Any]) -> str:
    rows = []
    for process in _items(document.get("processes")):
        state = process.get("trading_state")
        stale = process.get("stale") is True
        bits = [f"heartbeat {_seconds(process.get('age_seconds'))} ago"]
        if process.get("kill_switch_active") is True:
            bits.append("kill switch engaged")
        bits.extend(_strings(process.get("reasons")))
        what = f'<div class="name">{_e(process.get("id"))}</div><div class="detail">{_e(" · ".join(bits))}</div>'
        if stale:
            pill = _pill("bad", "stale")
        else:
            pill = _pill(str(state), str(state)) if state in _BANNERS else _pill("unknown", "unknown")
        rows.append(_row(what, pill))
    return _card("Processes", rows) if "processes" in document else ""


def _store(document: Mapping[str, Any]) -> str:
    store = document.get("store")
    if not isinstance(store, Mapping):
        return ""
    healthy = store.get("healthy")
    where = store.get("where") or store.get("kind") or "unknown store"
    error = f'<div class="detail error">{_e(store["error"])}</div>' if store.get("error") else ""
    if healthy is True:
        pill = _pill("ok", "healthy")
    else:
        pill = _pill("bad", "unreachable") if healthy is False else _pill("unknown", "unknown")
    return _card("State store", [_row(f'<div class="name">{_e(where)}</div>{error}', pill)])


def _content(document: Optional[Mapping[str, Any]], error: Optional[str]) -> str:
    if document is None:
        banner = (
            '<section class="banner unknown" role="status" data-state="unavailable"><h1>STATUS UNAVAILABLE</h1>'
            f"<p>status unavailable: {_e(error or 'no status')}</p></section>"
        )
        return banner
    parts = [_banner(document), _latches(document), _rate_limit(document), _breakers(document)]
    parts += [_processes(document), _store(document)]
    return "".join(parts)


def title_of(document: Optional[Mapping[str, Any]]) -> str:
    """The page title: the state first, so a browser tab says it."""
    if document is None:
        return "Status unavailable"
    state = document.get("trading_state")
    head = _BANNERS[state][0] if state in _BANNERS else "Breakers"
    return f"{head} · desk {document.get('desk') or 'default'}"


def render_page(document: Optional[Mapping[str, Any]], *, error: Optional[str] = None) -> str:
    """The whole HTML page for ``document``; with ``document=None``, "status unavailable: ``error``"."""
    if document is None:
        top = '<header class="top"><span><b>Trading status</b></span></header>'
    else:
        updated = _when(document.get("generated_at"), short=True)
        top = (
            f'<header class="top"><span>Desk <b>{_e(document.get("desk") or "default")}</b></span>'
            f"<span>updated {_e(updated)}</span></header>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title_of(document))}</title>"
        '<noscript><meta http-equiv="refresh" content="5"></noscript>'
        f"<style>{STYLE}</style></head><body>"
        '<p id="conn" role="alert" hidden>Connection to the status server lost: showing the last state received.</p>'
        f'<main id="status" aria-live="polite">{top}{_content(document, error)}</main>'
        '<footer>Read-only view, refreshed every second · <a href="/status.json">status.json</a> · '
        '<a href="/metrics">metrics</a></footer>'
        f"<script>{SCRIPT}</script></body></html>"
    )
