"""Release files `bind eval` cannot read as they are (NYU-D's MATLAB files, Ego4D's IMU
tables), converted once into bind's cache folder and reused by every later run.

A conversion folder is keyed by the name, size and modification time of each source file, so
a changed release converts again. It is written under a temporary name and renamed when
complete: an interrupted conversion leaves no folder that a later run would take as done.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ContextManager

from bindcli._util import folders

#: `progress(total, label)` yields `advance(n)`: `bindcli.cli.output.Output.progress`
Progress = Callable[[int, str], ContextManager[Callable[..., None]]]


@contextlib.contextmanager
def quiet(total: int, label: str) -> Iterator[Callable[..., None]]:
    """A progress that shows nothing (library calls)."""
    yield lambda n, status=None: None


def folder_for(name: str, sources: Sequence[Path]) -> Path:
    """Where the conversion of `sources` lives: `<cache>/converted/<name>-<key>`."""
    key = hashlib.sha256()
    for source in sources:
        stat = source.stat()
        key.update(f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return folders.cache_dir() / "converted" / f"{name}-{key.hexdigest()[:16]}"


def converted(name: str, sources: Sequence[Path], write: Callable[[Path], None]) -> Path:
    """The folder of `sources` converted: made by `write(folder)` the first time, else reused."""
    done = folder_for(name, sources)
    if done.is_dir():
        return done
    done.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=done.parent))
    try:
        write(partial)
        try:
            partial.rename(done)
        except OSError:
            if not done.is_dir():  # another run finished first: its folder serves as well
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return done
