"""Vectors in and out of collections as the `.npy` + manifest pair `bind embed -o FILE.npy`
writes, so vectors embedded on another machine or by a cluster job join a collection, and a
collection's vectors go to other tools; and query vectors read from a `.npy`.

The manifest `FILE.npy.json` (`manifest`) names the model (`model`: its id), and per row of
the array the `input` (a path, or a text), its `modality` and `sha256`. Imported paths need not exist here:
they are stored as written (size and mtime 0, so a later `bind index` of the same file hashes
it once and reuses the vector).

Vectors with no direction to search by (NaN, infinity, all zero) or of another width than the
collection's (or the manifest's `dim`) are refused: an import takes the whole file or nothing,
naming the bad rows, and a query file's bad rows are named by `row_problems`' callers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bindcli._util import atomic, formats
from bindcli._util.chunks import spans
from bindcli._util.paths import canonical, path_from_text
from bindcli.collections import manifest as manifests
from bindcli.collections.store import DTYPES, CollectionRecord, Item, Store, StoredItem
from bindcli.errors import InputError, StoreError, UsageError
from bindcli.modality import Kind
from bindcli.vectors import row_problems

_BATCH = 4096
#: the manifest keys (`bind embed -o` writes them) an import keeps and an export writes back
_MADE_WITH = ("precision", "preprocessing")
#: bad rows an import refusal lists before saying how many more
_NAMED = 5


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


def _check_model(collection: CollectionRecord, manifest: dict, source: Path) -> None:
    if manifest["model"] != collection.model_id:
        raise StoreError(
            f"{source}: vectors of model [{manifest['model']}]; collection {collection.name!r} "
            f"holds model {collection.model} [{collection.model_id}]. Use another collection"
        )


def _bad_rows(npy: Path, vectors: np.ndarray) -> list[tuple[int, str]]:
    """Every row without a direction (`row_problems`), read a block at a time."""
    return [bad for a, b in spans(len(vectors), _BATCH) for bad in row_problems(vectors[a:b], a)]


def read_queries(npy: str | Path, collection: CollectionRecord, dims: int = 0) -> np.ndarray:
    """Query vectors from a `.npy` (one row or many), refused when a manifest beside it names
    another model than the collection's, or their width is not `dims` (the collection's, when
    given). No model is loaded; rows without a direction are the caller's to name
    (`row_problems`): the search refuses them."""
    npy = Path(npy)
    vectors = _load_array(npy)
    manifest = manifests.read(npy, required=False)
    if manifest is not None:
        _check_model(collection, manifest, manifests.sidecar(npy))
    if dims and vectors.shape[1] != dims:
        raise UsageError(f"{npy}: query vectors of {vectors.shape[1]} dims; this collection's have {dims} dims")
    return np.asarray(vectors, dtype=np.float32)


def query_files(npy: str | Path, rows: int) -> list[frozenset[str]]:
    """Per query row, the real path of the file its manifest names (none for a text or without
    a manifest): what that row's results leave out, as a search by that file does."""
    manifest = manifests.read(npy, required=False)
    listed = manifest.get("rows") if manifest is not None else None
    if not isinstance(listed, list) or len(listed) != rows:
        return [frozenset()] * rows
    return [
        frozenset({str(canonical(path_from_text(r["input"])))})
        if isinstance(r, dict) and isinstance(r.get("input"), str) and r.get("modality") not in (None, Kind.TEXT.value)
        else frozenset()
        for r in listed
    ]


def _made_with(manifest: dict) -> dict:
    """What the manifest says made the vectors beyond the model, kept for export."""
    return {key: manifest[key] for key in _MADE_WITH if isinstance(manifest.get(key), (str, int))}


def _description(manifest: dict) -> str:
    """How an imported collection names its model: the manifest's description, else the
    model id's config name."""
    told = manifest.get("model_description")
    if isinstance(told, str) and told.strip():
        return told
    return f"{manifest['model'].split(':')[0]} (imported)"


def import_pair(
    store: Store, name: str, npy: str | Path, dtype: str = "float32"
) -> tuple[CollectionRecord, int]:
    """Add the pair's rows to collection `name` (created for the manifest's model if new;
    one of another model is refused). Rows replace items of the same path. Returns the
    collection and how many rows went in."""
    npy = Path(npy)
    manifest = manifests.read(npy, required=True)
    source = manifests.sidecar(npy)
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
    told = manifest.get("dim")
    if isinstance(told, int) and told != vectors.shape[1]:
        raise InputError(npy, f"{vectors.shape[1]}-d vectors; its manifest says {told}-d")
    bad = _bad_rows(npy, vectors)
    if bad:
        named = "; ".join(f"row {row}: {why}" for row, why in bad[:_NAMED])
        more = f" and {len(bad) - _NAMED} more" if len(bad) > _NAMED else ""
        raise InputError(npy, f"{named}{more}; nothing imported")
    with store.transaction():
        if collection is None:
            collection = store.create_collection(
                name, manifest["model"], _description(manifest), dtype, json.dumps(_made_with(manifest)),
            )
        for start, stop in spans(len(rows), _BATCH):
            block = np.asarray(vectors[start:stop], dtype=np.float32)
            store.put_items(collection, [
                Item(path_from_text(row["input"]), row["modality"], 0, 0, str(row.get("sha256") or ""), vector,
                     *_window(row))
                for row, vector in zip(rows[start:stop], block)
            ])
    from bindcli.collections.nearest import update_index_files

    update_index_files(store, collection)
    return collection, len(rows)


def export_pair(store: Store, collection: CollectionRecord, npy: str | Path) -> int:
    """Write the collection's live vectors (float32, unit length, in insertion order) to
    `npy` and its manifest beside it, each atomically; returns the rows written. `npy`
    must end in `.npy`: what is written is NumPy's format, whatever the name."""
    npy = Path(npy)
    if npy.suffix.lower() != ".npy":
        raise UsageError(f"{npy}: export writes a NumPy array; name it FILE.npy")
    rows: list[dict] = []
    with store.snapshot():
        count, dims = store.live_shape(collection)
        if not count:
            raise StoreError(f"collection {collection.name!r} has no items to export")
        with atomic.atomic_path(npy) as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f4", shape=(count, dims))
            for chunk in store.live_items(collection, _BATCH):
                blob = b"".join(item.blob for item in chunk)
                array[len(rows) : len(rows) + len(chunk)] = np.frombuffer(
                    blob, DTYPES[collection.dtype]
                ).reshape(len(chunk), dims)
                rows.extend(
                    {**manifests.row(item.path, item.kind, item.sha256), **_times(item)} for item in chunk
                )
            array.flush()
            del array
    atomic.write_file(manifests.sidecar(npy), formats.json_text(manifests.manifest(
        collection.model_id, rows, dim=dims, normalised=True,
        **_made_with(json.loads(collection.made_with)), model_description=collection.model,
        collection=collection.name,
    )))
    return count


def _times(item: StoredItem) -> dict:
    """A segment's window in an exported row (`start`, `end` in seconds); nothing for a file."""
    return {} if item.end is None else {"start": item.start, "end": item.end, "reading": item.reading}


def _window(row: dict) -> tuple[str, float | None, float | None]:
    """An imported row's (reading, start, end): a segment's when the row has its times."""
    start, end = row.get("start"), row.get("end")
    if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
        return "", None, None
    return str(row.get("reading") or "segment"), float(start), float(end)
