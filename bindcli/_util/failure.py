"""The two errors the bottom layer raises: `BindError`, the base of every error bind expects,
and `OutputError`, a file that cannot be written.

They live here rather than in `bindcli.errors` because atomic writes (`_util.atomic`) raise
`OutputError`, and `_util` imports nothing of bindcli while `errors` imports `_util`. Everyone
else takes both from `bindcli.errors`, the vocabulary, where the rest of the family lives.
"""

from __future__ import annotations

from pathlib import Path

from bindcli._util.paths import path_text


class BindError(Exception):
    """Base of every error bind expects and reports without a traceback."""


class OutputError(BindError):
    """An output file that cannot be written (its folder is a file, read-only, the disk full);
    names the file and the system's reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path_text(self.path)}: {reason}")
