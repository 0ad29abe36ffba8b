"""What stands between a kill switch and its reset: a hashed reset key, a lockout, an audit trail.

The reset secret is never stored, logged or put in an exception message: :class:`ResetKey` keeps
only a random salt and an scrypt hash, and :class:`ResetGuard` logs attempts by count, never by
content. :class:`AuditLog` records who engaged or reset the switch, and why, as one JSON line per
event in the log and, when given a path, in an append-only file that is fsync'ed after each line.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

from circuit_breakers.clock import Clock
from circuit_breakers.config import check_int, check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError, KillSwitchError, StateStoreError
from circuit_breakers.stores.file import fsync_directory

logger = logging.getLogger(__name__)

_ALGORITHM = "scrypt"
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_HASH_BYTES = 32
_SALT_BYTES = 16


def _derive(secret: bytes, salt: bytes) -> bytes:
    """The scrypt hash of ``secret`` under ``salt``: about 16 MiB and tens of milliseconds per call."""
    return hashlib.scrypt(secret, salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_HASH_BYTES)


def _as_bytes(value: object) -> Optional[bytes]:
    """``value`` as bytes if it is a str (UTF-8) or bytes, else None; never raises on the content."""
    if isinstance(value, str):
        # surrogatepass: a UnicodeEncodeError would carry the whole string in its ``object``.
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    return None


class ResetKey:
    """The salted scrypt hash of a reset secret; the secret itself is dropped after hashing.

    A ``str`` secret is hashed as UTF-8, so ``ResetKey("k").verify(b"k")`` is true. Raises
    ConfigTypeError unless the secret is a ``str`` or ``bytes``, ConfigError if it is empty; neither
    message shows the value. Immutable and thread-safe.

    >>> key = ResetKey("correct horse")
    >>> key.verify("correct horse"), key.verify("wrong"), key
    (True, False, ResetKey(<hidden>))
    """

    __slots__ = ("_hash", "_salt")

    def __init__(self, secret: Union[str, bytes]) -> None:
        data = _as_bytes(secret)
        if data is None:
            raise ConfigTypeError(f"reset key must be a str or bytes, got a {type(secret).__name__}")
        if not data:
            raise ConfigError("reset key must not be empty")
        self._salt = secrets.token_bytes(_SALT_BYTES)
        self._hash = _derive(data, self._salt)

    def verify(self, candidate: object) -> bool:
        """True if ``candidate`` is the secret; False for a wrong one or one that is not str/bytes.

        Compares hashes in constant time. Costs one scrypt derivation (tens of milliseconds).
        """
        data = _as_bytes(candidate)
        if data is None:
            return False
        return hmac.compare_digest(_derive(data, self._salt), self._hash)

    def to_dict(self) -> Dict[str, Any]:
        """The salt, hash and scrypt parameters as JSON-ready values (hex strings); never the secret."""
        return {
            "algorithm": _ALGORITHM,
            "n": _SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
            "salt": self._salt.hex(),
            "hash": self._hash.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResetKey:
        """Rebuild a key from :meth:`to_dict` output; raises ConfigError if it is malformed.

        The parameters must be the ones this version uses. Messages never show the salt or hash.
        """
        if not isinstance(data, Mapping):
            raise ConfigTypeError(f"ResetKey.from_dict needs a mapping, got a {type(data).__name__}")
        expected = {"algorithm": _ALGORITHM, "n": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P}
        for name, value in expected.items():
            if data.get(name) != value:
                raise ConfigError(f"ResetKey.from_dict: {name} must be {value!r}, got {data.get(name)!r}")
        key = cls.__new__(cls)
        key._salt = _hex_field(data, "salt", _SALT_BYTES)
        key._hash = _hex_field(data, "hash", _HASH_BYTES)
        return key

    def __repr__(self) -> str:
        return "ResetKey(<hidden>)"


def _hex_field(data: Mapping[str, Any], name: str, size: int) -> bytes:
    value = data.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"ResetKey.from_dict: {name} must be a hex string of {size} bytes") from None
    if len(raw) != size:
        raise ConfigError(f"ResetKey.from_dict: {name} must be {size} bytes, got {len(raw)}")
    return raw


class ResetGuard:
    """Checks reset keys and locks resets out after ``max_attempts`` consecutive wrong ones.

    A lockout lasts ``lockout_seconds`` of monotonic time, refuses every key (the right one too)
    without hashing it, and on expiry restores a full set of attempts. ``max_attempts=0`` disables
    the lockout. Thread-safe: attempts racing a lockout that another thread just triggered are
    refused too, so at most ``max_attempts`` wrong keys are ever counted before it.
    """

    def __init__(
        self,
        key: Optional[ResetKey],
        *,
        clock: Clock,
        max_attempts: int = 5,
        lockout_seconds: float = 300.0,
    ) -> None:
        if key is not None and not isinstance(key, ResetKey):
            # The type name only: a raw secret passed here by mistake must not reach the message.
            raise ConfigTypeError(f"key must be a ResetKey or None, got a {type(key).__name__}")
        if not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
        self._key = key
        self._clock = clock
        self._max_attempts = check_int("max_attempts", max_attempts, 0)
        self._lockout_seconds = check_number("lockout_seconds", lockout_seconds)
        self._lock = threading.Lock()  # guards _failures and _locked_until
        self._failures = 0
        self._locked_until: Optional[float] = None

    @property
    def has_key(self) -> bool:
        """True if a reset key is configured."""
        return self._key is not None

    def check(self, candidate: object) -> bool:
        """True if ``candidate`` is the reset key; False (and one more failure counted) if not.

        Raises KillSwitchError if no key is configured or resets are locked out; the message gives
        the seconds left. Takes one scrypt derivation, computed with no lock held.
        """
        key = self._key
        if key is None:
            raise KillSwitchError("no reset key configured; the kill switch cannot be reset with a key")
        ok = locked_now = False
        failures = 0
        with self._lock:
            refusal = self._refusal()
        if refusal is None:
            ok = key.verify(candidate)
            with self._lock:
                # Another thread may have triggered a lockout while this one was hashing.
                refusal = self._refusal()
                if refusal is None:
                    failures = 0 if ok else self._failures + 1
                    self._failures = failures
                    locked_now = bool(self._max_attempts) and failures >= self._max_attempts
                    if locked_now:
                        self._locked_until = self._clock.monotonic() + self._lockout_seconds
        if refusal is not None:
            logger.warning("kill switch reset refused: %s", refusal)
            raise KillSwitchError(f"kill switch reset {refusal}")
        if ok:
            logger.info("kill switch reset key accepted")
        elif locked_now:
            logger.warning(
                "kill switch reset refused: wrong key (%d consecutive); resets locked out for %.1fs",
                failures,
                self._lockout_seconds,
            )
        else:
            logger.warning("kill switch reset refused: wrong key (%d consecutive)", failures)
        return ok

    def status(self) -> Dict[str, Any]:
        """``failed_attempts`` (consecutive), ``locked_out_for`` (seconds, 0.0 if not) and ``has_key``."""
        with self._lock:
            remaining = self._lockout_remaining()
            failures = self._failures
        return {"failed_attempts": failures, "locked_out_for": remaining, "has_key": self.has_key}

    def _lockout_remaining(self) -> float:
        """Seconds of lockout left, ending an expired one. Call with ``_lock`` held."""
        if self._locked_until is None:
            return 0.0
        remaining = self._locked_until - self._clock.monotonic()
        if remaining > 0:
            return remaining
        self._locked_until = None
        self._failures = 0
        return 0.0

    def _refusal(self) -> Optional[str]:
        """Why an attempt is refused now (a lockout), or None. Call with ``_lock`` held."""
        remaining = self._lockout_remaining()
        if remaining <= 0:
            return None
        return f"locked out for another {remaining:.1f}s after {self._failures} consecutive wrong keys"

    def __repr__(self) -> str:
        return (
            f"ResetGuard(has_key={self.has_key}, max_attempts={self._max_attempts}, "
            f"lockout_seconds={self._lockout_seconds:g})"
        )


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


class AuditLog:
    """An append-only trail of kill switch events: one JSON line each, in the log and on disk.

    Each entry is logged at WARNING on ``logger_name`` and, if ``path`` is set, appended to that
    file and fsync'ed before :meth:`record` returns. Thread-safe: lines from different threads never
    interleave. Never give it a reset key as a detail; it writes everything it is given.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str], None],
        *,
        clock: Clock,
        logger_name: str = "circuit_breakers.audit",
    ) -> None:
        if path is not None:
            if not isinstance(path, (str, os.PathLike)):
                raise ConfigTypeError(f"audit path must be a str, a path or None, got {path!r}")
            path = os.fsdecode(os.fspath(path))
            if not path:
                raise ConfigError("audit path must not be empty (pass None for no file)")
        if not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
        if not isinstance(logger_name, str) or not logger_name:
            raise ConfigTypeError(f"logger_name must be a non-empty str, got {logger_name!r}")
        self._path: Optional[str] = path
        self._clock = clock
        self._logger = logging.getLogger(logger_name)
        self._lock = threading.Lock()  # serialises appends, so each line is written whole and in order

    @property
    def path(self) -> Optional[str]:
        """The file entries are appended to, or None."""
        return self._path

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
        (chained, after logging it) if the file cannot be written; the entry is logged either way.
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
        if self._path is not None:
            self._append(self._path, line)
        written: Dict[str, Any] = json.loads(line)
        return written

    def _append(self, path: str, line: str) -> None:
        try:
            with self._lock:
                created = not os.path.exists(path)
                with open(path, "a", encoding="utf-8") as file:
                    file.write(line + "\n")
                    file.flush()
                    os.fsync(file.fileno())
                if created:
                    fsync_directory(os.path.dirname(os.path.abspath(path)))
        except OSError as exc:
            self._logger.exception("cannot append audit entry to %s", path)
            raise StateStoreError(f"cannot write audit log {path}: {exc}") from exc

    @staticmethod
    def read(path: Union[str, os.PathLike[str]]) -> List[Dict[str, Any]]:
        """Every entry in the audit file at ``path``, oldest first; [] if it does not exist.

        Raises StateStoreError naming the path and line for an unreadable file or a corrupt line.
        """
        try:
            with open(path, encoding="utf-8") as file:
                lines = file.readlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise StateStoreError(f"cannot read audit log {os.fsdecode(path)}: {exc}") from exc
        entries: List[Dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise StateStoreError(f"audit log {os.fsdecode(path)} line {number} is not JSON: {exc}") from exc
            if not isinstance(entry, dict):
                raise StateStoreError(f"audit log {os.fsdecode(path)} line {number} is not a JSON object")
            entries.append(entry)
        return entries

    def __repr__(self) -> str:
        return f"AuditLog({self._path!r}, logger={self._logger.name!r})"
