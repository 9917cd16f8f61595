"""A collection's inverted lists (IVF): its vectors grouped by the nearest of a few thousand
k-means centres, so that a query scores the centres, then only the lists of the nearest few:
a percent or two of the collection instead of all of it.

Chosen over HNSW graphs (usearch's, then faiss's) and over faiss's own IVF index by
side-by-side measurement on clustered vectors (benchmarks/bench_index.py, figures in
benchmarks/README.md): at a million 1024-d float16 items the lists answer about 60x faster
than exact search at recall@10 0.99-1.00, where the best graph setting gave 15x at 0.965; they
are built in under 3 minutes where the graph took 38; and, being plain arrays in one file,
they open as a memory map with nothing to import or rebuild, so the first query of a fresh
process costs about 1.6 times a warm one.

`<db>.vectors/c<id>.lists` is a 4096-byte header (`MAGIC`, then JSON: which collection, the
generation it holds, dims, dtype, how many lists, rows, how many live items the collection
had when the centres were trained, where each section starts, the file's size), the centres
(lists x dims float32, unit length), `offsets` (lists + 1: where each list starts), then list
by list each entry's item id and vector (a copy of its row of the matrix, in the
collection's dtype, so that a list is one contiguous read). It is patched, written and
replaced like the matrix file (`_matrix`): changed items leave their lists and join
the list of their nearest centre; the centres are trained again when the collection has
grown (or shrunk) so much that another number of lists fits it better.

Training the centres needs faiss's k-means (the optional `bindcli[index]` extra); patching
and searching need only numpy (numkong, in the same extra, makes float16 scoring faster).
"""

from __future__ import annotations

import math
import mmap
import os
from pathlib import Path

import numpy as np

from bindcli._util import extras
from bindcli._util.atomic import atomic_path
from bindcli._util.chunks import batched, spans
from bindcli.collections._matrix import (
    DEAD,
    HEADER_BYTES,
    Matrix,
    aligned,
    belongs,
    header_bytes,
    index_dir,
    map_file,
    remove_leftovers,
    writer_lock,
)
from bindcli.collections.store import DTYPES, CollectionRecord, Store
from bindcli.errors import UsageError

MAGIC = b"BINDIVF1"
FORMAT = 1
#: how many lists a collection of n items gets: about 4 sqrt(n) (4096 at a million items)
LISTS_PER_SQRT_ITEM = 4
#: share of the lists a query reads (at least `MIN_PROBES`): 32 of 4096 at a million items
PROBE_SHARE = 1 / 128
MIN_PROBES = 16
#: the fewest items a centre may have: faiss's k-means warns below it
MIN_PER_LIST = 39
#: k-means sample per centre, and iterations
TRAIN_PER_LIST, TRAIN_ITERATIONS = 64, 10
_CHUNK_ROWS = 65536
#: float32 bytes of centre scores assigning a chunk of items to lists
_SCORES_BYTES = 64 << 20


def _target(items: int) -> float:
    """About 4 sqrt(n) lists, with enough points per centre for k-means to place them."""
    return max(1.0, min(LISTS_PER_SQRT_ITEM * math.sqrt(max(items, 0)), items / MIN_PER_LIST))


def lists_for(items: int) -> int:
    """How many lists a collection of `items` items is built with: the power of two nearest
    the target, with at least MIN_PER_LIST items a list."""
    return int(max(1, min(2 ** round(math.log2(_target(items))), items // MIN_PER_LIST)))


def fits(lists: Lists, matrix: Matrix) -> bool:
    """Whether `lists`' centres still suit the collection `matrix` holds: the same dims, and a
    target number of lists within a factor of two of theirs (measured unrounded, so a size
    hovering at a power-of-two step does not train again and again)."""
    target = _target(matrix.live)
    return lists.header["dims"] == matrix.dims and lists.count / 2 < target < lists.count * 2


def probes_for(lists: int) -> int:
    """How many lists a query reads."""
    return min(lists, max(MIN_PROBES, int(lists * PROBE_SHARE)))


class Lists:
    """One opened lists file: the mapped centres, offsets, ids and vectors."""

    def __init__(self, header: dict, buffer: mmap.mmap) -> None:
        self.header = header
        self._buffer = buffer  # keeps the mapping alive as long as the arrays
        count, rows, dims = header["lists"], header["rows"], header["dims"]
        section = header["sections"]
        self.centres = np.frombuffer(buffer, "<f4", count * dims, section["centres"]).reshape(count, dims)
        self.offsets = np.frombuffer(buffer, "<i8", count + 1, section["offsets"])
        self.ids = np.frombuffer(buffer, "<i8", rows, section["ids"])
        self.vectors = np.frombuffer(
            buffer, DTYPES[header["dtype"]], rows * dims, section["vectors"]
        ).reshape(rows, dims)

    @property
    def generation(self) -> int:
        return self.header["generation"]

    @property
    def count(self) -> int:
        return self.header["lists"]

    def spans(self, lists: np.ndarray) -> list[tuple[int, int]]:
        """The (start, end) entry ranges of the non-empty ones of `lists`, in file order."""
        lists = np.sort(lists)
        starts, ends = self.offsets[lists].tolist(), self.offsets[lists + 1].tolist()
        return [(a, b) for a, b in zip(starts, ends) if b > a]


def lists_path(store: Store, collection: CollectionRecord) -> Path:
    return index_dir(store) / f"c{collection.id}.lists"


def open_lists_file(path: Path) -> Lists | None:
    """The lists file at `path`, mapped read-only; None if it is missing or torn."""
    found = map_file(path, MAGIC, FORMAT)
    return None if found is None else Lists(*found)


def saved(store: Store, collection: CollectionRecord) -> Lists | None:
    """The collection's lists file as it is (of any generation), or None."""
    found = open_lists_file(lists_path(store, collection))
    return found if found is not None and belongs(found.header, collection) else None


def _faiss():
    """faiss, or None when the `index` extra is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def available() -> bool:
    """Whether lists can be trained here (faiss is installed)."""
    return _faiss() is not None


def require_library():
    faiss = _faiss()
    if faiss is None:
        raise UsageError(extras.INDEX.hint())
    return faiss


def update_lists(store: Store, collection: CollectionRecord, matrix: Matrix) -> Lists:
    """The lists at `matrix`'s generation (or newer ones: they are never written back to an
    older matrix's), opened read-only: as saved, patched from older ones (items changed since
    leave their lists and join their nearest centre's; numpy only), or trained afresh (faiss)
    when there are none or the collection's size calls for another number of lists. Raises
    OSError or OutputError where the folder cannot be written."""
    path = lists_path(store, collection)
    with writer_lock(path.with_suffix(".lists-lock")):
        remove_leftovers(path)
        old = saved(store, collection)
        if old is None or old.generation < matrix.generation:
            with atomic_path(path) as tmp:
                if old is not None and fits(old, matrix):
                    _patch(store, collection, old, matrix, tmp)
                else:
                    _build(collection, matrix, np.flatnonzero(matrix.kinds != DEAD), tmp)
        fresh = open_lists_file(path)
    assert fresh is not None, f"{path} vanished after it was written"
    return fresh


def _train(matrix: Matrix, live: np.ndarray, count: int) -> np.ndarray:
    """`count` unit-length k-means centres of a sample of the live rows (spherical k-means,
    since scores are cosines), seeded so a rebuild gives the same lists."""
    faiss = require_library()
    rng = np.random.default_rng(0)
    take = min(len(live), count * TRAIN_PER_LIST)
    sample = np.sort(rng.choice(live, take, replace=False)) if take < len(live) else live
    points = np.empty((len(sample), matrix.dims), dtype=np.float32)  # widened a chunk at a time
    for start, stop in spans(len(sample), _CHUNK_ROWS):
        points[start:stop] = matrix.vectors[sample[start:stop]]
    kmeans = faiss.Kmeans(
        matrix.dims, count, niter=TRAIN_ITERATIONS, spherical=True, seed=1234, verbose=False,
        max_points_per_centroid=TRAIN_PER_LIST,
    )
    kmeans.train(points)
    centres = np.asarray(kmeans.centroids, dtype=np.float32).reshape(count, matrix.dims)
    return centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)


def nearest_list(centres: np.ndarray, vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The list (nearest centre) of each of `rows` of `vectors`, in chunks whose scores take
    about `_SCORES_BYTES`."""
    out = np.empty(len(rows), dtype=np.int64)
    step = max(1, _SCORES_BYTES // (4 * len(centres)))
    for start, stop in spans(len(rows), step):
        block = np.asarray(vectors[rows[start:stop]], dtype=np.float32)
        out[start:stop] = np.argmax(block @ centres.T, axis=1)
    return out


def _build(collection: CollectionRecord, matrix: Matrix, live: np.ndarray, tmp: Path) -> None:
    count = lists_for(len(live))
    centres = _train(matrix, live, count)
    lists = nearest_list(centres, matrix.vectors, live)
    _write(tmp, collection, matrix, centres, len(live), lists, matrix.ids[live],
           [(matrix.vectors, live)])


def _patch(store: Store, collection: CollectionRecord, old: Lists, matrix: Matrix, tmp: Path) -> None:
    """`old`'s entries but those of items changed since its generation, plus those items as
    `matrix` holds them (live ones), each in its nearest centre's list."""
    changed = np.array(store.changed_ids(collection, old.generation), dtype=np.int64)
    kept = np.flatnonzero(~np.isin(old.ids, changed))
    old_lists = np.repeat(np.arange(old.count), np.diff(old.offsets))[kept]
    rows = matrix.rows_of(changed)
    rows = np.sort(rows[rows >= 0])
    rows = rows[matrix.kinds[rows] != DEAD]
    new_lists = nearest_list(np.asarray(old.centres), matrix.vectors, rows)
    _write(
        tmp, collection, matrix, np.asarray(old.centres), old.header["trained_on"],
        np.concatenate([old_lists, new_lists]),
        np.concatenate([old.ids[kept], matrix.ids[rows]]),
        [(old.vectors, kept), (matrix.vectors, rows)],
    )


def _write(
    tmp: Path, collection: CollectionRecord, matrix: Matrix, centres: np.ndarray, trained_on: int,
    lists: np.ndarray, ids: np.ndarray, sources: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    """The file: entries (`ids`, and their vectors: the rows of each source in turn) sorted
    by list."""
    order = np.argsort(lists, kind="stable")
    offsets = np.searchsorted(lists[order], np.arange(len(centres) + 1)).astype("<i8")
    source = np.concatenate([np.full(len(r), i, dtype=np.int8) for i, (_, r) in enumerate(sources)])
    where = np.concatenate([r for _, r in sources])
    dtype = DTYPES[collection.dtype]
    sections = {}
    with open(tmp, "wb") as f:
        f.write(b"\0" * HEADER_BYTES)
        offset = HEADER_BYTES
        for name, data in (
            ("centres", centres.astype("<f4").tobytes()),
            ("offsets", offsets.tobytes()),
            ("ids", ids[order].astype("<i8").tobytes()),
        ):
            start = aligned(offset)
            f.write(b"\0" * (start - offset) + data)
            sections[name], offset = start, start + len(data)
        sections["vectors"] = aligned(offset)
        f.write(b"\0" * (sections["vectors"] - offset))
        for part in batched(order, _CHUNK_ROWS):
            block = np.empty((len(part), matrix.dims), dtype=dtype)
            for i, (vectors, _) in enumerate(sources):
                mine = source[part] == i
                block[mine] = vectors[where[part[mine]]]
            f.write(block.tobytes())
        header = {
            "format": FORMAT,
            "collection": [collection.id, collection.created_at, collection.dtype],
            "generation": matrix.generation,
            "dtype": collection.dtype,
            "dims": matrix.dims,
            "lists": len(centres),
            "rows": len(order),
            "trained_on": trained_on,
            "sections": sections,
            "bytes": f.tell(),
        }
        f.seek(0)
        f.write(header_bytes(header, MAGIC))
        f.flush()
        os.fsync(f.fileno())
