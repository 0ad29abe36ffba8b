"""Histories built by hand for the replay tests, and the optional parts they may need."""

from __future__ import annotations

import datetime as dt
import importlib
import os
from decimal import Decimal
from types import ModuleType
from typing import List, Sequence, Tuple, Union
from zoneinfo import ZoneInfo

import pytest

from circuit_breakers.replay import HistoryRow

NEW_YORK = ZoneInfo("America/New_York")


Value = Union[int, str]


def daily(start: dt.date, values: Sequence[Union[Value, Tuple[Value, Value]]]) -> List[HistoryRow]:
    """Rows on consecutive weekdays from ``start``: each value is an equity, or (equity, cash flow)."""
    rows = []
    day = start
    for value in values:
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        equity, flow = value if isinstance(value, tuple) else (value, 0)
        rows.append(HistoryRow(day, Decimal(equity), Decimal(flow)))
        day += dt.timedelta(days=1)
    return rows


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """A New York wall time, timezone-aware."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


def require(module: str, install: str) -> ModuleType:
    """Import an optional test dependency: skip without it locally, fail without it in CI."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing in CI; install it with: {install}")
        pytest.skip(f"{module} is not installed; install it with: {install}")
