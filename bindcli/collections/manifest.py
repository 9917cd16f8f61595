"""The manifest beside vectors bind writes: `FILE.npy.json` beside `bind embed -o FILE.npy` (and
`bind collections export`), `DIR/manifest.json` in a `bind embed --out-dir DIR` folder.

One JSON object: `model` (the model id), what else the writer knows (`precision`,
`preprocessing`; or `model_description`, `collection`), `normalised`, `dim`, and per row of the
vectors `input` (a path, or a text), `modality`, `sha256`, and in a folder's manifest the row's
`file`. Readers need only `model` and the rows' `input` and `modality`, so files written by any
bind read alike. The one module that writes, finds and reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bindcli._util.paths import path_text
from bindcli.errors import InputError

#: the manifest of a `bind embed --out-dir` folder
FOLDER_MANIFEST = "manifest.json"


def sidecar(npy: str | Path) -> Path:
    """Where the manifest of the array `npy` lies: `FILE.npy.json`."""
    npy = Path(npy)
    return npy.with_name(npy.name + ".json")


def row(source: str, modality: str, sha256: str, file: str | None = None) -> dict:
    """One row's record: its input (printed as `path_text` writes paths), modality, content
    hash, and the vector's file in a folder of vectors."""
    found = {"input": path_text(source), "modality": modality, "sha256": sha256}
    if file is not None:
        found["file"] = path_text(file)
    return found


def manifest(model: str, rows: list[dict], *, dim: int, normalised: bool, **about: object) -> dict:
    """The manifest of `rows` vectors of `dim` floats made by `model`; `about` (precision,
    collection, ...) follows the model."""
    return {"model": model, **about, "normalised": normalised, "dim": dim, "rows": rows}


def read(npy: str | Path, *, required: bool) -> dict | None:
    """The manifest beside `npy`, checked to name a model; None when there is none and it is
    not `required`. A bad one is an InputError naming it."""
    npy = Path(npy)
    path = sidecar(npy)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise InputError(path, f"no manifest beside {npy.name} (`bind embed -o FILE.npy` writes one)") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read it ({exc})") from None
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(found, dict) or not isinstance(found.get("model"), str):
        raise InputError(path, "not a bind manifest: no \"model\"")
    return found


def written_by_bind(folder: Path, names: Iterable[str]) -> set[str]:
    """Which of `names` (the files of `folder`) bind wrote: `.npy` arrays with their manifest
    beside them, and the vectors a folder's manifest lists (someone else's `manifest.json`
    lists none)."""
    names = set(names)
    found = {n for n in names if n.endswith(".npy") and sidecar(n).name in names}
    if FOLDER_MANIFEST in names:
        try:
            listed = json.loads((folder / FOLDER_MANIFEST).read_text(encoding="utf-8"))
            found.update(
                name for entry in listed.get("rows", ())
                if isinstance(entry, dict) and isinstance(name := entry.get("file"), str)
                and name in names
            )
        except (OSError, ValueError, AttributeError):
            pass  # someone else's manifest.json
    return found
