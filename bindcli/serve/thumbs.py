"""Thumbnails of a collection's pictures and posters of its films, for the page: made on
demand, kept as small JPEGs in a folder beside the collection file, keyed by the file's path,
size and modification time as they are now (a file changed since it was indexed gets a new
one), the folder held under a size bound by dropping the least recently used."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from bindcli._util.atomic import write_file
from bindcli.errors import InputError
from bindcli.media.picture import PICTURED, picture
from bindcli.media.source import existing_file

SIDE = 320  # pixels on the long side: a grid cell on a dense screen
QUALITY = 80


class Thumbnails:
    """The folder of thumbnails for one collection file."""

    def __init__(self, folder: Path, max_bytes: int = 64 << 20) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self._lock = threading.Lock()

    def get(self, path: str, kind: str) -> bytes:
        """The JPEG of the item at `path`, from the folder or made now; an InputError says
        why a file cannot be drawn."""
        if kind not in PICTURED:
            raise InputError(path, f"an item of kind {kind} has no picture")
        now = existing_file(path).stat()
        key = hashlib.sha256(f"{path}\0{now.st_size}\0{now.st_mtime_ns}".encode(errors="surrogateescape"))
        cached = self.folder / f"{key.hexdigest()}.jpg"
        try:
            data = cached.read_bytes()
            os.utime(cached)  # recently used: kept longest
            return data
        except OSError:
            pass
        drawn = picture(path, kind)
        drawn.thumbnail((SIDE, SIDE))
        out = io.BytesIO()
        drawn.save(out, "JPEG", quality=QUALITY)
        data = out.getvalue()
        write_file(cached, data)
        self._trim()
        return data

    def _trim(self) -> None:
        """Drop the least recently used thumbnails until the folder is under 80% of its bound."""
        with self._lock:
            files = []
            for entry in os.scandir(self.folder):
                if entry.name.endswith(".jpg"):
                    info = entry.stat()
                    files.append((info.st_mtime, info.st_size, entry.path))
            total = sum(size for _, size, _ in files)
            if total <= self.max_bytes:
                return
            for _, size, name in sorted(files):
                if total <= self.max_bytes * 0.8:
                    break
                Path(name).unlink(missing_ok=True)
                total -= size
