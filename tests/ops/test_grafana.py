"""dashboards/grafana.json: its queries name exactly the exported metrics, and the model hangs together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import pytest

from circuit_breakers.ops.metrics import FAMILY_NAMES, TYPES

DASHBOARD: Dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "dashboards" / "grafana.json").read_text(encoding="utf-8")
)
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip


def panels(container: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def expressions() -> List[str]:
    found = [target["expr"] for panel in panels(DASHBOARD) for target in panel.get("targets", []) if "expr" in target]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def metric_names(expr: str) -> Set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels, strings and ranges left out)."""
    variable = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)\s*", expr)
    if variable:
        return {variable.group(1)}
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    words = re.findall(r"(?<![\w:$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {word for word in words if word.lower() not in PROMQL_WORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (name, kind) (rate(calls_total{name=~"$b"}[$__rate_interval]))', {"calls_total"}),
        ('max by (desk) (a{s="x"}) + 2 * max by (desk) (b{s="y"}) > bool 1', {"a", "b"}),
        ("label_values(trading_state, desk)", {"trading_state"}),
        ("x offset 5m / on (name) group_left y", {"x", "y"}),
    ],
)  # fmt: skip
def test_the_name_parser(expr: str, names: Set[str]) -> None:
    assert metric_names(expr) == names


def test_every_query_names_only_exported_metrics() -> None:
    exported = set(FAMILY_NAMES)  # counters included under their *_total names, as exposed
    for expr in expressions():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} reads {sorted(names - exported)}, which nothing exports"


def test_every_exported_family_is_on_the_dashboard() -> None:
    used = set().union(*(metric_names(expr) for expr in expressions()))
    assert set(FAMILY_NAMES) - used == set()


def test_counters_are_read_through_rate_or_increase() -> None:
    for expr in expressions():
        for name in metric_names(expr):
            if TYPES[name] == "counter":
                assert re.search(rf"\b(rate|increase)\(\s*{name}\b", expr), expr


def test_the_model() -> None:
    assert DASHBOARD["schemaVersion"] >= 36
    assert DASHBOARD["uid"] == "circuit-breakers"
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(DASHBOARD)]
    assert len(ids) == len(set(ids))
    rows = [panel["title"] for panel in panels(DASHBOARD) if panel["type"] == "row"]
    assert rows == ["Trading desks", "Circuit breakers"]
    for panel in panels(DASHBOARD):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: Dict[tuple[int, int], str] = {}
    for panel in panels(DASHBOARD):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]
