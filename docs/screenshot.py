"""Make docs/status-page.png: the status page of a halted example desk, phone-sized, in headless Chromium.

Run from the repository root: ``python3 docs/screenshot.py`` (needs Debian's ``chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from circuit_breakers import CircuitBreakerConfig, CircuitBreakerManager, ManualClock, TradingCircuitBreakers
from circuit_breakers.ops import LocalSource, serve_status

OUT = Path(__file__).resolve().parent / "status-page.png"


class Portfolio:
    def get_total_value(self) -> Decimal:
        return Decimal("1000000")

    def get_daily_pnl(self) -> Decimal:
        return Decimal("-4200")

    def get_daily_pnl_pct(self) -> Decimal:
        return Decimal("-0.42")

    def get_max_drawdown(self) -> Decimal:
        return Decimal("-3.1")

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal("8")


def example_source() -> LocalSource:
    """A desk whose kill switch and broker connection halt it, beside a half-open market-data breaker."""
    clock = ManualClock(start=datetime(2026, 12, 1, 21, 58, tzinfo=timezone.utc))
    desk = TradingCircuitBreakers(Portfolio(), clock=clock, reset_key="example-only-key")
    desk.check_now()
    for _ in range(7):
        desk.record_order()
    desk.engage_kill_switch("risk desk: flatten everything", actor="alice")
    for _ in range(desk.config.connection_failure_threshold):
        desk.record_connection_failure(ConnectionError("broker gateway timed out"))
    manager = CircuitBreakerManager(clock=clock)
    quotes = manager.create_circuit_breaker("market_data", config=CircuitBreakerConfig(open_timeout_seconds=10))
    for _ in range(5):
        quotes.record_failure("HTTP 503")
    clock.advance(12)  # the market-data breaker is half-open; the connection breaker still open
    return LocalSource(trading=desk, manager=manager, clock=clock, desk="eu-equities")


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found; install it with: apt-get install -y chromium", file=sys.stderr)
        return 1
    with serve_status(example_source(), port=0) as server, tempfile.TemporaryDirectory() as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--force-device-scale-factor=2",
            "--window-size=375,1030",
            "--virtual-time-budget=1500",
            f"--screenshot={OUT}",
            server.url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
