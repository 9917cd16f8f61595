"""The one rule for when two paths name the same file: their canonical forms are equal.

The canonical form is the absolute path with `..` and symlinks resolved (`os.path.realpath`).
Collections store it, and `search`/`arith` compare by it, so `bind index ../photos` and `bind
index /home/me/photos` hold each file once, and a query never finds itself however it was
spelt.
"""

from __future__ import annotations

import os
from pathlib import Path


def canonical(path: str | os.PathLike[str]) -> Path:
    """`path` made absolute, `~`, `..` and symlinks resolved (a missing path too, as far as it
    exists)."""
    return Path(os.path.realpath(os.path.expanduser(path)))
