"""Typed errors: the CLI turns each into one stderr line and an exit code, in one place.

`UsageError` and its subclasses mean the command line (or a library call's arguments) asked
for something that cannot be: the CLI exits 2 for them. Everything else that bind expects is
a `BindError` (exit 1). `InputWarning` goes through Python's `warnings` instead, so a library
user sees it as any warning and the CLI as one `bind: warning: FILE: ...` line.

Imports: bindcli._util.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

# the base and the unwritable file are defined in `_util.failure`, so that atomic writes can
# raise them; this module is where they are taken from
from bindcli._util.failure import BindError as BindError  # noqa: F401
from bindcli._util.failure import OutputError as OutputError
from bindcli._util.paths import path_text


class UsageError(BindError):
    """An argument or option value that cannot be honoured (the CLI exits 2)."""


class ConfigError(UsageError):
    """A model config that is unknown or malformed."""


class DeviceError(UsageError):
    """The device or precision asked for does not exist on this machine."""


class QueryError(UsageError):
    """A query expression (`a.jpg + 0.5:b.wav --text c`) that cannot be parsed or combined."""


class InputError(BindError):
    """One input could not be used; names the input so a batch run can go on and report it."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{path_text(self.source)}: {reason}")


class UnlistedRoot(InputError):
    """A folder or prefix whose listing failed for a reason other than its absence (a
    permission error, a network blip): what it holds is unknown, so nothing under it may be
    marked deleted."""


class InputWarning(UserWarning):
    """An input that was used, though not as its file promised (a WAV cut short); names the
    input, and is a warning rather than an error because its vector is still made."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{path_text(self.source)}: {reason}")


_loading = threading.local()


@contextlib.contextmanager
def attributed_to(source: str | Path) -> Iterator[None]:
    """Marks the block, on this thread, as the loading of `source`, so that whoever shows a
    warning a decoder raises inside it (Pillow's, numpy's) can name the input it is about."""
    previous = getattr(_loading, "source", None)
    _loading.source = str(source)
    try:
        yield
    finally:
        _loading.source = previous


def input_being_loaded() -> str | None:
    """The input this thread is loading (see `attributed_to`), if any."""
    return getattr(_loading, "source", None)


class UnknownModalityError(InputError):
    """The file's extension maps to no modality and no override was given."""


class CheckpointError(BindError):
    """A checkpoint that does not fit the model config, or is not a checkpoint at all."""


class WeightsError(BindError):
    """Weights could not be found, downloaded or verified."""


class WeightsNotDownloaded(WeightsError):
    """The cache has no checkpoint and nothing names another, so resolving would download it;
    raised where downloading was not allowed (`Model.resolve(download=False)`), so that a
    caller with a server to ask can take the model from it instead."""

    def __init__(self, path: Path | None, message: str) -> None:
        self.path = path  # where the download would go; None when no URL is known for the config
        super().__init__(message)


class DatasetError(BindError):
    """A data set's file that is there but does not hold what its release holds (a corrupt
    `.mat`, a table with a non-numeric fold): the data, not the command line, is at fault."""


class StoreError(BindError):
    """The collection file cannot be used as asked (newer schema, unknown collection, ...)."""
