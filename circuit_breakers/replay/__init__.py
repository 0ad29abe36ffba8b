"""Replay an account's history through the real trading breakers, and compare settings.

``replay(history, config)`` drives :class:`~circuit_breakers.TradingCircuitBreakers` row by row on a
simulated clock and returns every warning, trip, halt and kill, with the equity the account would
have had standing flat while halted. ``sweep`` does it once per value of one setting.
Command line: ``python -m circuit_breakers replay HISTORY.csv`` and ``... sweep``.
"""

from circuit_breakers.replay.engine import replay
from circuit_breakers.replay.history import CsvHistory, HistoryError, HistoryRow, read_csv
from circuit_breakers.replay.result import Curve, EventKind, ReplayEvent, ReplayResult, Span, Summary

__all__ = [
    "CsvHistory",
    "Curve",
    "EventKind",
    "HistoryError",
    "HistoryRow",
    "ReplayEvent",
    "ReplayResult",
    "Span",
    "Summary",
    "read_csv",
    "replay",
]
