"""The audit trail of the kill switch: one JSON line per engage, reset, refusal or loss, never lost.

Operators read it where it always was: ``<state_path>.audit.jsonl`` (``tail -f``, ``grep``), and
in the log under the ``circuit_breakers.audit`` logger, one JSON object a record.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import json
import logging
import os
import socket
import threading
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Union

from circuit_breakers.clock import Clock
from circuit_breakers.errors import ConfigError, ConfigTypeError, StateStoreError
from circuit_breakers.stores.files import fsync_directory

_RESERVED_AUDIT_FIELDS = frozenset({"time", "event", "reason", "actor", "pid", "host"})


def _json_default(value: object) -> object:
    """Encode the non-JSON values an audit entry may carry: Decimal as str, times as ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class AuditSink(Protocol):
    """Where audit lines are kept: appended in order, read back oldest first."""

    def append(self, lines: Sequence[str]) -> None:
        """Append every line, whole, or none; raises OSError or StateStoreError if it cannot."""
        ...

    def read(self) -> List[str]:
        """Every line, oldest first; raises StateStoreError if they cannot be read."""
        ...

    def describe(self) -> str:
        """Where, for messages."""
        ...


class FileSink:
    """An append-only JSON-lines file, fsync'ed after each append; mode 0600."""

    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, lines: Sequence[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        created = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # never leave half a line behind
                raise
        finally:
            os.close(fd)
        if created:
            fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def read(self) -> List[str]:
        try:
            with open(self.path, encoding="utf-8") as file:
                return file.read().splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise StateStoreError(f"cannot read audit log {self.path}: {exc}") from exc

    def describe(self) -> str:
        return f"audit log {self.path}"


class AuditLog:
    """An append-only trail of kill switch events: one JSON line each, in the log and on disk.

    Each entry is logged at WARNING on ``logger_name`` (default ``circuit_breakers.audit``) and, if
    ``path`` is set, appended to that file and fsync'ed before :meth:`record` returns. A line that
    cannot be written (full disk, a directory in the way) is kept, in order, and appended by the
    next :meth:`record` or :meth:`flush` that can: never forgotten (up to :attr:`MAX_PENDING`
    lines), and never half-written (a failed append is cut back to the last whole line).
    Thread-safe: lines from different threads never interleave. Never give it a reset key as a
    detail; it writes everything it is given.
    """

    MAX_PENDING = 100_000

    def __init__(
        self,
        path: Union[str, os.PathLike[str], AuditSink, None],
        *,
        clock: Clock,
        logger_name: str = "circuit_breakers.audit",
    ) -> None:
        sink: Optional[AuditSink] = None
        if isinstance(path, (str, os.PathLike)):
            path = os.fsdecode(os.fspath(path))
            if not path:
                raise ConfigError("audit path must not be empty (pass None for no file)")
            sink = FileSink(path)
        elif path is not None:
            if not all(callable(getattr(path, name, None)) for name in ("append", "read", "describe")):
                raise ConfigTypeError(f"audit path must be a str, a path, an AuditSink or None, got {path!r}")
            sink, path = path, None
        if not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
        if not isinstance(logger_name, str) or not logger_name:
            raise ConfigTypeError(f"logger_name must be a non-empty str, got {logger_name!r}")
        self._path: Optional[str] = path
        self._sink = sink
        self._clock = clock
        self._logger = logging.getLogger(logger_name)
        self._lock = threading.Lock()  # guards _pending and serialises appends: each line whole and in order
        self._pending: List[str] = []  # lines not yet on disk, oldest first
        self._last_error: Optional[str] = None  # why the last append failed, for logging once

    @property
    def path(self) -> Optional[str]:
        """The file entries are appended to, or None."""
        return self._path

    @property
    def pending(self) -> int:
        """Lines recorded but not yet written to the file."""
        return len(self._pending)

    def record(
        self,
        event: str,
        *,
        reason: Optional[str] = None,
        actor: Optional[str] = None,
        **details: object,
    ) -> Dict[str, Any]:
        """Log and append one entry; return it as written (Decimals and datetimes as strings).

        Blocks for a write and an fsync when a path is set. Raises ConfigTypeError if a detail is not
        JSON-serialisable, ConfigError if a detail reuses a standard field name, and StateStoreError
        (chained) if the file cannot be written now; the entry is logged either way and kept for the
        next append.
        """
        if not isinstance(event, str) or not event:
            raise ConfigTypeError(f"audit event must be a non-empty str, got {event!r}")
        reserved = sorted(_RESERVED_AUDIT_FIELDS.intersection(details))
        if reserved:
            raise ConfigError(f"audit detail names {', '.join(reserved)} are reserved")
        entry: Dict[str, Any] = {
            "time": self._clock.now().isoformat(),
            "event": event,
            "reason": reason,
            "actor": actor,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **details,
        }
        try:
            line = json.dumps(entry, default=_json_default, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigTypeError(f"audit entry {event!r} is not JSON-serialisable: {exc}") from exc
        self._logger.warning("%s", line)
        if self._sink is not None:
            with self._lock:
                self._pending.append(line)
                if len(self._pending) > self.MAX_PENDING:
                    dropped = self._pending.pop(0)
                    where = self._sink.describe()
                    self._logger.critical("%s unwritable too long; entry dropped: %s", where, dropped)
                self._flush(self._sink)
        written: Dict[str, Any] = json.loads(line)
        return written

    def flush(self) -> None:
        """Append every line not yet written; raises StateStoreError if the trail still cannot be written."""
        if self._sink is not None:
            with self._lock:
                self._flush(self._sink)

    def entries(self) -> List[Dict[str, Any]]:
        """Every entry of the trail, oldest first ([] without one); StateStoreError if it cannot be read."""
        return [] if self._sink is None else parse_lines(self._sink.read(), self._sink.describe())

    def _flush(self, sink: AuditSink) -> None:
        """Append the pending lines (lock held); on failure keep them for the next try."""
        if not self._pending:
            return
        try:
            sink.append(self._pending)
        except (OSError, StateStoreError) as exc:
            if str(exc) != self._last_error:  # once per distinct cause: it is retried at every poll
                self._logger.error(
                    "cannot append %d audit entries to %s", len(self._pending), sink.describe(), exc_info=True
                )
                self._last_error = str(exc)
            if isinstance(exc, StateStoreError):
                raise
            raise StateStoreError(f"cannot write {sink.describe()}: {exc}") from exc
        if self._last_error is not None:
            self._logger.warning("%s writable again; %d entries appended", sink.describe(), len(self._pending))
            self._last_error = None
        self._pending.clear()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @staticmethod
    def read(path: Union[str, os.PathLike[str]]) -> List[Dict[str, Any]]:
        """Every entry in the audit file at ``path``, oldest first; [] if it does not exist.

        Raises StateStoreError naming the path and line for an unreadable file or a corrupt line.
        """
        sink = FileSink(os.fsdecode(os.fspath(path)))
        return parse_lines(sink.read(), sink.describe())

    def __repr__(self) -> str:
        return f"AuditLog({self._path!r}, logger={self._logger.name!r})"


@contextlib.contextmanager
def quiet_library() -> Iterator[None]:
    """Keep the library's log records (audit lines, warnings) out of a command's own output while
    the block runs: for the command lines, whose output is what they print."""
    library = logging.getLogger("circuit_breakers")
    level = library.level
    library.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        library.setLevel(level)


def parse_lines(lines: Sequence[str], where: str) -> List[Dict[str, Any]]:
    """The entries in audit ``lines`` (blank lines skipped); StateStoreError naming ``where`` and the line."""
    entries: List[Dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise StateStoreError(f"{where} line {number} is not JSON: {exc}") from exc
        if not isinstance(entry, dict):
            raise StateStoreError(f"{where} line {number} is not a JSON object")
        entries.append(entry)
    return entries
