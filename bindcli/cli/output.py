"""Where everything bind prints goes: data to stdout, messages and progress to stderr.

One sink per command run, so every command looks and behaves the same in a terminal and in a
pipe: people get Rich tables, scripts get the machine formats (`bindcli._util.formats`), and
no message, warning or progress bar ever lands in the data stream.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from bindcli._util.hashing import Progress
from bindcli._util.paths import path_text
from bindcli.errors import InputError, InputWarning, input_being_loaded


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
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

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
