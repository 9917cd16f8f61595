"""Content hashes: what names a file or a text across renames, copies and machines.

The embedding cache, collections and the weights' records all key on the SHA-256 of content,
so there is one way to compute it: streamed, never the whole file in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

#: hears how reading or fetching a file goes: (its name, bytes so far, bytes in all or None)
Progress = Callable[[str, int, Optional[int]], None]

BLOCK = 1 << 20


def update_from_file(digest: Any, path: str | Path, progress: Progress | None = None) -> int:
    """Feed the file's bytes to `digest` (a `hashlib` object); returns how many there were.

    For a hash that goes on growing afterwards, as a resumed download's does.
    """
    path = Path(path)
    total = path.stat().st_size if progress is not None else None
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(path.name, done, total)
    return done


def sha256_file(path: str | Path, progress: Progress | None = None) -> str:
    """Hex SHA-256 of the whole file: the identity of its content across renames."""
    digest = hashlib.sha256()
    update_from_file(digest, path, progress)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes, so texts share the cache with files."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
