"""Input files: refuse missing or empty ones up front, and turn decoder failures into InputError.

Decoders (Pillow, PyAV, libsndfile, numpy) raise a zoo of exception types on malformed
input; at this boundary every one of them means "this input is unusable", so each is
reported as an `InputError` naming the file instead of escaping as a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bindcli._util.paths import not_a_file
from bindcli.errors import InputError


def existing_file(source: str | Path) -> Path:
    """`source` as a Path, if it names a non-empty regular file."""
    path = Path(source)
    if not path.is_file():
        raise InputError(source, not_a_file(path))
    if path.stat().st_size == 0:
        raise InputError(source, "file is empty (0 bytes)")
    return path


def _detail(exc: Exception) -> str:
    """A decoder's message, worded for people: FFmpeg's (through PyAV) comes as `[Errno
    1094995529] Invalid data found when processing input: 'path'`, of which only the middle
    says anything the line does not already."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] == "av":
        if strerror:
            detail = strerror[0].lower() + strerror[1:]
            if detail.startswith("invalid data found"):
                return f"{detail} (not this kind of file, or a damaged one)"
            return detail
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def decoding(source: str | Path, what: str) -> Iterator[None]:
    """Report any decoder exception inside the block as "cannot read <what>: ..."."""
    try:
        yield
    except InputError:
        raise
    except MemoryError:
        raise InputError(source, f"cannot read {what}: too large to decode") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad input
        raise InputError(source, f"cannot read {what}: {_detail(exc)}") from exc
