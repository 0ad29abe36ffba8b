"""Fixtures for the ops tests: the trading tests' FakeProvider and breakers factory, and the optional parts.

Optional parts (prometheus-client, chromium) are skipped with the command that installs them when
missing, except in CI (``CI`` set), where a missing part fails the tests that need it.
"""

from __future__ import annotations

import importlib
import os
import shutil
from decimal import Decimal
from types import ModuleType
from typing import Any, Dict, Mapping, Optional, Tuple

import pytest

from circuit_breakers import TradingState, TradingStatus

from ..trading.conftest import START, FakeProvider, MakeBreakers, make_breakers, provider

__all__ = ["START", "FakeProvider", "MakeBreakers", "make_breakers", "provider", "trading_status"]  # fixtures shared


def require(what: str, hint: str) -> None:
    """Skip (or, in CI, fail) the test: ``what`` is missing; ``hint`` says how to install it."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI; {hint}")
    pytest.skip(f"{what} is not installed; {hint}")


@pytest.fixture
def prometheus_client() -> ModuleType:
    """The prometheus_client package (the ``prometheus`` extra), with its parser loaded."""
    try:
        importlib.import_module("prometheus_client.parser")
        return importlib.import_module("prometheus_client")
    except ImportError:
        require("prometheus-client", "install it with: pip install 'circuit_breakers[prometheus]'")
        raise  # not reached: require() skips or fails


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's headless-capable Chromium."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        require("chromium", "install it with: apt-get install -y chromium")
        raise AssertionError("not reached")
    return found


def trading_status(
    *,
    state: TradingState = TradingState.ACTIVE,
    blocking: Tuple[str, ...] = (),
    reasons: Tuple[str, ...] = (),
    kill_switch: bool = False,
    last_reading_age: Optional[float] = 0.5,
    details: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> TradingStatus:
    """A TradingStatus built by hand (the shape get_status() returns), for figures a desk cannot make yet."""
    limits = [
        {"max_calls": 10, "period_seconds": 60.0, "calls_in_window": 3, "seconds_until_free": 0.0},
        {"max_calls": 100, "period_seconds": 3600.0, "calls_in_window": 40, "seconds_until_free": 0.0},
    ]
    base: Dict[str, Mapping[str, Any]] = {
        "daily_loss": {"tripped": False, "last_trip_time": None, "last_trip_reason": None},
        "max_drawdown": {"tripped": kill_switch, "last_trip_time": None, "last_trip_reason": None},
        "volatility": {"tripped": False, "last_trip_time": None, "last_trip_reason": None},
        "rate_limit": {"limits": limits, "error": None},
        "orders": {"pending_orders": 0, "pending_notional": Decimal(0)},
    }
    base.update(details or {})
    return TradingStatus(
        can_trade=state is TradingState.ACTIVE,
        trading_state=state,
        blocking_breakers=blocking,
        warning_breakers=(),
        reasons=reasons,
        kill_switch_active=kill_switch,
        orders_last_minute=3,
        orders_last_hour=40,
        monitoring=True,
        monitor_alive=True,
        last_reading_age=last_reading_age,
        details=base,
    )
