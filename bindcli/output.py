"""Where everything bind prints goes: data to stdout, messages and progress to stderr.

One sink per command run, so every command looks and behaves the same in a terminal and in a
pipe: people get Rich tables, scripts get JSONL/JSON/CSV/npy, and no message, warning or
progress bar ever lands in the data stream. Files are written atomically (a temporary file
beside the target, then a rename), so an interrupted run never leaves half a file behind.

Imports: bindcli._util, bindcli.errors.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import secrets
import stat
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from bindcli.errors import InputError, InputWarning, OutputError, input_being_loaded
from bindcli._util.hashing import Progress
from bindcli._util.paths import path_text

#: significant digits that round-trip every float32 exactly
_FLOAT32_DIGITS = ".9g"


class Output:
    """The sink of one command run.

    `quiet` silences notes and progress, never errors or data. Colour follows Rich's rules
    (`NO_COLOR`, `TERM=dumb`, not a terminal); the human/machine choice follows whether stdout
    itself is a terminal, so a `FORCE_COLOR` in the environment never turns a pipe's JSON
    into a table.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        # names and texts are the user's: `cat:fire:.jpg` is a file name, not an emoji code
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.out = Console(highlight=False, emoji=False)

    @property
    def stdout_is_terminal(self) -> bool:
        return _isatty(sys.stdout)

    def note(self, message: str) -> None:
        """A message for the person at the terminal (what was picked, what was written)."""
        if not self.quiet:
            self.err.print(f"bind: {message}", markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"bind: warning: {message}", markup=False)

    def error(self, message: str) -> None:
        self.err.print(f"bind: {message}", markup=False)

    @contextlib.contextmanager
    def input_warnings(self) -> Iterator[None]:
        """Loaders run on worker threads and know no terminal, so they warn through Python's
        `warnings`; inside the block each `InputWarning`, from any thread, is one `bind:
        warning: FILE: reason` line, every time, even with -q. Any other warning raised while
        an input loads (Pillow's, numpy's) is a note naming that input, once per input and
        message, and none with -q; Pillow's decompression-bomb warning is dropped, since
        bind's own pixel limit decides and says so. Warnings from elsewhere are untouched."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            python_shows = warnings.showwarning
            noted: set[tuple[str, str]] = set()

            def show(message, category, filename, lineno, file=None, line=None):
                source = input_being_loaded()
                if issubclass(category, InputWarning):
                    self.warn(str(message))
                elif source is None:
                    python_shows(message, category, filename, lineno, file, line)
                elif category.__name__ != "DecompressionBombWarning" and not self.quiet:
                    if (source, str(message)) not in noted:
                        noted.add((source, str(message)))
                        self.warn(f"{source}: {message}")

            warnings.showwarning = show
            yield

    def failed(self, errors: Iterable[InputError]) -> int:
        """One line per failed input, `bind: <file>: <reason>`; returns how many."""
        count = 0
        for exc in errors:
            self.error(f"{path_text(exc.source)}: {exc.reason}")
            count += 1
        return count

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[..., None]]:
        """Yields `advance(n, status=None)` (a status replaces the label). A transient bar on an
        interactive stderr for more than one item; nothing at all in a pipe, in CI or with -q."""
        if self.quiet or total < 2 or not _isatty(sys.stderr) or not self.err.is_interactive:
            yield lambda n, status=None: None
            return
        from rich.progress import Progress

        with Progress(console=self.err, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n, status=None: bar.update(task, advance=n, description=status)

    @contextlib.contextmanager
    def byte_progress(self, describe: str = "{}") -> Iterator[Progress]:
        """Yields a `bindcli._util.hashing.Progress`: a bar of bytes for each file it hears of, named
        `describe.format(file name)`, drawn from the first report on (so a download that does
        not happen draws nothing); nothing with -q or when stderr is not a terminal."""
        if self.quiet or not self.err.is_terminal:
            yield lambda name, done, total: None
            return
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar
        from rich.progress import TaskID, TransferSpeedColumn

        bar = Bar(
            TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=self.err,
        )
        tasks: dict[str, TaskID] = {}

        def report(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                bar.start()
                tasks[name] = bar.add_task(describe.format(name), total=total)
            bar.update(tasks[name], completed=done, total=total)

        try:
            yield report
        finally:
            bar.stop()

    def table(self, table: Table) -> None:
        self.out.print(table)

    def text(self, text: str) -> None:
        """Data for stdout, written as is."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def binary(self, data: bytes) -> None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- machine formats -----------------------------------------------------------------------


def floats(values: Sequence[float] | Any) -> list[float]:
    """Python floats of a float32 vector, printed short but exact (`.9g` round-trips float32)."""
    import numpy as np

    return [float(format(v, _FLOAT32_DIGITS)) for v in np.asarray(values, np.float32).tolist()]


def jsonl(records: Iterable[dict]) -> str:
    """One compact JSON object per line."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return csv_row(header) + "".join(csv_row(row) for row in rows)


def csv_row(row: Sequence[Any]) -> str:
    """One CSV line (for rows written one at a time)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def npy_bytes(array: Any) -> bytes:
    """The `.npy` file of `array`, in memory (for stdout)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


# --- atomic files --------------------------------------------------------------------------


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
