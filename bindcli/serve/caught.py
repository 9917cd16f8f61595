"""Warnings raised while the server decodes one input, caught for that input's answer.

The loaders are threads, and `warnings.catch_warnings` is process-wide, so one hook is
installed for the process and hands each warning to the thread that raised it: a warning
raised inside `caught()` goes to that block's list (and so to the client that sent the
input, and no other); one raised elsewhere (the model thread) goes to the server's log,
once per message and place, as Python would show it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import warnings
from collections.abc import Iterator

from bindcli.errors import InputWarning
from bindcli.serve.protocol import warning


@dataclasses.dataclass(frozen=True)
class Caught:
    """One warning: its category's name and its text (an `InputWarning`'s reason alone, since
    the server's name for the input, a spooled file, is not the client's)."""

    category: str
    message: str

    def answer(self) -> dict:
        """As the server's answers carry it."""
        return warning(self.category, self.message)


_local = threading.local()
_lock = threading.Lock()
_shown: set[tuple] = set()
_python_shows = warnings.showwarning


def _show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    found = getattr(_local, "found", None)
    if found is not None:
        text = message.reason if isinstance(message, InputWarning) else str(message)
        found.append(Caught(category.__name__, text))
    elif (key := (category, str(message), filename, lineno)) not in _shown:
        _shown.add(key)
        _python_shows(message, category, filename, lineno, file, line)


def _install() -> None:
    """The hook, and an `always` filter behind every other (so that the same warning about
    the same file reaches each client that sends it, while what a library asks to ignore
    stays ignored); again after someone (a test's `catch_warnings`) restored theirs."""
    global _python_shows
    with _lock:
        if warnings.showwarning is not _show:
            _python_shows = warnings.showwarning
            warnings.showwarning = _show
            warnings.filterwarnings("always", append=True)


@contextlib.contextmanager
def caught() -> Iterator[list[Caught]]:
    """The warnings this thread raises inside the block, in order."""
    _install()
    previous = getattr(_local, "found", None)
    _local.found = found = []
    try:
        yield found
    finally:
        _local.found = previous
