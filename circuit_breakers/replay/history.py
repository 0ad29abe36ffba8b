"""An account's history for a replay: HistoryRow, the CSV reader, and placing each row on the clock.

The CSV has a header row naming at least ``time`` and ``equity``, and optionally ``cash_flow``
(other columns are ignored)::

    time,equity,cash_flow
    2024-01-02,1000000,
    2024-01-03,1012000.50,
    2024-01-04,1061500,50000

``time`` is an ISO date or date-time, with or without a zone (``Z`` or ``+01:00``); a naive time is
in the trading-day zone of the config. ``equity`` is the account's total value (> 0) and
``cash_flow`` a deposit (+) or withdrawal (-) booked at that row, already included in its equity.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import List, NamedTuple, Optional, Union

from circuit_breakers.config import to_decimal
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.trading.config import TradingBreakerConfig

_ZERO = Decimal(0)
_END_OF_DAY = dt.timedelta(seconds=1)
_ONE_DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class HistoryError(ConfigError):
    """A history that cannot be replayed: unreadable, a bad header, or a bad row (named by its line)."""


class HistoryRow(NamedTuple):
    """One row of an account's history, for :func:`~circuit_breakers.replay.replay` from Python.

    ``time`` is a timezone-aware datetime, a naive datetime (in the config's trading-day zone) or
    a date (the close of that trading day). ``equity`` and ``cash_flow`` are Decimal (int and
    numeric str are converted exactly; floats are refused).
    """

    time: Union[dt.datetime, dt.date]
    equity: Decimal
    cash_flow: Decimal = _ZERO


class Point(NamedTuple):
    """A row placed on the clock: the instant (UTC), its trading day, and checked figures."""

    at: dt.datetime
    day: dt.date
    equity: Decimal
    cash_flow: Decimal
    date_only: bool
    line: int  # in the CSV, or the row's position (1 = first) for rows given from Python


def _parse_time(text: str) -> Union[dt.datetime, dt.date]:
    text = text.strip()
    if len(text) == 10:
        return dt.date.fromisoformat(text)
    if text.endswith(("Z", "z")):  # fromisoformat accepts "Z" only from Python 3.11 on
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text)


def _parse_money(column: str, text: str, where: str, *, blank: Optional[Decimal] = None) -> Decimal:
    text = text.strip()
    if not text and blank is not None:
        return blank
    if not text:
        raise HistoryError(f"{where}: {column} is missing")
    try:
        if "_" in text:  # Decimal would read "1_000"; a CSV number has no underscores
            raise InvalidOperation
        value = Decimal(text)
    except InvalidOperation:
        raise HistoryError(f"{where}: {column} {text!r} is not a number") from None
    if not value.is_finite():
        raise HistoryError(f"{where}: {column} {text!r} is not a finite number")
    return value


class CsvHistory(NamedTuple):
    """The rows of a history CSV and the line each came from (for error messages)."""

    source: str
    rows: List[HistoryRow]
    lines: List[int]


def read_csv(path: Union[str, os.PathLike[str]]) -> CsvHistory:
    """Read a history CSV; return its rows with their line numbers. Blocks while reading.

    Raises HistoryError (a ConfigError) naming the file and the line for a file that cannot be
    read, a header without ``time`` and ``equity``, and a row whose time or number is missing or
    malformed. Order and sign are checked when the rows are placed (:func:`place`).
    """
    source = os.fspath(path)
    history = CsvHistory(source, [], [])
    try:
        with open(source, newline="", encoding="utf-8-sig") as stream:
            _read_rows(stream, history)
    except OSError as exc:
        raise HistoryError(f"{source}: cannot read the history: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise HistoryError(f"{source}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise HistoryError(f"{source}: not a readable CSV file: {exc}") from exc
    return history


def _read_rows(stream: Iterable[str], history: CsvHistory) -> None:
    source = history.source
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise HistoryError(f"{source}: the file is empty; expected a header row with time,equity")
    columns = [name.strip().lower() for name in header]
    missing = [name for name in ("time", "equity") if name not in columns]
    if missing:
        raise HistoryError(f"{source} line 1: the header {','.join(header)!r} has no {' or '.join(missing)} column")
    time_at, equity_at = columns.index("time"), columns.index("equity")
    flow_at = columns.index("cash_flow") if "cash_flow" in columns else None
    needed = max(time_at, equity_at, -1 if flow_at is None else flow_at) + 1
    for fields in reader:
        if not any(field.strip() for field in fields):
            continue  # blank lines, as spreadsheets leave at the end
        line = reader.line_num
        where = f"{source} line {line}"
        if len(fields) < needed:
            raise HistoryError(f"{where}: {len(fields)} fields, the header has {len(columns)}")
        text = fields[time_at].strip()
        if not text:
            raise HistoryError(f"{where}: time is missing")
        try:
            time = _parse_time(text)
        except ValueError:
            raise HistoryError(f"{where}: time {text!r} is not an ISO date or date-time") from None
        equity = _parse_money("equity", fields[equity_at], where)
        flow = _ZERO if flow_at is None else _parse_money("cash_flow", fields[flow_at], where, blank=_ZERO)
        history.rows.append(HistoryRow(time, equity, flow))
        history.lines.append(line)


def place(
    rows: Iterable[HistoryRow],
    config: TradingBreakerConfig,
    *,
    source: str = "history",
    lines: Optional[Sequence[int]] = None,
) -> List[Point]:
    """Put every row on the clock of ``config``'s trading day and check it; return the points.

    A naive time is in ``config.trading_day_timezone``; a date stands for the close of that trading
    day (one second before the next one starts). ``lines`` are the rows' CSV lines, for messages
    (otherwise rows are named by position, 1 = first). Raises HistoryError naming the line for a
    row that is not after the one before it, an equity that is not > 0, a bad type, and for no rows.
    """
    zone = config.zone
    points: List[Point] = []
    previous: Optional[Point] = None
    previous_time: object = None
    day, day_begins, day_ends = dt.date.min, _EPOCH, _EPOCH
    for position, row in enumerate(rows, start=1):
        line = position if lines is None else lines[position - 1]

        def where() -> str:  # built only for a message: a million rows need none
            return f"{source} row {position}" if lines is None else f"{source} line {line}"  # noqa: B023

        if not isinstance(row, tuple) or len(row) not in (2, 3):
            raise HistoryError(f"{where()}: expected a HistoryRow(time, equity[, cash_flow]), got {row!r}")
        time, equity, flow = row if len(row) == 3 else (*row, _ZERO)
        try:
            if type(equity) is not Decimal or not equity.is_finite():
                equity = to_decimal("equity", equity)
            if type(flow) is not Decimal or not flow.is_finite():
                flow = to_decimal("cash_flow", flow)
        except (ConfigError, ConfigTypeError) as exc:
            raise HistoryError(f"{where()}: {exc}") from None
        if equity <= 0:
            raise HistoryError(f"{where()}: equity must be > 0, got {equity}")
        if isinstance(time, dt.datetime):
            at = (time.replace(tzinfo=zone) if time.tzinfo is None else time).astimezone(dt.timezone.utc)
            if not day_begins <= at < day_ends:  # rows come in order: most share the day before them
                day = config.trading_day(at)
                day_begins, day_ends = config.day_start(day), config.day_start(day + _ONE_DAY)
            point = Point(at, day, equity, flow, False, line)
        elif isinstance(time, dt.date):
            at = config.day_start(time + _ONE_DAY) - _END_OF_DAY
            point = Point(at, time, equity, flow, True, line)
        else:
            raise HistoryError(f"{where()}: time must be a datetime or a date, got {time!r}")
        if previous is not None and point.at <= previous.at:
            raise HistoryError(
                f"{where()}: time {time.isoformat()} is not after the row before it ({_iso(previous_time)})"
            )
        points.append(point)
        previous, previous_time = point, time
    if not points:
        raise HistoryError(f"{source}: no rows to replay")
    return points


def _iso(time: object) -> str:
    return time.isoformat() if isinstance(time, (dt.date, dt.datetime)) else repr(time)
