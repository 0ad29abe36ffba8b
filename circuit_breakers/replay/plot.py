"""Pictures of a replay and of a sweep, as PNG files (needs the ``plot`` extra: matplotlib).

matplotlib is imported only when a picture is asked for, and drawn with the Agg backend on a
figure of our own (no pyplot state), so plotting works without a display and from any thread.
"""

from __future__ import annotations

import datetime as dt
import os
from bisect import bisect_right
from decimal import Decimal
from typing import Any, Dict, List, Sequence, Tuple, Union

from circuit_breakers.errors import CircuitBreakerError
from circuit_breakers.replay.result import EventKind, ReplayEvent, ReplayResult
from circuit_breakers.replay.sweep import SweepResult
from circuit_breakers.trading.orders import TradingState

Path = Union[str, "os.PathLike[str]"]

_HISTORY_COLOR = "#4a7ab5"
_WITH_COLOR = "#e07b00"
_SHADE = {TradingState.HALTED: ("#d62728", 0.18), TradingState.REDUCING: ("#f2c029", 0.30)}
_SHADE_LABEL = {
    TradingState.HALTED: "halted (kill switch: nothing trades)",
    TradingState.REDUCING: "day halt (reduce-only until the next trading day)",
}
# marker, colour, size of each breaker's trips
_MARKERS: Dict[str, Tuple[str, str, int]] = {
    "daily_loss": ("v", "#c0392b", 55),
    "volatility": ("D", "#7d3c98", 40),
    "max_drawdown": ("X", "#111111", 110),
}
_LABELLED_TRIPS = 12  # up to this many trips each get a text label; beyond, the legend counts them


class PlotError(CircuitBreakerError):
    """A picture cannot be made: matplotlib is missing (install the ``plot`` extra) or the file cannot be written."""


def require_matplotlib() -> None:
    """Raise PlotError with the install command unless matplotlib can be imported."""
    _matplotlib()


def _matplotlib() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as exc:
        raise PlotError(f"--plot needs matplotlib: pip install 'circuit_breakers[plot]' ({exc})") from None
    return Figure, FigureCanvasAgg


def _save(figure: Any, path: Path) -> None:
    try:
        figure.savefig(os.fspath(path), dpi=110)
    except OSError as exc:
        raise PlotError(f"cannot write the plot to {os.fspath(path)}: {exc.strerror or exc}") from exc


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}%"


def _local(result: ReplayResult, times: Sequence[dt.datetime]) -> List[dt.datetime]:
    """Naive local times of the trading-day zone: what the axis shows."""
    zone = result.config.zone
    return [time.astimezone(zone).replace(tzinfo=None) for time in times]


def _trip_label(result: ReplayResult, event: ReplayEvent, index: int) -> str:
    """A short label from the row's figures (not from the reason's wording)."""
    curve = result.curve
    if event.breaker == "max_drawdown":
        return f"KILL SWITCH at {curve.drawdown_pct[index]:.2f}% drawdown"
    if event.breaker == "daily_loss":
        return f"daily loss {curve.daily_pnl_pct[index]:.2f}%"
    if event.breaker == "volatility":
        return f"volatility (day {curve.daily_pnl_pct[index]:.2f}%)"
    return event.breaker


def plot_replay(result: ReplayResult, path: Path) -> None:
    """Draw the replay to a PNG at ``path``: equity with and without breakers above, drawdown below,
    halted spans shaded, each trip marked. Raises PlotError (matplotlib missing, file not writable)."""
    figure = replay_figure(result)
    _save(figure, path)


def replay_figure(result: ReplayResult) -> Any:
    """The matplotlib Figure that :func:`plot_replay` saves. Raises PlotError without matplotlib."""
    figure_type, canvas_type = _matplotlib()
    from matplotlib.patches import Patch  # noqa: PLC0415

    config, curve, summary = result.config, result.curve, result.summary
    times = _local(result, curve.times)
    figure = figure_type(figsize=(11, 7), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})

    top.plot(times, [float(v) for v in curve.equity], color=_HISTORY_COLOR, lw=1.2, label="without breakers (history)")
    top.plot(
        times,
        [float(v) for v in curve.equity_with_breakers],
        color=_WITH_COLOR,
        lw=1.4,
        label="with breakers (flat while halted)",
    )
    bottom.plot(times, [float(v) for v in curve.drawdown_pct], color=_HISTORY_COLOR, lw=1.0)
    bottom.plot(times, [float(v) for v in curve.drawdown_with_breakers_pct], color=_WITH_COLOR, lw=1.2)
    bottom.axhline(float(config.max_drawdown_pct), color="#d62728", ls="--", lw=1)
    bottom.axhline(float(config.drawdown_warning_pct), color="#d62728", ls=":", lw=1)
    for level, text in ((config.max_drawdown_pct, "kill switch"), (config.drawdown_warning_pct, "warning")):
        bottom.annotate(
            f"{text} {_percent(level)}",
            (0.005, float(level)),
            xycoords=("axes fraction", "data"),
            va="bottom",
            fontsize=8,
            color="#d62728",
        )

    shaded = set()
    for span in result.spans:
        color, alpha = _SHADE[span.state]
        start, end = _local(result, [span.start, span.end])
        for axis in (top, bottom):
            axis.axvspan(start, end, color=color, alpha=alpha, lw=0)
        shaded.add(span.state)

    trips = [event for event in result.events if event.kind is EventKind.TRIP]
    by_breaker: Dict[str, List[ReplayEvent]] = {}
    for event in trips:
        by_breaker.setdefault(event.breaker, []).append(event)
    labelled: List[Tuple[ReplayEvent, int, float]] = []
    for breaker, events in by_breaker.items():
        marker, color, size = _MARKERS.get(breaker, ("o", "#555555", 40))
        rows = [_row_at(result, event.time) for event in events]
        values = [float(curve.equity[row]) for row in rows]
        when = _local(result, [event.time for event in events])
        top.scatter(when, values, marker=marker, color=color, s=size, zorder=5, label=f"{breaker} trip ({len(events)})")
        if len(trips) <= _LABELLED_TRIPS or breaker == "max_drawdown":
            labelled += zip(events, rows, values)
    _label_trips(result, top, labelled, times)
    for row, flow in enumerate(curve.cash_flow):
        if flow:
            top.annotate(
                f"{'deposit' if flow > 0 else 'withdrawal'} {flow:+,.0f}",
                (times[row], float(curve.equity[row])),
                xytext=(12, -22) if flow > 0 else (12, 16),  # on the side the curve left empty
                textcoords="offset points",
                fontsize=8,
                color="#2e7d32",
                ha="left",
                arrowprops={"arrowstyle": "-", "color": "#2e7d32", "lw": 0.8},
            )

    handles, labels = top.get_legend_handles_labels()
    for state in (TradingState.HALTED, TradingState.REDUCING):
        if state in shaded:
            color, alpha = _SHADE[state]
            handles.append(Patch(color=color, alpha=alpha))
            labels.append(_SHADE_LABEL[state])
    top.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)

    trips_text = ", ".join(f"{name} {count}" for name, count in summary.trips.items()) or "none"
    figure.suptitle(
        f"Replay of {os.path.basename(result.source)}: trips {trips_text}; "
        f"{summary.days_halted} of {summary.trading_days} trading days halted",
        fontsize=12,
    )
    top.set_title(
        f"limits: daily loss {_percent(config.daily_loss_limit_pct)}, drawdown kill switch "
        f"{_percent(config.max_drawdown_pct)}, volatility {config.volatility_std_threshold.normalize():f} std devs"
        + ("" if result.reset_after_days is None else f"; kill switch reset after {result.reset_after_days} days"),
        fontsize=9,
        color="#444444",
    )
    top.set_ylabel("Equity (account currency)")
    top.grid(alpha=0.3)
    top.ticklabel_format(axis="y", style="plain", useOffset=False)
    top.yaxis.set_major_formatter(_thousands())
    bottom.set_ylabel("Drawdown from peak (%)")
    bottom.set_xlabel(f"Time ({config.trading_day_timezone})")
    bottom.grid(alpha=0.3)
    canvas_type(figure)
    return figure


def _label_trips(
    result: ReplayResult, axis: Any, labelled: List[Tuple[ReplayEvent, int, float]], times: List[dt.datetime]
) -> None:
    """Label each trip beside its marker, stacking the labels of trips close in time so none overlap."""
    start, span = times[0], max((times[-1] - times[0]).total_seconds(), 1.0)
    previous_x, level = -1.0, 0
    for event, row, value in sorted(labelled, key=lambda item: item[1]):
        x = (times[row] - start).total_seconds() / span
        level = level + 1 if x - previous_x < 0.06 else 0  # within 6 % of the width: one line lower
        previous_x = x
        color = _MARKERS.get(event.breaker, ("o", "#555555", 40))[1]
        kill = event.breaker == "max_drawdown"
        axis.annotate(
            _trip_label(result, event, row),
            (times[row], value),
            xytext=(10, -22) if kill else (8, -12 - 11 * level),  # a kill ends a fall: below is clear
            textcoords="offset points",
            fontsize=8,
            color=color,
            weight="bold" if kill else "normal",
        )


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    return FuncFormatter(lambda value, _position: f"{value:,.0f}")


def _row_at(result: ReplayResult, time: dt.datetime) -> int:
    """The last row at or before ``time`` (trips happen at rows)."""
    return max(bisect_right(result.curve.times, time) - 1, 0)


def plot_sweep(result: SweepResult, path: Path) -> None:
    """Draw a sweep to a PNG at ``path``: trips and days halted, final equity and maximum drawdown
    with breakers, each against the swept value (the history without breakers as a dashed line).
    Raises PlotError (matplotlib missing, file not writable)."""
    _save(sweep_figure(result), path)


def sweep_figure(result: SweepResult) -> Any:
    """The matplotlib Figure that :func:`plot_sweep` saves. Raises PlotError without matplotlib."""
    figure_type, canvas_type = _matplotlib()
    points = result.points
    numeric = all(isinstance(point.value, (Decimal, int, float)) for point in points)
    xs: List[Any] = [float(point.value) if numeric else str(point.value) for point in points]  # type: ignore[arg-type]
    summaries = [point.result.summary for point in points]
    history = summaries[0]
    figure = figure_type(figsize=(9, 8), layout="constrained")
    trips_axis, equity_axis, drawdown_axis = figure.subplots(3, 1, sharex=True)

    trips_axis.plot(xs, [s.total_trips for s in summaries], "o-", color="#c0392b", label="trips (all breakers)")
    trips_axis.plot(xs, [s.days_halted for s in summaries], "s--", color="#7d3c98", label="trading days halted")
    trips_axis.set_ylabel("Count")
    trips_axis.legend(fontsize=8, loc="best")

    equity_axis.plot(
        xs, [float(s.final_equity_with_breakers) for s in summaries], "o-", color=_WITH_COLOR, label="with breakers"
    )
    equity_axis.axhline(float(history.final_equity), color=_HISTORY_COLOR, ls="--", label="without breakers")
    equity_axis.set_ylabel("Final equity\n(account currency)")
    equity_axis.yaxis.set_major_formatter(_thousands())
    equity_axis.legend(fontsize=8, loc="best")

    drawdown_axis.plot(
        xs,
        [float(s.max_drawdown_with_breakers_pct) for s in summaries],
        "o-",
        color=_WITH_COLOR,
        label="with breakers",
    )
    drawdown_axis.axhline(float(history.max_drawdown_pct), color=_HISTORY_COLOR, ls="--", label="without breakers")
    drawdown_axis.set_ylabel("Maximum drawdown (%)")
    drawdown_axis.legend(fontsize=8, loc="best")
    unit = " (%)" if result.param.endswith("_pct") else ""
    drawdown_axis.set_xlabel(f"{result.param}{unit}")
    if numeric:
        drawdown_axis.set_xticks(xs)
    for axis in (trips_axis, equity_axis, drawdown_axis):
        axis.grid(alpha=0.3)
    source = os.path.basename(points[0].result.source)
    figure.suptitle(f"Sweep of {result.param} over {source}: {history.rows:,} rows", fontsize=12)
    if result.note:
        trips_axis.set_title(result.note, fontsize=8, color="#444444")
    canvas_type(figure)
    return figure
