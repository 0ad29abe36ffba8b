"""Reading a history CSV and placing its rows on the trading day's clock: every bad row names its line."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from circuit_breakers import TradingBreakerConfig
from circuit_breakers.replay import HistoryError, HistoryRow, read_csv
from circuit_breakers.replay.history import place

UTC = dt.timezone.utc


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "history.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_dates_times_zones_and_cash_flows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Time, Equity ,cash_flow,note\n"
        "2024-03-04,100000,,start\n"
        "\n"
        "2024-03-05T10:00:00,100500.25,,\n"
        "2024-03-05 16:00:00Z,150500.25,50000,deposit\n"
        "2024-03-06T09:30:00+01:00,150000,-0.5,\n",
    )
    history = read_csv(path)
    assert history.source == str(path)
    assert history.lines == [2, 4, 5, 6]
    assert history.rows[0] == HistoryRow(dt.date(2024, 3, 4), Decimal(100000), Decimal(0))
    assert history.rows[2].cash_flow == Decimal(50000)
    assert history.rows[3].cash_flow == Decimal("-0.5")

    points = place(history.rows, TradingBreakerConfig(), source=history.source, lines=history.lines)
    # A date is the close of its trading day: one second before the next day starts (midnight New York).
    assert points[0].at == dt.datetime(2024, 3, 5, 4, 59, 59, tzinfo=UTC)
    assert points[0].date_only
    assert points[1].at == dt.datetime(2024, 3, 5, 15, tzinfo=UTC)  # naive: New York (EST, UTC-5)
    assert points[2].at == dt.datetime(2024, 3, 5, 16, tzinfo=UTC)
    assert points[3].at == dt.datetime(2024, 3, 6, 8, 30, tzinfo=UTC)
    assert [point.day for point in points] == [dt.date(2024, 3, 4), *[dt.date(2024, 3, 5)] * 2, dt.date(2024, 3, 6)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("when,equity\n", "line 1: the header 'when,equity' has no time column"),
        ("time,value\n", "has no equity column"),
        ("time,equity\n2024-03-04,100\n2024-03-05\n", "line 3: 1 fields"),
        ("time,equity\n2024-03-04,100\n,100\n", "line 3: time is missing"),
        ("time,equity\n2024-03-04,100\n04/03/2024,100\n", "line 3: time '04/03/2024' is not an ISO date"),
        ("time,equity\n2024-03-04,100\n2024-03-05,\n", "line 3: equity is missing"),
        ("time,equity\n2024-03-04,100\n2024-03-05,1e5x\n", "line 3: equity '1e5x' is not a number"),
        ("time,equity\n2024-03-04,100\n2024-03-05,1_000\n", "line 3: equity '1_000' is not a number"),
        ("time,equity\n2024-03-04,100\n2024-03-05,NaN\n", "line 3: equity 'NaN' is not a finite number"),
        ("time,equity,cash_flow\n2024-03-04,100,ten\n", "line 2: cash_flow 'ten' is not a number"),
    ],
)
def test_bad_files_and_rows_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HistoryError) as raised:
        read_csv(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "time,equity\n2024-03-05,100\n2024-03-04,100\n",
            "line 3: time 2024-03-04 is not after the row before it (2024-03-05)",
        ),
        ("time,equity\n2024-03-05T10:00,100\n2024-03-05T10:00,101\n", "line 3: time 2024-03-05T10:00:00 is not after"),
        ("time,equity\n2024-03-05,100\n2024-03-06,0\n", "line 3: equity must be > 0, got 0"),
        ("time,equity\n", "no rows to replay"),
    ],
)
def test_order_and_sign_are_checked_when_placed(tmp_path: Path, text: str, message: str) -> None:
    history = read_csv(write(tmp_path, text))
    with pytest.raises(HistoryError) as raised:
        place(history.rows, TradingBreakerConfig(), source=history.source, lines=history.lines)
    assert message in str(raised.value)


def test_unreadable_files_are_history_errors(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="cannot read the history"):
        read_csv(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"time,equity\n\xff\xfe\x00")
    with pytest.raises(HistoryError, match="not a UTF-8 text file"):
        read_csv(binary)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (HistoryRow(dt.date(2024, 3, 4), 100.5), "row 1: equity must be a Decimal"),  # type: ignore[arg-type]
        (HistoryRow("2024-03-04", Decimal(1)), "row 1: time must be a datetime or a date"),  # type: ignore[arg-type]
        ((dt.date(2024, 3, 4),), "row 1: expected a HistoryRow"),
    ],
)
def test_rows_from_python_are_checked(row: object, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        place([row], TradingBreakerConfig())  # type: ignore[list-item]


def test_rows_from_python_take_ints_and_strings_exactly() -> None:
    (point,) = place([(dt.date(2024, 3, 4), "100.10", 5)], TradingBreakerConfig())  # type: ignore[list-item]
    assert (point.equity, point.cash_flow) == (Decimal("100.10"), Decimal(5))
