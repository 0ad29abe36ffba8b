"""The status document built from TradingStatus snapshots and breaker statuses."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from circuit_breakers import TradingState
from circuit_breakers.ops.document import breaker_entry, status_document

from .conftest import trading_status

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=timezone.utc)


def test_a_document_from_a_hand_built_status() -> None:
    tripped_at = datetime(2026, 12, 1, 21, 58, tzinfo=timezone.utc)
    status = trading_status(
        state=TradingState.REDUCING,
        blocking=("daily_loss",),
        reasons=("daily_loss: P&L -2.10% (limit -2.00%)",),
        details={
            "daily_loss": {"tripped": True, "last_trip_reason": "P&L -2.10%", "last_trip_time": tripped_at},
            "volatility": {"tripped": False, "last_trip_reason": "old trip", "last_trip_time": tripped_at},
            "rate_limit": {"limits": None, "error": "redis 127.0.0.1:6379: timed out"},
            "orders": {"pending_notional": Decimal("12.5")},
        },
    )
    document = status_document(now=NOW, desk="eu", trading=status, breakers=[])
    assert document == {
        "generated_at": "2026-12-01T22:00:00+00:00",
        "desk": "eu",
        "trading_state": "reducing",
        "kill_switch_active": False,
        "reasons": ["daily_loss: P&L -2.10% (limit -2.00%)"],
        "latches": [{"name": "daily_loss", "reason": "P&L -2.10%", "since": "2026-12-01T21:58:00+00:00"}],
        "rate_limit": {"windows": [], "error": "redis 127.0.0.1:6379: timed out"},
        "breakers": [],
    }
    assert json.loads(json.dumps(document)) == document


def test_rate_limit_windows_are_named() -> None:
    document = status_document(now=NOW, desk="default", trading=trading_status())
    assert document["rate_limit"] == {
        "windows": [
            {"window": "minute", "max_calls": 10, "period_seconds": 60.0, "calls_in_window": 3},
            {"window": "hour", "max_calls": 100, "period_seconds": 3600.0, "calls_in_window": 40},
        ],
        "error": None,
    }


def test_without_a_desk_the_trading_state_is_null() -> None:
    document = status_document(now=NOW, desk="default", breakers=[{"name": "a", "state": "closed"}])
    assert document["trading_state"] is None
    assert "reasons" not in document
    assert document["breakers"] == [
        {
            "name": "a",
            "state": "closed",
            "failures_in_window": None,
            "calls_in_window": None,
            "failure_rate": None,
            "seconds_until_retry": None,
        }
    ]


def test_a_forced_open_breaker_says_so() -> None:
    assert breaker_entry({"name": "x", "state": "open", "forced_open": True})["state"] == "forced_open"
    assert breaker_entry({"name": "x", "state": "open", "forced_open": False})["state"] == "open"
