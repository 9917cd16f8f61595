"""Input files: refuse missing or empty ones up front, and turn decoder failures into InputError.

Decoders (Pillow, PyAV, libsndfile, numpy) raise a zoo of exception types on malformed
input; at this boundary every one of them means "this input is unusable", so each is
reported as an `InputError` naming the file instead of escaping as a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bindcli.errors import InputError


def existing_file(source: str | Path) -> Path:
    """`source` as a Path, if it names a non-empty regular file."""
    path = Path(source)
    if not path.exists():
        raise InputError(source, "no such file")
    if not path.is_file():
        raise InputError(source, "not a regular file")
    if path.stat().st_size == 0:
        raise InputError(source, "file is empty (0 bytes)")
    return path


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
        detail = str(exc) or type(exc).__name__
        raise InputError(source, f"cannot read {what}: {detail}") from exc
