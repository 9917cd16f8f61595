"""Files written atomically: a temporary file beside the target, then a rename, so an
interrupted run never leaves half a file behind.

A file that cannot be written raises `OutputError` (defined in `_util.failure`, below
`bindcli.errors`, which is where everyone else takes it from).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from bindcli._util.failure import OutputError


@contextlib.contextmanager
def atomic_path(path: str | Path, *, partial: str | None = None) -> Iterator[Path]:
    """A temporary path beside `path` that becomes `path` only if the block finishes.

    What lands gets the permissions a plain write would give it: the replaced file's, else
    0666 less the umask, not the 0600 of `mkstemp` (or of safetensors), which would hide
    `bind embed -o` output from a web server or a colleague sharing the folder. With
    `partial` (a suffix such as `.part`) the temporary file has that fixed name and outlives
    a failed block when it holds anything, so that the next run can resume it. A file that
    cannot be made or put in place (its folder is a file, or read-only) raises OutputError,
    which names `path`; what the block itself raises passes through.

    A symlink is written through (its target is replaced, the link stays). A device, pipe or
    socket (`-o /dev/stdout`, `/proc/self/fd/1`, a FIFO) is not a file to replace: the block
    gets `path` itself and writes to it directly.
    """
    if is_stream(path):
        yield Path(path)
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    if partial:
        tmp, flags = target.with_name(target.name + partial), os.O_WRONLY | os.O_CREAT
    else:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    created = False
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where the folder should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        os.close(os.open(tmp, flags, 0o666))  # the umask applies, as to any new file
        created = True
        mode = stat.S_IMODE((target if target.is_file() else tmp).stat().st_mode)
    except OSError as exc:
        if created and not partial:
            tmp.unlink(missing_ok=True)
        raise unwritable(target, exc) from exc
    try:
        yield tmp
        try:
            os.chmod(tmp, mode)  # the block may have replaced the file with a private one
            os.replace(tmp, target)
        except OSError as exc:
            raise unwritable(target, exc) from exc
    except BaseException:
        if not partial or (tmp.is_file() and tmp.stat().st_size == 0):
            tmp.unlink(missing_ok=True)
        raise


def is_stream(path: str | Path) -> bool:
    """Whether `path` is written to in place: anything that exists and is not a regular file
    or a folder, and the process's own streams (`/dev/stdout`, `/proc/self/fd/N`), which
    name whatever the shell connected, even a regular file opened for appending."""
    if os.path.abspath(path).startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def unwritable(path: str | Path, exc: OSError) -> OutputError:
    """`exc`, met writing `path`, as the one-line error that names the file."""
    return OutputError(path, exc.strerror or str(exc))


def write_file(path: str | Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to `path` atomically."""
    write_files([(path, data)])


def write_files(files: Sequence[tuple[str | Path, str | bytes]]) -> None:
    """Write several files that belong together (an array and its manifest): each is complete
    in a temporary file before any lands, so a failure leaves the old ones (or none)."""
    with contextlib.ExitStack() as stack:
        for path, data in files:
            tmp = stack.enter_context(atomic_path(path))
            try:
                if isinstance(data, str):
                    tmp.write_text(data, encoding="utf-8")
                else:
                    tmp.write_bytes(data)
            except OSError as exc:  # the disk full, a quota
                raise unwritable(path, exc) from exc
