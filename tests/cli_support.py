"""Running `bind` in-process for the CLI tests, always with the small fixture model at fp32."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner, Result

from bindcli.cli.app import app

FIXTURES = Path(__file__).parent / "fixtures" / "imagebind-reference"
MEDIA = FIXTURES / "media"
SMALL = {
    "BIND_MODEL_CONFIG": str(FIXTURES / "public_config.json"),
    "BIND_WEIGHTS": str(FIXTURES / "public.pth"),
    "BIND_PRECISION": "fp32",
    "BIND_DEVICE": "cpu",
}


def bind(*args: str | Path, input: str | bytes | None = None, env: dict | None = None) -> Result:
    """`bind ARGS` with the small model; stdout and stderr kept apart."""
    environ = {**SMALL, "NO_COLOR": "1", "COLUMNS": "120", **(env or {})}
    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=environ)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def reference(key: str) -> np.ndarray:
    """Upstream's output for a media file (end_to_end.npz), normalised."""
    vector = np.load(FIXTURES / "end_to_end.npz")[key]
    return vector / np.linalg.norm(vector)


def copy_media(folder: Path, names: list[str]) -> Path:
    """`folder`, made, holding copies of these fixture media files."""
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(MEDIA / name, folder / name)
    return folder


def media(name: str) -> str:
    return os.path.join(MEDIA, name)
