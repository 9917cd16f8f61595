"""Where bind keeps what outlives a command: its data (collections and the embedding cache)
and its cache (checkpoints, which can be downloaded again).

Both follow the XDG base directory rules; a `BIND_*` variable moves each on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "bind.sqlite3"
SOCKET_NAME = "serve.sock"


def data_dir() -> Path:
    """`BIND_DATA_DIR`, else `$XDG_DATA_HOME/bind`, else `~/.local/share/bind`."""
    return _folder("BIND_DATA_DIR", "XDG_DATA_HOME", Path(".local", "share"))


def default_db_path() -> Path:
    """Where collections and the embedding cache live unless `--db` says otherwise."""
    return data_dir() / DB_NAME


def cache_dir() -> Path:
    """`BIND_CACHE_DIR`, else `$XDG_CACHE_HOME/bind`, else `~/.cache/bind`."""
    return _folder("BIND_CACHE_DIR", "XDG_CACHE_HOME", Path(".cache"))


def _folder(own: str, xdg: str, under_home: Path) -> Path:
    if os.environ.get(own):
        return Path(os.environ[own]).expanduser()
    base = os.environ.get(xdg)
    return (Path(base).expanduser() if base else Path.home() / under_home) / "bind"


def server_socket() -> Path:
    """Where `bind serve` listens and the commands look for it: in the data folder when
    `BIND_DATA_DIR` moves it (a server belongs with its embedding cache), else
    `$XDG_RUNTIME_DIR/bind` (private, emptied at logout), else the data folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and not os.environ.get("BIND_DATA_DIR"):
        return Path(runtime) / "bind" / SOCKET_NAME
    return data_dir() / SOCKET_NAME
