"""What a path names when it is not a regular file, in words, for the one-line input errors.

Kept free of heavy imports: the runtime checks inputs before any decoder is loaded.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_SPECIAL_FILES = (
    (stat.S_ISDIR, "is a folder, not a regular file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file: bind reads a file twice "
     "(to hash it, then to decode it); save the stream to a file first"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
)


def not_a_file(path: str | Path) -> str:
    """Why `path`, which is not a regular file, cannot be read as one: what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a symbolic link to a missing file" if os.path.islink(path) else "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    return next((what for test, what in _SPECIAL_FILES if test(mode)), "not a regular file")
