"""Small file-system helpers shared by the durable store and the audit trail."""

from __future__ import annotations

import errno
import os


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
