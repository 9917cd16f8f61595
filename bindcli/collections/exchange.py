"""Vectors in and out of collections as the `.npy` + manifest pair `bind embed -o FILE.npy`
writes, so vectors embedded on another machine or by a cluster job join a collection, and a
collection's vectors go to other tools; and query vectors read from a `.npy`.

The manifest `FILE.npy.json` names the model (`model`: its id), and per row of the array the
`input` (a path, or a text), its `modality` and `sha256`. Imported paths need not exist here:
they are stored as written (size and mtime 0, so a later `bind index` of the same file hashes
it once and reuses the vector).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bindcli._util import atomic, formats
from bindcli.collections._matrix import snapshot
from bindcli.errors import InputError, StoreError
from bindcli.modality import Kind
from bindcli._util.paths import path_from_text, path_text
from bindcli.collections.store import DTYPES, Collection, Item, Store, path_from_db

_BATCH = 4096


def manifest_path(npy: str | Path) -> Path:
    npy = Path(npy)
    return npy.with_name(npy.name + ".json")


def _load_array(npy: Path) -> np.ndarray:
    try:
        array = np.load(npy, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(npy, "no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(npy, f"not a .npy array ({exc})") from None
    if array.ndim not in (1, 2) or array.dtype.kind != "f" or not array.size:
        raise InputError(npy, f"expected rows of float vectors, found {array.dtype} {array.shape}")
    return np.atleast_2d(array)


def _manifest(npy: Path, required: bool) -> dict | None:
    path = manifest_path(npy)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise InputError(path, f"no manifest beside {npy.name} (`bind embed -o FILE.npy` writes one)") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read it ({exc})") from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("model"), str):
        raise InputError(path, "not a bind manifest: no \"model\"")
    return manifest


def _check_model(collection: Collection, manifest: dict, source: Path) -> None:
    if manifest["model"] != collection.model_id:
        raise StoreError(
            f"{source}: vectors of model [{manifest['model']}]; collection {collection.name!r} "
            f"holds model {collection.model} [{collection.model_id}]. Use another collection"
        )


def read_queries(npy: str | Path, collection: Collection) -> np.ndarray:
    """Query vectors from a `.npy` (one row or many), refused when a manifest beside it names
    another model than the collection's. No model is loaded."""
    npy = Path(npy)
    vectors = _load_array(npy)
    manifest = _manifest(npy, required=False)
    if manifest is not None:
        _check_model(collection, manifest, manifest_path(npy))
    return np.asarray(vectors, dtype=np.float32)


def import_pair(
    store: Store, name: str, npy: str | Path, dtype: str = "float32"
) -> tuple[Collection, int]:
    """Add the pair's rows to collection `name` (created for the manifest's model if new;
    one of another model is refused). Rows replace items of the same path. Returns the
    collection and how many rows went in."""
    npy = Path(npy)
    manifest = _manifest(npy, required=True)
    source = manifest_path(npy)
    vectors = _load_array(npy)
    rows = manifest.get("rows")
    if not isinstance(rows, list) or len(rows) != len(vectors):
        raise InputError(source, f"lists {len(rows) if isinstance(rows, list) else 'no'} rows "
                         f"for the {len(vectors)} of {npy.name}")
    kinds = {k.value for k in Kind}
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("input"), str) or row.get("modality") not in kinds:
            raise InputError(source, f"row {n} needs an \"input\" and a \"modality\" ({', '.join(sorted(kinds))})")
    collection = store.collection(name)
    if collection is not None:
        _check_model(collection, manifest, source)
        dims = store.stats(collection)["dims"]
        if dims and dims != vectors.shape[1]:
            raise InputError(npy, f"{vectors.shape[1]}-d vectors; collection {name!r} holds {dims}-d")
    with store.transaction():
        if collection is None:
            collection = store.create_collection(name, manifest["model"], f"imported [{manifest['model'][:12]}]", dtype)
        for start in range(0, len(rows), _BATCH):
            block = np.asarray(vectors[start : start + _BATCH], dtype=np.float32)
            store.put_items(collection, [
                Item(path_from_text(row["input"]), row["modality"], 0, 0, str(row.get("sha256") or ""), vector)
                for row, vector in zip(rows[start : start + _BATCH], block)
            ])
    from bindcli.collections.nearest import refresh

    refresh(store, collection)
    return collection, len(rows)


def export_pair(store: Store, collection: Collection, npy: str | Path) -> int:
    """Write the collection's live vectors (float32, unit length, in insertion order) to
    `npy` and its manifest beside it, each atomically; returns the rows written."""
    npy = Path(npy)
    where = "collection_id=? AND deleted=0"
    rows: list[dict] = []
    with snapshot(store.db):
        count, dims = store.db.execute(
            f"SELECT COUNT(*), MAX(dims) FROM items WHERE {where}", (collection.id,)
        ).fetchone()
        if not count:
            raise StoreError(f"collection {collection.name!r} has no items to export")
        cursor = store.db.execute(
            f"SELECT path, kind, sha256, vector FROM items WHERE {where} ORDER BY id",
            (collection.id,),
        )
        with atomic.atomic_path(npy) as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f4", shape=(count, dims))
            while chunk := cursor.fetchmany(_BATCH):
                blob = b"".join(r[3] for r in chunk)
                array[len(rows) : len(rows) + len(chunk)] = np.frombuffer(
                    blob, DTYPES[collection.dtype]
                ).reshape(len(chunk), dims)
                rows.extend(
                    {"input": path_text(path_from_db(p)), "modality": k, "sha256": s}
                    for p, k, s, _ in chunk
                )
            array.flush()
            del array
    atomic.write_file(manifest_path(npy), formats.json_text({
        "model": collection.model_id,
        "model_description": collection.model,
        "collection": collection.name,
        "normalised": True,
        "dim": dims,
        "rows": rows,
    }))
    return count
