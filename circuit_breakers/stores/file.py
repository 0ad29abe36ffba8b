"""A state store in one JSON file, replaced atomically and fsync'ed on every save.

Each save writes a temporary file in the same directory, fsyncs it, renames it over the target
with :func:`os.replace` and fsyncs the directory, so after a crash or power loss the file holds the
old document or the new one, whole. A process killed mid-save may leave a ``.<name>.*.tmp`` file
behind; it is never read. The file is created with mode 0600 (readable by its owner only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Mapping
from typing import Any, Dict, Optional, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError, StateStoreError
from circuit_breakers.stores.base import decode_state, encode_state


class FileStore:
    """Keeps the document in the JSON file at ``path`` (made absolute). Thread- and process-safe.

    Concurrent saves never mix: the last one to rename wins. Raises ConfigTypeError/ConfigError for
    a path that is not a non-empty str or path; call :meth:`check_writable` to test it early.
    """

    def __init__(self, path: Union[str, os.PathLike[str]]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigTypeError(f"state file path must be a str or a path, got {path!r}")
        text = os.fsdecode(os.fspath(path))
        if not text:
            raise ConfigError("state file path must not be empty")
        self._path = os.path.abspath(text)
        self._directory = os.path.dirname(self._path)

    @property
    def path(self) -> str:
        """The absolute path of the state file."""
        return self._path

    def load(self) -> Optional[Dict[str, Any]]:
        """The stored document, or None if the file does not exist.

        Raises StateStoreError naming the path if it cannot be read or is empty, truncated, not
        JSON, not a JSON object, or of another format version.
        """
        try:
            with open(self._path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateStoreError(f"cannot read state file {self._path}: {exc}") from exc
        return decode_state(text, f"state file {self._path}")

    def save(self, state: Mapping[str, Any]) -> None:
        """Replace the file atomically and durably; blocks for two fsyncs.

        Raises StateStoreError if ``state`` is not a JSON-serialisable mapping or the file cannot be
        written; the old document is then left as it was and the temporary file removed.
        """
        text = encode_state(state, self.describe())
        temp_path: Optional[str] = None
        try:
            fd, temp_path = tempfile.mkstemp(
                dir=self._directory, prefix=f".{os.path.basename(self._path)}.", suffix=".tmp"
            )
            with open(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_path, self._path)
            temp_path = None
            fsync_directory(self._directory)
        except OSError as exc:
            raise StateStoreError(f"cannot write state file {self._path}: {exc}") from exc
        finally:
            if temp_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp_path)

    def check_writable(self) -> None:
        """Raise StateStoreError naming the path unless :meth:`save` can create and replace the file.

        Checks that the directory exists and is writable (by creating and removing a temporary
        file) and that the path is not a directory. Does not touch an existing state file.
        """
        where = f"state file {self._path}"
        if not os.path.isdir(self._directory):
            raise StateStoreError(f"cannot use {where}: directory {self._directory} does not exist")
        if os.path.isdir(self._path):
            raise StateStoreError(f"cannot use {where}: it is a directory")
        if not os.access(self._directory, os.W_OK | os.X_OK):
            raise StateStoreError(f"cannot use {where}: directory {self._directory} is not writable")
        try:
            fd, probe = tempfile.mkstemp(dir=self._directory, prefix=".probe.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StateStoreError(f"cannot use {where}: directory {self._directory} is not writable: {exc}") from exc

    def describe(self) -> str:
        return f"file {self._path}"

    def __repr__(self) -> str:
        return f"FileStore({self._path!r})"


def fsync_directory(directory: str) -> None:
    """Make a rename or a new file in ``directory`` durable; a no-op where directories cannot be synced."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the rename is then as durable as it gets.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
