"""How a collection's vectors are searched: exactly over the mapped matrix, or approximately
through an HNSW graph, chosen by `index_for`.

Exact search scores every live row of the memory-mapped matrix (`collection_index`) a chunk
at a time: a float32 collection is multiplied where it lies in the page cache; a float16 one
is widened a few MiB at a time into one small buffer (or, for one query, scored in float16 by
numkong and the close calls scored again exactly), so no float32 copy of the matrix ever
lands in the process. Several queries share one pass over the matrix.

Approximate search uses usearch's HNSW graph (the optional `bindcli[index]` extra), chosen over
faiss by side-by-side measurement (benchmarks/bench_index.py: build time, query time and
recall@10 on clustered vectors; float16 storage and a memory-mapped view of the saved graph;
wheels for Linux, macOS and Windows). The graph is saved beside the matrix as
`c<id>-<created>-g<generation>.usearch`, patched with what changed since its generation, and
used by default from `APPROXIMATE_FROM` live items; `--exact` and `--approximate` override.
Hits found through the graph are re-scored exactly, so a score never depends on the path.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from bindcli.collection_index import (
    DEAD, Matrix, index_dir, matrix_path, open_matrix, state, writer_lock,
)
from bindcli.collection_index import refresh as refresh_matrix
from bindcli.errors import OutputError, UsageError
from bindcli.output import atomic_path
from bindcli.store import Collection, Hit, Store
from bindcli.vectors import at_least, normalise

#: live items from which `auto` searches through the graph (measured: bench_index.py)
APPROXIMATE_FROM = 200_000
INSTALL_HINT = "pip install 'bindcli[index]'"
MODES = ("auto", "exact", "approximate")
#: HNSW shape: neighbours per node and candidate lists while building and searching
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 32, 128, 512
#: below this share of live items a filter makes the graph search exact over the survivors
EXACT_BELOW_SHARE = 0.05
_CHUNK_ROWS = 65536
#: twice the most a float16-rounded query moves a unit vector's score (2^-11), with room for
#: float32 accumulation: rows this close to the k-th best are scored again exactly
_FLOAT16_MARGIN = 2e-3
#: float32 bytes a float16 chunk is widened into at a time (a few MiB: stays in cache)
_WIDEN_BYTES = 4 << 20


@dataclasses.dataclass(frozen=True)
class Filters:
    """What a search keeps: kinds, folders (path prefixes), globs, a minimum score."""

    kinds: tuple[str, ...] = ()
    under: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    min_score: float | None = None

    def keep(self, matrix: Matrix) -> np.ndarray:
        return matrix.select(self.kinds, self.under, self.globs)


class VectorIndex(Protocol):
    """Nearest items of one collection by cosine similarity."""

    #: "exact" or "approximate"
    method: str

    def search(
        self, queries: np.ndarray, *, k: int = 10, filters: Filters = Filters()
    ) -> list[list[Hit]]:
        """For each query row (a 1-D query is one row), the `k` best live items that pass
        `filters`, best first."""


def _queries(queries: np.ndarray, dims: int) -> np.ndarray:
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if q.ndim != 2 or (dims and q.shape[1] != dims):
        raise UsageError(
            f"query vectors of shape {tuple(np.shape(queries))}; this collection's have {dims} dims"
        )
    return np.ascontiguousarray(normalise(q))


def _numkong():
    """numkong (SIMD float16 kernels; it comes with usearch), or None."""
    try:
        import numkong
    except ImportError:
        return None
    return numkong


def _widen(part: np.ndarray, out: np.ndarray) -> None:
    """float16 rows into float32 `out`: numkong's SIMD cast where installed, else numpy's
    (several times slower on float16)."""
    numkong = _numkong()
    if numkong is None:
        np.copyto(out, part)
    else:
        numkong.astype(part, "float32", out=out)


def _top_one_float16(
    numkong, vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """`exact_top` of one query over float16 rows, through numkong's float16 dot products
    (reading 2 bytes an element, widening nothing): the query rounded to float16 moves a score
    by at most 2^-11 (unit vectors), so every row within `_FLOAT16_MARGIN` of the running k-th
    best is kept, and those few are scored again exactly with the float32 query."""
    q16 = query.astype(np.float16)[None]
    threshold = -np.inf
    rows = np.empty(0, dtype=np.int64)
    approx = np.empty(0, dtype=np.float64)
    for start in range(0, len(vectors), _CHUNK_ROWS):
        block = vectors[start : start + _CHUNK_ROWS]
        # float64 out: numkong's float32 output path is many times slower
        scores = np.asarray(numkong.cdist(q16, block, metric="dot"))[0]
        if keep is not None:
            scores[~keep[start : start + len(block)]] = -np.inf
        near = np.flatnonzero(scores >= threshold)
        rows = np.concatenate([rows, near + start])
        approx = np.concatenate([approx, scores[near]])
        if len(approx) > k:
            threshold = np.partition(approx, -k)[-k] - _FLOAT16_MARGIN
            kept = approx >= threshold
            rows, approx = rows[kept], approx[kept]
    rows = rows[np.isfinite(approx)]
    exact = vectors[rows].astype(np.float32) @ query
    order = np.argsort(-exact, kind="stable")[:k]
    return rows[order][None], exact[order][None]


def _scores(block: np.ndarray, queries: np.ndarray, buffer: np.ndarray | None) -> np.ndarray:
    """(rows, queries) dot products of one chunk of the matrix."""
    if block.dtype == np.float32:
        return block @ queries.T
    scores = np.empty((len(block), len(queries)), dtype=np.float32)
    for start in range(0, len(block), len(buffer)):
        part = block[start : start + len(buffer)]
        wide = buffer[: len(part)]
        _widen(part, wide)
        np.matmul(wide, queries.T, out=scores[start : start + len(part)])
    return scores


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, k: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores (queries x at most k, best first) of the best rows where `keep`;
    a row that fell short (fewer than k kept) has score -inf."""
    n = len(vectors)
    numkong = _numkong() if vectors.dtype == np.float16 and len(queries) == 1 else None
    if numkong is not None:
        return _top_one_float16(numkong, vectors, queries[0], k, keep)
    rows = np.empty((len(queries), 0), dtype=np.int64)
    scores = np.empty((len(queries), 0), dtype=np.float32)
    rows_per_widen = max(1, _WIDEN_BYTES // (4 * max(vectors.shape[1], 1)))
    buffer = None if vectors.dtype == np.float32 else np.empty(
        (min(rows_per_widen, n), vectors.shape[1]), dtype=np.float32
    )
    for start in range(0, n, _CHUNK_ROWS):
        chunk = _scores(vectors[start : start + _CHUNK_ROWS], queries, buffer)
        if keep is not None:
            chunk[~keep[start : start + len(chunk)]] = -np.inf
        kk = min(k, len(chunk))
        part = np.argpartition(-chunk, kk - 1, axis=0)[:kk]
        rows = np.concatenate([rows, (part + start).T], axis=1)
        scores = np.concatenate([scores, np.take_along_axis(chunk, part, axis=0).T], axis=1)
        if rows.shape[1] > k:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            rows, scores = np.take_along_axis(rows, top, 1), np.take_along_axis(scores, top, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)


def _hits(matrix: Matrix, rows: np.ndarray, scores: np.ndarray, min_score: float | None) -> list[Hit]:
    passed = np.isfinite(scores)
    if min_score is not None:
        passed &= at_least(scores, min_score)
    return [
        Hit(matrix.path(int(r)), matrix.kind(int(r)), float(s))
        for r, s in zip(rows[passed], scores[passed])
    ]


class ExactIndex:
    """Every live row of the mapped matrix scored against the queries."""

    method = "exact"

    def __init__(self, matrix: Matrix) -> None:
        self.matrix = matrix

    def search(
        self, queries: np.ndarray, *, k: int = 10, filters: Filters = Filters()
    ) -> list[list[Hit]]:
        q = _queries(queries, self.matrix.dims)
        if not self.matrix.rows:
            return [[] for _ in q]
        rows, scores = exact_top(self.matrix.vectors, q, k, filters.keep(self.matrix))
        return [_hits(self.matrix, r, s, filters.min_score) for r, s in zip(rows, scores)]


class ApproximateIndex:
    """Candidates from the HNSW graph, filtered, re-scored exactly from the matrix."""

    method = "approximate"

    def __init__(self, matrix: Matrix, graph: object) -> None:
        self.matrix, self.graph = matrix, graph

    def search(
        self, queries: np.ndarray, *, k: int = 10, filters: Filters = Filters()
    ) -> list[list[Hit]]:
        q = _queries(queries, self.matrix.dims)
        keep = filters.keep(self.matrix)
        kept = int(np.count_nonzero(keep))
        if not kept:
            return [[] for _ in q]
        share = kept / max(self.matrix.live, 1)
        if share < EXACT_BELOW_SHARE:
            return ExactIndex(self.matrix).search(q, k=k, filters=filters)
        want = min(len(self.graph), int(np.ceil(k / share)) + k)
        matches = self.graph.search(q, want)
        keys = np.atleast_2d(matches.keys)
        counts = np.atleast_1d(getattr(matches, "counts", keys.shape[1]))  # one query: Matches
        results = []
        for i, query in enumerate(q):
            rows = self.matrix.rows_of(keys[i, : counts[i]])
            rows = rows[rows >= 0]
            rows = rows[keep[rows]]
            if len(rows) < min(k, kept):  # the filter left too few: the exact answer
                top_rows, top_scores = exact_top(self.matrix.vectors, query[None], k, keep)
                results.append(_hits(self.matrix, top_rows[0], top_scores[0], filters.min_score))
                continue
            scores = self.matrix.vectors[rows].astype(np.float32) @ query
            order = np.argsort(-scores, kind="stable")[:k]
            results.append(_hits(self.matrix, rows[order], scores[order], filters.min_score))
        return results


# --- the graph file -------------------------------------------------------------------------


def _usearch():
    """usearch's Index class, or None when the `index` extra is not installed."""
    try:
        from usearch.index import Index
    except ImportError:
        return None
    return Index


def require_library():
    """usearch's Index class, or the error that names the install."""
    index_class = _usearch()
    if index_class is None:
        raise UsageError(f"approximate search needs the vector index library: {INSTALL_HINT}")
    return index_class


def _graph_prefix(collection: Collection) -> str:
    return f"c{collection.id}-{int(collection.created_at * 1e6)}-g"


def _graph_files(store: Store, collection: Collection) -> list[tuple[int, Path]]:
    """The collection's saved graphs, newest generation first."""
    prefix = _graph_prefix(collection)
    found = []
    for path in index_dir(store).glob(f"{prefix}*.usearch"):
        digits = path.name[len(prefix) : -len(".usearch")]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found, reverse=True)


def _fill(graph: object, matrix: Matrix, rows: np.ndarray) -> None:
    for start in range(0, len(rows), _CHUNK_ROWS):
        part = rows[start : start + _CHUNK_ROWS]
        graph.add(matrix.ids[part], matrix.vectors[part], threads=os.cpu_count() or 1)


def refresh_graph(store: Store, collection: Collection, matrix: Matrix) -> object:
    """The graph at `matrix`'s generation, opened as a read-only view of its file: as saved,
    patched from an older one (changed items replaced by their rows in `matrix`), or built."""
    index_class = require_library()
    with writer_lock(index_dir(store) / f"c{collection.id}.graph.lock"):
        saved = _graph_files(store, collection)
        target = index_dir(store) / f"{_graph_prefix(collection)}{matrix.generation}.usearch"
        if not saved or saved[0][0] != matrix.generation:
            graph = index_class(
                ndim=matrix.dims, metric="ip", dtype="f16" if matrix.vectors.dtype == np.float16 else "f32",
                connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                expansion_search=EXPANSION_SEARCH,
            )
            if saved and saved[0][0] < matrix.generation:
                graph.load(str(saved[0][1]))
                changed = np.array([row[0] for row in store.db.execute(
                    "SELECT id FROM items WHERE collection_id=? AND generation>?",
                    (collection.id, saved[0][0]),
                )], dtype=np.int64)
                present = changed[np.asarray(graph.contains(changed), dtype=bool)] if len(changed) else changed
                if len(present):
                    graph.remove(present)
                rows = matrix.rows_of(changed)
                rows = rows[rows >= 0]
                _fill(graph, matrix, rows[matrix.kinds[rows] != DEAD])
            else:
                _fill(graph, matrix, np.flatnonzero(matrix.kinds != DEAD))
            with atomic_path(target) as tmp:
                graph.save(str(tmp))
            for _, old in saved:
                old.unlink(missing_ok=True)
        graph = index_class.restore(str(target), view=True)
    graph.expansion_search = EXPANSION_SEARCH
    return graph


def _fresh_graph(store: Store, collection: Collection, matrix: Matrix) -> bool:
    saved = _graph_files(store, collection)
    return bool(saved) and saved[0][0] == matrix.generation


# --- choosing ---------------------------------------------------------------------------------


def index_for(store: Store, collection: Collection, mode: str = "auto") -> VectorIndex:
    """The index to search `collection` with: `exact`, `approximate` (built or patched now
    if need be), or `auto`: the graph from APPROXIMATE_FROM live items when the library is
    installed and a graph was built (`bind index` builds it), else exact."""
    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "approximate":
        require_library()
    matrix = open_matrix(store, collection)
    if mode == "auto":
        wanted = matrix.live >= APPROXIMATE_FROM and _usearch() is not None
        mode = "approximate" if wanted and _graph_files(store, collection) else "exact"
    if mode == "exact" or not matrix.rows:
        return ExactIndex(matrix)
    return ApproximateIndex(matrix, refresh_graph(store, collection, matrix))


def refresh(store: Store, collection: Collection) -> None:
    """Bring the collection's index files up to date with SQLite (what `bind index` calls when
    it is done): the matrix always; the graph when the collection is big enough for `auto` to
    use it and the library is installed, or when one exists already. A folder that cannot be
    written is no error: the files are derived, and searches then read SQLite instead."""
    try:
        matrix = refresh_matrix(store, collection)
    except (OSError, OutputError):
        return
    if _usearch() is None:
        return
    if matrix.live >= APPROXIMATE_FROM or _graph_files(store, collection):
        if matrix.rows:
            refresh_graph(store, collection, matrix)


def describe(store: Store, collection: Collection) -> dict:
    """How `auto` searches the collection now and the state of its index files (writes
    nothing), for `bind collections info`."""
    path = matrix_path(store, collection)
    live = sum(store.counts(collection).values())
    graphs = _graph_files(store, collection)
    if live < APPROXIMATE_FROM:
        method = f"exact (approximate from {APPROXIMATE_FROM} items, or --approximate)"
    elif _usearch() is None:
        method = f"exact (approximate needs {INSTALL_HINT})"
    elif not graphs:
        method = "exact (no graph yet: `bind index` or `bind search --approximate` builds it)"
    else:
        method = "approximate (usearch HNSW; --exact for the exact answer)"
    return {
        "search": method,
        "index": state(store, collection),
        "index_file": str(path),
        "index_bytes": path.stat().st_size if path.exists() else 0,
        "graph_file": str(graphs[0][1]) if graphs else None,
        "graph_bytes": graphs[0][1].stat().st_size if graphs else 0,
    }
