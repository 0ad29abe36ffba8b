"""The text exposition writer against hand-checked text, and against prometheus_client's own parser."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, Callable, Dict, List, Tuple

import pytest

from circuit_breakers import CircuitBreaker, ConfigError
from circuit_breakers.ops.desks import families, name_desks
from circuit_breakers.ops.exposition import CONTENT_TYPE, escape_label_value, format_value, render_text
from circuit_breakers.ops.metrics import MetricFamily, breaker_families, merge, trading_families

from .conftest import MakeBreakers, trading_status


def test_hand_checked_text() -> None:
    built = [
        MetricFamily(
            "circuit_breakers_calls_total",
            "counter",
            "Calls by outcome",
            (({"name": "broker", "kind": "failed"}, 3), ({"name": "broker", "kind": "successful"}, 12.0)),
        ),
        MetricFamily("trading_last_reading_age_seconds", "gauge", "Age", (({}, 0.25),)),
        MetricFamily("empty", "gauge", "Nothing yet"),
    ]
    assert render_text(built) == (
        "# HELP circuit_breakers_calls_total Calls by outcome\n"
        "# TYPE circuit_breakers_calls_total counter\n"
        'circuit_breakers_calls_total{kind="failed",name="broker"} 3\n'
        'circuit_breakers_calls_total{kind="successful",name="broker"} 12\n'
        "# HELP trading_last_reading_age_seconds Age\n"
        "# TYPE trading_last_reading_age_seconds gauge\n"
        "trading_last_reading_age_seconds 0.25\n"
        "# HELP empty Nothing yet\n"
        "# TYPE empty gauge\n"
    )


def test_label_values_and_help_are_escaped() -> None:
    tricky = 'C:\\desk "eu"\nline two'
    built = [MetricFamily("x", "gauge", 'help with \\ and "quotes"\nand a newline', (({"name": tricky}, 1),))]
    assert render_text(built) == (
        '# HELP x help with \\\\ and "quotes"\\nand a newline\n'
        "# TYPE x gauge\n"
        'x{name="C:\\\\desk \\"eu\\"\\nline two"} 1\n'
    )
    assert escape_label_value("\\") == "\\\\"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (0.0, "0"),
        (-2.0, "-2"),
        (0.1, "0.1"),
        (1e300, "1e+300"),
        (2.0**60, "1.152921504606847e+18"),
    ],
)
def test_values(value: float, text: str) -> None:
    assert format_value(value) == text


def test_nothing_renders_as_nothing() -> None:
    assert render_text([]) == ""


def test_a_family_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="metric family x is given twice"):
        render_text([MetricFamily("x", "gauge", ""), MetricFamily("y", "gauge", ""), MetricFamily("x", "gauge", "")])


def test_content_type() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def parsed(client: ModuleType, text: str) -> Dict[str, Tuple[str, List[Tuple[Dict[str, str], float]]]]:
    """prometheus_client's reading of ``text``: family name -> (type, [(labels, value)])."""
    found: Dict[str, Tuple[str, List[Tuple[Dict[str, str], float]]]] = {}
    for each in client.parser.text_string_to_metric_families(text):
        found[each.name] = (each.type, [(dict(sample.labels), sample.value) for sample in each.samples])
    return found


def test_prometheus_client_parses_every_family(
    prometheus_client: ModuleType,
    make_breakers: MakeBreakers,
    make_breaker: Callable[..., CircuitBreaker],
    fail: Callable[..., None],
) -> None:
    eu, us = make_breakers(), make_breakers()
    eu.check_now()
    us.engage_kill_switch("risk desk")
    broker = make_breaker('the "broker"\\ api', failure_threshold=1)
    fail(broker)
    hand_built = trading_status(last_reading_age=None, details={"orders": {"decisions": {"accepted": 2}}})
    built = merge(
        [
            families(None, name_desks([eu, us], ["eu", "us"])),
            breaker_families([broker.get_status()]),
            trading_families(hand_built, {"desk": "line\nbreak"}),
        ]
    )
    text = render_text(built)
    found = parsed(prometheus_client, text)
    # The client names a counter family without "_total"; its samples keep the suffix.
    for each in built:
        family_name = each.name[: -len("_total")] if each.type == "counter" else each.name
        kind, samples = found.pop(family_name)
        assert kind == each.type
        expected: List[Tuple[Dict[str, str], Any]] = [(labels, value) for labels, value in each.samples]
        assert [(labels, value) for labels, value in samples if not math.isinf(value)] == [
            (labels, value) for labels, value in expected if not math.isinf(value)
        ]
        assert sum(math.isinf(value) for _, value in samples) == sum(math.isinf(v) for _, v in expected)
    assert found == {}
