"""Regenerate completions/ (bash, zsh, fish) for both installed names, `bind` and `bindcli`.

Typer answers `_BIND_COMPLETE=source_<shell> bind` (`_BINDCLI_COMPLETE=... bindcli`) with the
script for that shell (Click 7's `source_<shell>` order, which Typer keeps). Run after
changing commands or options:

    .venv/bin/python scripts/update_completions.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: `bindcli` is the same program under a name that no shell builtin shadows
PROGRAMS = ("bind", "bindcli")
#: shell -> the file name that shell's completion loader looks for, per program
PATTERNS = {"bash": "{}.bash", "zsh": "_{}", "fish": "{}.fish"}
FILES = {
    (program, shell): pattern.format(program)
    for program in PROGRAMS
    for shell, pattern in PATTERNS.items()
}


def executable(program: str) -> str:
    """`program` beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name(program)
    return str(beside) if beside.exists() else (shutil.which(program) or program)


def completion_script(program: str, shell: str) -> str:
    env = {**os.environ, f"_{program.upper()}_COMPLETE": f"source_{shell}"}
    done = subprocess.run([executable(program)], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def main() -> None:
    for (program, shell), name in FILES.items():
        script = completion_script(program, shell)
        (ROOT / "completions" / name).write_text(script, encoding="utf-8")
        print(f"wrote completions/{name}", file=sys.stderr)


if __name__ == "__main__":
    main()
