"""The pictures: a PNG that reads without explanation (title, labelled axes with units, legend,
shaded halts, labelled trips). Needs matplotlib (the ``plot`` extra): skipped without it locally,
a failure without it in CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import pytest

from circuit_breakers.replay import replay
from circuit_breakers.replay.plot import PlotError, plot_replay, plot_sweep, replay_figure, sweep_figure
from circuit_breakers.replay.sweep import sweep
from tests.replay.histories import require

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "example_history.csv"


@pytest.fixture(scope="module")
def image() -> Any:
    return require("matplotlib.image", "pip install 'circuit_breakers[plot]'")


def texts(figure: Any) -> List[str]:
    found = [text.get_text() for text in figure.texts]
    for axis in figure.axes:
        found += [axis.get_title(), axis.get_xlabel(), axis.get_ylabel()]
        found += [text.get_text() for text in axis.texts]
        legend = axis.get_legend()
        if legend is not None:
            found += [text.get_text() for text in legend.get_texts()]
    return [text for text in found if text]


def test_replay_plot_is_a_png_with_its_parts_labelled(tmp_path: Path, image: Any) -> None:
    result = replay(EXAMPLE, reset_after_days=5)
    path = tmp_path / "replay.png"
    plot_replay(result, path)

    pixels = image.imread(path)
    assert pixels.shape[:2] == (770, 1210)
    assert pixels.std() > 0.05  # not a blank canvas
    labels = texts(replay_figure(result))
    assert any(text.startswith("Replay of example_history.csv: trips daily_loss 3") for text in labels)
    assert "Equity (account currency)" in labels
    assert "Drawdown from peak (%)" in labels
    assert "Time (America/New_York)" in labels
    for entry in (
        "without breakers (history)",
        "with breakers (flat while halted)",
        "daily_loss trip (3)",
        "volatility trip (4)",
        "max_drawdown trip (1)",
        "halted (kill switch: nothing trades)",
        "day halt (reduce-only until the next trading day)",
    ):
        assert entry in labels
    assert sum(text.startswith("daily loss -") for text in labels) == 3  # each trip labelled
    assert "KILL SWITCH at -10.00% drawdown" in labels
    assert "deposit +250,000" in labels


def test_sweep_plot_shows_each_figure_against_the_value(tmp_path: Path, image: Any) -> None:
    result = sweep(EXAMPLE, "daily_loss_limit_pct", ["-1", "-2", "-3"])
    path = tmp_path / "sweep.png"
    plot_sweep(result, path)
    assert image.imread(path).shape[:2] == (880, 990)
    labels = texts(sweep_figure(result))
    assert "daily_loss_limit_pct (%)" in labels
    assert "Maximum drawdown (%)" in labels
    assert "trips (all breakers)" in labels
    assert "without breakers" in labels


def test_an_unwritable_path_is_a_plot_error(tmp_path: Path, image: Any) -> None:
    result = replay(EXAMPLE)
    with pytest.raises(PlotError, match="cannot write the plot to"):
        plot_replay(result, tmp_path / "missing" / "replay.png")
