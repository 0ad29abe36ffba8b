"""What stands between a kill switch and its reset: a hashed reset key, a lockout, an audit trail.

The reset secret is never stored, logged or put in an exception message: :class:`ResetKey` keeps
only a random salt and an scrypt hash, and :class:`ResetGuard` logs attempts by count, never by
content. :class:`AuditLog` records who engaged or reset the switch, and why, as one JSON line per
event in the log and, when given a path, in an append-only file that is fsync'ed after each line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, Union

from circuit_breakers.clock import Clock
from circuit_breakers.config import check_int, check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError, KillSwitchError, StateStoreError

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


def secret_bytes(secret: object) -> Optional[bytes]:
    """A reset secret as bytes (None for None); ConfigTypeError / ConfigError that never show its value."""
    if secret is None:
        return None
    data = _as_bytes(secret)
    if data is None:
        raise ConfigTypeError(f"reset key must be a str or bytes, got a {type(secret).__name__}")
    if not data:
        raise ConfigError("reset key must not be empty")
    return data


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


Attempts = Tuple[int, Optional[_dt.datetime]]
"""Consecutive wrong keys, and the wall time until which resets are locked out (None: not locked)."""


class LockoutRecord(Protocol):
    """Where the wrong-key count and the lockout are kept, so that every process and restart sees them."""

    def read(self) -> Attempts:
        """The current count and lockout; raises StateStoreError if they cannot be read."""
        ...

    def update(self, change: Callable[[Attempts], Attempts]) -> Attempts:
        """Atomically replace them by ``change(current)`` and return the result; StateStoreError on failure."""
        ...


class LocalLockout:
    """A LockoutRecord in this process's memory only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _attempts
        self._attempts: Attempts = (0, None)

    def read(self) -> Attempts:
        with self._lock:
            return self._attempts

    def update(self, change: Callable[[Attempts], Attempts]) -> Attempts:
        with self._lock:
            self._attempts = change(self._attempts)
            return self._attempts


class ResetGuard:
    """Checks reset keys and locks resets out after ``max_attempts`` consecutive wrong ones.

    The count and the lockout live in ``record`` (by default this process's memory; the trading
    breakers keep them with their state, so that every process sharing it, and every restart,
    counts toward one lockout). A lockout lasts ``lockout_seconds``, by the wall clock in the
    record and by this process's monotonic clock too (so a wall clock stepped forward shortens
    nothing here); it refuses every key (the right one too) without hashing it, and on expiry
    restores a full set of attempts. ``max_attempts=0`` disables the lockout. Thread-safe: attempts
    racing a lockout that another thread or process just triggered are refused too.
    """

    def __init__(
        self,
        key: Optional[ResetKey],
        *,
        clock: Clock,
        max_attempts: int = 5,
        lockout_seconds: float = 300.0,
        record: Optional[LockoutRecord] = None,
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
        self._record: LockoutRecord = LocalLockout() if record is None else record
        self._lock = threading.Lock()  # guards _failures, _locked_until and _seen (this process's view)
        self._failures = 0
        self._locked_until: Optional[float] = None  # monotonic
        self._seen: Tuple[Optional[_dt.datetime], float] = (None, 0.0)  # a stored lockout, and when first seen

    @property
    def key(self) -> Optional[ResetKey]:
        """The reset key's hash, or None."""
        return self._key

    def bind(self, key: Optional[ResetKey]) -> None:
        """Check keys against ``key`` from now on (the trading breakers bind the one stored with the state)."""
        if key is not None and not isinstance(key, ResetKey):
            raise ConfigTypeError(f"key must be a ResetKey or None, got a {type(key).__name__}")
        self._key = key

    @property
    def has_key(self) -> bool:
        """True if a reset key is configured."""
        return self._key is not None

    def check(self, candidate: object) -> bool:
        """True if ``candidate`` is the reset key; False (and one more failure counted) if not.

        Raises KillSwitchError if no key is configured or resets are locked out (the message gives
        the seconds left), StateStoreError if the count cannot be read or written (the attempt is
        refused then). Takes one scrypt derivation, computed with no lock held.
        """
        key = self._key
        if key is None:
            raise KillSwitchError("no reset key configured; the kill switch cannot be reset with a key")
        with self._lock:
            refusal = self._local_refusal()
        if refusal is None:
            refusal = self._stored_refusal(self._record.read(), self._clock.now())
        if refusal is not None:
            logger.warning("kill switch reset refused: %s", refusal)
            raise KillSwitchError(f"kill switch reset {refusal}")
        ok = key.verify(candidate)
        now = self._clock.now()
        raced: List[str] = []

        def count(attempts: Attempts) -> Attempts:
            raced.clear()
            failures, until = attempts
            left = self._stored_left(until, now)
            if until is not None and left <= 0:
                failures, until = 0, None  # an expired lockout: a full set of attempts again
            if until is not None:  # another thread or process locked resets out while this one hashed
                raced.append(self._describe_lockout(left, failures))
                return failures, until
            if ok:
                return 0, None
            failures += 1
            locked = bool(self._max_attempts) and failures >= self._max_attempts
            return failures, now + _dt.timedelta(seconds=self._lockout_seconds) if locked else None

        failures, until = self._record.update(count)
        locked_now = not raced and until is not None
        with self._lock:
            self._failures = failures
            if locked_now:
                self._locked_until = self._clock.monotonic() + self._lockout_seconds
        if raced:
            logger.warning("kill switch reset refused: %s", raced[0])
            raise KillSwitchError(f"kill switch reset {raced[0]}")
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
        """``failed_attempts`` (consecutive), ``locked_out_for`` (seconds, 0.0 if not) and ``has_key``.

        Never raises: while the record cannot be read, this process's own view is given.
        """
        now = self._clock.now()
        with self._lock:
            remaining = self._lockout_remaining()
            failures = self._failures
        try:
            stored_failures, until = self._record.read()
        except StateStoreError:
            stored_failures, until = failures, None
        left = self._stored_left(until, now)
        if left > 0:
            remaining = max(remaining, left)
        elif until is not None:
            stored_failures = 0
        return {
            "failed_attempts": max(failures, stored_failures) if remaining else stored_failures,
            "locked_out_for": remaining,
            "has_key": self.has_key,
        }

    def _lockout_remaining(self) -> float:
        """Seconds of this process's lockout left, ending an expired one. Call with ``_lock`` held."""
        if self._locked_until is None:
            return 0.0
        remaining = self._locked_until - self._clock.monotonic()
        if remaining > 0:
            return remaining
        self._locked_until = None
        self._failures = 0
        return 0.0

    def _describe_lockout(self, remaining: float, failures: int) -> str:
        return f"locked out for another {remaining:.1f}s after {failures} consecutive wrong keys"

    def _local_refusal(self) -> Optional[str]:
        """Why an attempt is refused by this process's own lockout, or None. Call with ``_lock`` held."""
        remaining = self._lockout_remaining()
        return None if remaining <= 0 else self._describe_lockout(remaining, self._failures)

    def _stored_left(self, until: Optional[_dt.datetime], now: _dt.datetime) -> float:
        """Seconds a stored lockout still holds: until its wall time passes, and at most
        ``lockout_seconds`` after this process first saw it (so a wall clock stepped back cannot
        stretch it). A wall clock stepped forward shortens it only where this process did not
        trigger it itself (its own lockout runs on the monotonic clock)."""
        if until is None or until <= now:
            return 0.0
        mono = self._clock.monotonic()
        with self._lock:
            if self._seen[0] != until:
                self._seen = (until, mono)
            observed = mono - self._seen[1]
        return max(min((until - now).total_seconds(), self._lockout_seconds - observed), 0.0)

    def _stored_refusal(self, attempts: Attempts, now: _dt.datetime) -> Optional[str]:
        failures, until = attempts
        left = self._stored_left(until, now)
        return None if left <= 0 else self._describe_lockout(left, failures)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"ResetGuard(has_key={self.has_key}, max_attempts={self._max_attempts}, "
            f"lockout_seconds={self._lockout_seconds:g})"
        )
