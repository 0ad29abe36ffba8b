"""Prometheus' text exposition format (version 0.0.4), written from metric families. Stdlib only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from circuit_breakers.errors import ConfigError
from circuit_breakers.ops.metrics import MetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of the text format, as Prometheus expects it."""


def escape_label_value(value: str) -> str:
    """A label value with backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A HELP text with backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: ``+Inf``, ``-Inf``, ``NaN``, whole numbers without a fraction, else repr()."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{escape_label_value(labels[name])}"' for name in sorted(labels)) + "}"


def render_text(families: Iterable[MetricFamily]) -> str:
    """The families in the text format: a HELP and a TYPE line each, then one line per sample.

    Counters keep their ``_total`` name on every line (as Prometheus' own clients write them);
    label names are sorted so the output is stable. Ends with a newline unless empty. A family
    name given twice raises ConfigError (a family must be one group: :func:`~.metrics.merge` first).
    """
    lines = []
    names = set()
    for each in families:
        if each.name in names:
            raise ConfigError(f"metric family {each.name} is given twice; merge() the lists first")
        names.add(each.name)
        lines.append(f"# HELP {each.name} {escape_help(each.help)}")
        lines.append(f"# TYPE {each.name} {each.type}")
        lines.extend(f"{each.name}{_labels(labels)} {format_value(value)}" for labels, value in each.samples)
    return "".join(line + "\n" for line in lines)
