"""sweep(): one replay per value of one TradingBreakerConfig setting, to compare them side by side.

A limit with a warning level (``daily_loss_limit_pct``, ``max_drawdown_pct``, ``max_position_pct``)
takes its warning level along: the warning keeps its ratio to the limit in the base config
(-1.5 / -2.0 = 0.75, so a limit of -1 warns at -0.75), since a fixed warning would be invalid
for every limit beyond it. Warnings never change trips or equity. Any other value that makes the
config invalid is an error naming the value.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.replay.engine import History, replay
from circuit_breakers.replay.history import CsvHistory, read_csv
from circuit_breakers.replay.result import ReplayResult, money
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.config_file import TRADING_FIELDS, LimitsFile
from circuit_breakers.trading.orders import OrderLimits

WARNING_OF = {
    "daily_loss_limit_pct": "daily_loss_warning_pct",
    "max_drawdown_pct": "drawdown_warning_pct",
    "max_position_pct": "position_warning_pct",
}
"""The limits whose warning level follows them in a sweep."""

_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class SweepPoint:
    """One value of the swept setting, the config it made, and its replay."""

    value: object
    config: TradingBreakerConfig
    result: ReplayResult


@dataclass(frozen=True)
class SweepResult:
    """The replays of a sweep, in the order of the values; ``note`` says what else was adjusted."""

    param: str
    points: Tuple[SweepPoint, ...]
    note: Optional[str]

    def table(self) -> List[str]:
        """The comparison table (and the history's own figures), as ``circuit-breakers sweep`` prints it."""
        width = max(len(self.param), 10)
        lines = [
            f"{self.param:>{width}}  {'trips':>5}  {'days halted':>11}  {'final equity with breakers':>26}  "
            f"{'max drawdown with breakers':>26}"
        ]
        for point in self.points:
            summary = point.result.summary
            lines.append(
                f"{_shown(point.value):>{width}}  {summary.total_trips:>5}  {summary.days_halted:>11}  "
                f"{money(summary.final_equity_with_breakers):>26,}  {summary.max_drawdown_with_breakers_pct:>25}%"
            )
        if self.points:
            summary = self.points[0].result.summary
            lines.append(
                f"{'no breakers':>{width}}  {'':>5}  {'':>11}  {money(summary.final_equity):>26,}  "
                f"{summary.max_drawdown_pct:>25}%"
            )
        if self.note:
            lines += ["", self.note]
        return lines

    def to_dict(self) -> Dict[str, Any]:
        """The sweep as JSON-ready data: one entry per value, with its summary."""
        return {
            "param": self.param,
            "note": self.note,
            "runs": [{"value": _shown(point.value), **point.result.to_dict()["summary"]} for point in self.points],
        }


def _shown(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value:f}"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def sweep_configs(
    base: TradingBreakerConfig, param: str, values: Sequence[object]
) -> Tuple[List[Tuple[object, TradingBreakerConfig]], Optional[str]]:
    """One config per value of ``param`` (values as a TOML file would give them, or parsed with
    :func:`~circuit_breakers.trading.config_file.parse_value`), and a note on adjusted warnings.

    Raises ConfigError naming the setting for an unknown one, and naming the value for one that
    makes the config invalid; ConfigTypeError for a value of the wrong type.
    """
    if param not in TRADING_FIELDS:
        known = ", ".join(name for name in TRADING_FIELDS if name != "connection_errors")
        raise ConfigError(f"param {param!r} is not a TradingBreakerConfig setting; choose one of: {known}")
    if not values:
        raise ConfigError(f"no values to sweep {param} over")
    warning = WARNING_OF.get(param)
    ratio: Optional[Decimal] = None
    note = None
    if warning is not None:
        ratio = getattr(base, warning) / getattr(base, param)
        note = (
            f"{warning} follows the limit at {ratio.quantize(_PLACES).normalize():f} x {param} "
            f"(its ratio in the base config: {getattr(base, warning)} / {getattr(base, param)})"
        )
    configs = []
    for value in values:
        try:
            checked = TRADING_FIELDS[param](param, value)
            changes: Dict[str, Any] = {param: checked}
            if warning is not None and ratio is not None and isinstance(checked, (Decimal, int, str)):
                changes[warning] = (Decimal(checked) * ratio).quantize(_PLACES)
            configs.append((value, dataclasses.replace(base, **changes)))
        except (ConfigError, ConfigTypeError) as exc:
            raise type(exc)(f"{param} = {_shown(value)}: {exc}") from None
        except ArithmeticError:
            raise ConfigError(f"{param} = {_shown(value)}: not a number") from None
    return configs, note


def sweep(
    history: History,
    param: str,
    values: Sequence[object],
    config: Union[TradingBreakerConfig, LimitsFile, None] = None,
    *,
    order_limits: Optional[OrderLimits] = None,
    reset_after_days: Optional[int] = None,
) -> SweepResult:
    """Replay ``history`` once for each of ``values`` of the setting ``param``; return every replay.

    ``config`` is the base (default: the defaults); see :func:`sweep_configs` for the values and
    the warning levels that follow a limit, and :func:`~circuit_breakers.replay.replay` for the
    rest. Every config is checked before the first replay starts. The history is read once.
    """
    orders = order_limits
    if isinstance(config, LimitsFile):
        base, orders = config.trading, config.orders if order_limits is None else order_limits
    else:
        base = config or TradingBreakerConfig()
    configs, note = sweep_configs(base, param, values)
    if isinstance(history, (str, os.PathLike)):
        history = read_csv(history)
    elif not isinstance(history, CsvHistory):
        history = list(history)  # replayed once per value
    points = tuple(
        SweepPoint(value, trading, replay(history, trading, order_limits=orders, reset_after_days=reset_after_days))
        for value, trading in configs
    )
    return SweepResult(param, points, note)
