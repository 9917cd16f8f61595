"""Regenerate completions/ (bash, zsh, fish) from the installed `bind` command.

Typer answers `_BIND_COMPLETE=source_<shell> bind` with the script for that shell (Click 7's
`source_<shell>` order, which Typer keeps). Run after changing commands or options:

    .venv/bin/python scripts/update_completions.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: shell -> file name each shell's completion loader looks for
FILES = {"bash": "bind.bash", "zsh": "_bind", "fish": "bind.fish"}


def bind_executable() -> str:
    """The `bind` beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("bind")
    return str(beside) if beside.exists() else (shutil.which("bind") or "bind")


def completion_script(shell: str) -> str:
    env = {**os.environ, "_BIND_COMPLETE": f"source_{shell}"}
    done = subprocess.run([bind_executable()], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def main() -> None:
    for shell, name in FILES.items():
        (ROOT / "completions" / name).write_text(completion_script(shell), encoding="utf-8")
        print(f"wrote completions/{name}", file=sys.stderr)


if __name__ == "__main__":
    main()
