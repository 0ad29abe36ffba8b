"""A provider with nothing happening, for tests about shared state; imports nothing of the library, so
that a small helper process (a fork storm, a trader) stays small."""

from __future__ import annotations

from decimal import Decimal


class FlatPortfolio:
    """A PortfolioProvider where nothing happens: for tests about shared state, not about figures."""

    def get_total_value(self) -> Decimal:
        return Decimal(1_000_000)

    def get_daily_pnl(self) -> Decimal:
        return Decimal(0)

    def get_daily_pnl_pct(self) -> Decimal:
        return Decimal(0)

    def get_max_drawdown(self) -> Decimal:
        return Decimal(0)

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal(0)
