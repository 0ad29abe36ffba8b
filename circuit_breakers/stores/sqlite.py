"""The local durable store: one SQLite file that several processes on one host share.

Why SQLite: the standard library has it, every change is one transaction (atomic, durable with
``synchronous=FULL``), several processes may read and write one file under its locks, and
``PRAGMA data_version`` tells cheaply whether another process wrote since the last read.

How it stays durable when the disk fills up: the file is created whole in a temporary file and
linked into place (a reader never sees a half-made file), with a reserve of free pages, and its
rollback journal is kept between transactions (``journal_mode=PERSIST``) at the size the reserve
needs. A small transaction then overwrites blocks that are already allocated, so the kill switch
and the high-water mark can still be written on a full disk (on file systems that overwrite in
place: ext4, xfs, tmpfs; not on copy-on-write ones such as btrfs or ZFS).

Files: the database at the path (a symlink is followed: the target is written), its journal
``<path>-journal`` beside it, and, after a keyed reset of an unreadable file, the old file kept
as ``<path>.unreadable-<time>``. A JSON state file of an older version found at the path is
converted once and kept as ``<path>.json-migrated``. Every file is created with mode 0600.

The path's identity (device and inode of its target) is checked before every read and write: a
file that was deleted or replaced under a running process is noticed, and the store opens (or
creates) what is at the path now; its owner then finds its epoch missing and treats it as lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import tempfile
import threading
from typing import Callable, Iterator, List, Optional, Tuple, Union

from circuit_breakers.config import check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError, CorruptStateError, StateStoreError
from circuit_breakers.forks import hold_across_fork
from circuit_breakers.stores.base import Subscription, Tables, check_record, empty_tables
from circuit_breakers.stores.files import fsync_directory

logger = logging.getLogger(__name__)

_APPLICATION_ID = 0x43427331  # "CBs1": marks a file as ours
_FORMAT = 1  # PRAGMA user_version of the schema below
_HEADER = b"SQLite format 3\x00"
_RESERVE_PAGES = 64
_PAGE_SIZE = 4096

# Connections inherited by a forked child are never used or closed there (SQLite forbids both);
# they are kept referenced so that the garbage collector does not close them either.
_ABANDONED: List[sqlite3.Connection] = []


class _Unreadable(Exception):
    """The file at the path is not a readable state file of ours."""


class _NotADatabase(Exception):
    """SQLite found no database in the file at the path."""


def _fail(where: str, doing: str, exc: BaseException) -> StateStoreError:
    return StateStoreError(f"{where}: cannot {doing}: {type(exc).__name__}: {exc}")


def _identity(path: str) -> Optional[Tuple[str, int, int]]:
    """(target path, device, inode) of what ``path`` names now, or None if nothing is there."""
    target = os.path.realpath(path)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    return (target, info.st_dev, info.st_ino)


def _configure(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=PERSIST")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA journal_size_limit=-1")


def _create(directory: str, records: Tables) -> str:
    """A complete new database (schema, reserve, ``records``) in a temporary file in ``directory``."""
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".cb-state.", suffix=".tmp")
    os.close(fd)
    try:
        connection = sqlite3.connect(temp, isolation_level=None)
        try:
            _configure(connection)
            connection.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            connection.execute(f"PRAGMA application_id={_APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version={_FORMAT}")
            connection.execute(
                "CREATE TABLE records (tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " PRIMARY KEY (tbl, key)) WITHOUT ROWID"
            )
            connection.execute("CREATE TABLE reserve (pad BLOB)")
            size = _RESERVE_PAGES * _PAGE_SIZE
            connection.execute("INSERT INTO reserve VALUES (zeroblob(?))", (size,))
            # Rewriting the pad journals every one of its pages: the kept journal grows to that size.
            connection.execute("UPDATE reserve SET pad = randomblob(?)", (size,))
            connection.execute("DELETE FROM reserve")  # its pages stay in the file as free pages
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO records VALUES (?, ?, ?)",
                [(table, key, value) for table, rows in records.items() for key, value in rows.items()],
            )
            connection.execute("COMMIT")
        finally:
            connection.close()
        return temp
    except BaseException:
        for leftover in (temp, temp + "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        raise


@contextlib.contextmanager
def _directory_lock(directory: str) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` while a state file in it is created or replaced, so that
    two processes never do it at once (flock: released by the kernel if the holder dies)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows: creation is still atomic, only not serialised
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _install(temp: str, target: str, *, replace: bool) -> None:
    """Move a database made by :func:`_create` to ``target`` with its grown journal (zeroed: never hot).

    Call with the directory lock held. The journal goes first, over any journal an older file at
    ``target`` left: that one must never be applied to the new file. Without ``replace``, a file
    already at ``target`` wins and ``temp`` is dropped.
    """
    try:
        if replace or not os.path.lexists(target):
            os.replace(temp + "-journal", target + "-journal")
            os.replace(temp, target)
            fsync_directory(os.path.dirname(target))
    finally:
        for leftover in (temp, temp + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _legacy_records(text: str) -> Tables:
    """The records of a JSON state file of the previous format; _Unreadable if it is not one."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or type(document.get("version")) is not int or document["version"] != 1:
            raise ValueError("not a version 1 state document")
        tables = empty_tables()
        for table in ("latches", "values"):
            records = document.get(table, {})
            if not isinstance(records, dict):
                raise ValueError(f"{table} is not an object")
            for key, record in records.items():
                if table == "latches" and not isinstance(record, dict):
                    raise ValueError(f"latch {key!r} is not an object")
                if table == "values" and not isinstance(record, str):
                    raise ValueError(f"value {key!r} is not a str")
                tables[table][key] = json.dumps(record, sort_keys=True) if table == "latches" else record
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise _Unreadable(f"an old JSON state file that cannot be read: {exc}") from exc
    return tables


class SqliteStore:
    """Records in one SQLite file at ``path``, shared safely by every process on the host that opens it.

    Raises StateStoreError at construction when the path cannot hold a state file (no such
    directory, one that refuses new files, a file that cannot be opened). A file that exists but
    is not a readable state file does not raise here: every read then raises CorruptStateError
    naming the file and the problem, until it is repaired or :meth:`reset`. Each operation blocks
    for one transaction (and its fsyncs); a
    transaction waits up to ``timeout`` seconds for another process's. Thread-safe.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], *, timeout: float = 2.0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigTypeError(f"state path must be a str or a path, got {path!r}")
        text = os.fsdecode(os.fspath(path))
        if not text:
            raise ConfigError("state path must not be empty")
        self.timeout = check_number("timeout", timeout, maximum=3600.0)
        self._path = os.path.abspath(text)
        self._lock = threading.Lock()  # guards the connection and everything below
        self._connection: Optional[sqlite3.Connection] = None
        self._identity: Optional[Tuple[str, int, int]] = None
        self._writes = 0  # own commits: data_version does not count them
        hold_across_fork(self)  # no fork splits a transaction (see circuit_breakers.forks)
        self._check_directory()
        with self._lock, contextlib.suppress(CorruptStateError):
            self._connect()  # an unreadable file is the owner's to judge (at its first read), not an error here

    @property
    def path(self) -> str:
        """The path as given, made absolute (a symlink stays a symlink)."""
        return self._path

    @property
    def kind(self) -> str:
        return "sqlite"

    def describe(self) -> str:
        return f"sqlite {self._path}"

    def _check_directory(self) -> None:
        target = os.path.realpath(self._path)
        directory = os.path.dirname(target)
        where = self.describe()
        if os.path.isdir(target):
            raise StateStoreError(f"cannot use {where}: it is a directory")
        if not os.path.isdir(directory):
            raise StateStoreError(f"cannot use {where}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StateStoreError(f"cannot use {where}: directory {directory} is not writable")

    # --- the connection (lock held) ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """The open connection to what the path names now; opens or creates it. Raises StateStoreError.

        The file is only ever opened through SQLite: closing any other descriptor of it would drop
        every POSIX lock this process holds on it, those of another desk's transaction included, and
        let a second process write over that transaction.
        """
        identity = _identity(self._path)
        if self._connection is not None and identity == self._identity and identity is not None:
            return self._connection
        self._drop()
        where = self.describe()
        try:
            if identity is None:
                identity = self._create_at_path(empty_tables())
            try:
                connection = self._open(identity[0])
            except _NotADatabase as exc:
                identity = self._convert_legacy(identity, str(exc))  # the JSON file of an older version, or raises
                connection = self._open(identity[0])
        except _Unreadable as exc:
            raise CorruptStateError(f"{where} is unreadable: {exc}") from exc
        except sqlite3.OperationalError as exc:  # locked, a full disk, an I/O error: it may pass
            raise _fail(where, "open the state file", exc) from exc
        except sqlite3.DatabaseError as exc:  # malformed: it will not pass by itself
            raise CorruptStateError(f"{where} is unreadable: {type(exc).__name__}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            raise _fail(where, "open the state file", exc) from exc
        self._connection, self._identity = connection, identity
        return connection

    def _open(self, target: str) -> sqlite3.Connection:
        """A configured connection to the state file ``target``; _NotADatabase if the file is not SQLite,
        _Unreadable if it is not ours or is damaged."""
        connection = sqlite3.connect(target, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            try:
                _configure(connection)
                pages = connection.execute("PRAGMA page_count").fetchone()[0]
                application = connection.execute("PRAGMA application_id").fetchone()[0]
                version = connection.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise
                raise _NotADatabase(f"{type(exc).__name__}: {exc}") from exc
            if pages == 0:
                raise _Unreadable("empty or truncated")
            if application != _APPLICATION_ID or version != _FORMAT:
                raise _Unreadable(f"not a state file of this library (application_id {application}, format {version})")
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Unreadable(f"the database is corrupt: {check}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _convert_legacy(self, identity: Tuple[str, int, int], problem: str) -> Tuple[str, int, int]:
        """Convert the JSON file of the previous format at the path, once; _Unreadable(``problem``) if
        it is not one.

        Only reached when SQLite found no database in the file, so no connection of this process
        holds a lock on it that opening it here could drop.
        """
        target = identity[0]
        with open(target, "rb") as file:
            head = file.read(len(_HEADER))
        if head.lstrip()[:1] != b"{":
            raise _Unreadable("not an SQLite database" if head != _HEADER else problem)
        with open(target, encoding="utf-8") as file:
            records = _legacy_records(file.read())
        backup = target + ".json-migrated"
        with contextlib.suppress(FileExistsError):
            os.link(target, backup)
        directory = os.path.dirname(target)
        with _directory_lock(directory):
            if _identity(self._path) == identity:  # not converted meanwhile by another process
                _install(_create(directory, records), target, replace=True)
        logger.warning("%s: converted the old JSON state file (kept as %s)", self.describe(), backup)
        return _identity(self._path) or identity

    def _create_at_path(self, records: Tables) -> Tuple[str, int, int]:
        target = os.path.realpath(self._path)
        directory = os.path.dirname(target)
        with _directory_lock(directory):
            _install(_create(directory, records), target, replace=False)
        identity = _identity(self._path)
        if identity is None:
            raise OSError(f"{target} vanished right after it was created")
        return identity

    def _drop(self) -> None:
        connection, self._connection, self._identity = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    # --- the contract -----------------------------------------------------------------------------

    def read(self) -> Tables:
        with self._lock:
            connection = self._connect()
            try:
                rows = connection.execute("SELECT tbl, key, value FROM records").fetchall()
            except sqlite3.OperationalError as exc:
                raise _fail(self.describe(), "read the state", exc) from exc
            except sqlite3.DatabaseError as exc:
                raise CorruptStateError(f"{self.describe()} is unreadable: {type(exc).__name__}: {exc}") from exc
        tables = empty_tables()
        for table, key, value in rows:
            if table in tables and isinstance(key, str) and isinstance(value, str):
                tables[table][key] = value
            else:
                raise CorruptStateError(f"{self.describe()}: unreadable record {table!r}/{key!r}")
        return tables

    def _write(self, table: str, key: str, check: Callable[[Optional[str]], bool], new: Optional[str]) -> bool:
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    row = connection.execute(
                        "SELECT value FROM records WHERE tbl = ? AND key = ?", (table, key)
                    ).fetchone()
                    if not check(None if row is None else row[0]):
                        connection.execute("ROLLBACK")
                        return False
                    if new is None:
                        connection.execute("DELETE FROM records WHERE tbl = ? AND key = ?", (table, key))
                    else:
                        connection.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (table, key, new))
                    connection.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _fail(self.describe(), f"write {table}/{key}", exc) from exc
            self._writes += 1
            return True

    def compare_and_set(self, table: str, key: str, expected: Optional[str], new: Optional[str]) -> bool:
        check_record(table, key, expected, new)
        return self._write(table, key, lambda old: old == expected, new)

    def put(self, table: str, key: str, value: Optional[str]) -> None:
        check_record(table, key, value)
        self._write(table, key, lambda old: True, value)

    def version(self) -> object:
        with self._lock:
            try:
                connection = self._connect()
                data_version = connection.execute("PRAGMA data_version").fetchone()[0]
            except (StateStoreError, sqlite3.Error):
                return object()  # equal to nothing: the owner reads, and hears why
            return (self._identity, data_version, self._writes)

    def subscribe(self, on_change: Callable[[], object]) -> Optional[Subscription]:
        return None  # owners poll version(): one cheap PRAGMA per monitor poll

    def reset(self) -> None:
        """Keep the file at the path aside as ``<path>.unreadable-<time>`` and start an empty one."""
        with self._lock:
            self._drop()
            target = os.path.realpath(self._path)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
            try:
                with _directory_lock(os.path.dirname(target)):
                    if os.path.lexists(target):
                        kept = f"{target}.unreadable-{stamp}"
                        if os.path.exists(target + "-journal"):
                            os.replace(target + "-journal", kept + "-journal")
                        os.replace(target, kept)
                        logger.warning("%s: the unreadable state file is kept as %s", self.describe(), kept)
                self._create_at_path(empty_tables())
                self._connect()
            except (OSError, sqlite3.Error) as exc:
                raise _fail(self.describe(), "start a new state file", exc) from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def after_fork_in_child(self) -> None:
        # The lock was held across the fork and released in the child: no transaction was open.
        if self._connection is not None:
            _ABANDONED.append(self._connection)
        self._connection, self._identity = None, None

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r})"
