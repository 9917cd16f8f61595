"""How a collection's vectors are searched: exactly over the mapped matrix, or approximately
through inverted lists, chosen by `index_for`.

Exact search scores every live row of the memory-mapped matrix (`_matrix`) a chunk
at a time: a float32 collection is multiplied where it lies in the page cache; a float16 one
is widened a few MiB at a time into one small buffer (or, for one query, scored in float16 by
numkong and the close calls scored again exactly), so no float32 copy of the matrix ever
lands in the process. Several queries share one pass over the matrix, up to a block of them
whose scores of one chunk fit `_SCORE_BYTES`: more queries make more passes, never more memory.

Approximate search reads the collection's inverted lists (`_ivf`): the query is
scored against a few thousand k-means centres, then against the entries of the nearest lists
only, the same way (numkong float16 scores, close calls re-scored exactly), so a score does
not depend on the path (to float32 rounding). They are used by default from
`APPROXIMATE_FROM` live items once `bind index` has built them (training the centres needs
the optional `bindcli[index]` extra); `--exact` and `--approximate` override.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from bindcli._util import extras
from bindcli._util.chunks import spans
from bindcli.collections import _ivf
from bindcli.collections._ivf import Lists, probes_for
from bindcli.collections._matrix import Matrix, matrix_path, open_matrix, state, update_matrix
from bindcli.collections.store import CollectionRecord, Hit, Store
from bindcli.errors import OutputError, UsageError
from bindcli.vectors import at_least, normalise, row_problems

try:  # numkong's SIMD float16 kernels (the `index` extra): loaded with this module, which only
    # searching processes import, so that their first search does not wait for it
    import numkong as _simd
except ImportError:  # float16 is widened by numpy instead, several times slower
    _simd = None

#: live items from which `auto` searches through the lists (measured: bench_index.py)
APPROXIMATE_FROM = 200_000
MODES = ("auto", "exact", "approximate")
#: below this share of live items a filter makes an approximate search exact over the survivors
EXACT_BELOW_SHARE = 0.05
_CHUNK_ROWS = 65536
#: float32 scores of one chunk for one block of queries (a block's working memory is a few times
#: this): the queries searched in one pass over the matrix are as many as fit
_SCORE_BYTES = 32 << 20
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
    bad = row_problems(q)
    if bad:
        raise UsageError("; ".join(f"query row {row}: {why}" for row, why in bad[:5]))
    return np.ascontiguousarray(normalise(q))


def _widen(part: np.ndarray, out: np.ndarray) -> None:
    """float16 rows into float32 `out`: numkong's SIMD cast where installed, else numpy's
    (several times slower on float16)."""
    if _simd is None:
        np.copyto(out, part)
    else:
        _simd.astype(part, "float32", out=out)


def _top_one_float16(
    vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None,
    spans: list[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` rows of float16 `vectors` within `spans` ((start, end) row ranges; `keep`
    runs along them in order) for one query, through numkong's float16 dot products (reading
    2 bytes an element, widening nothing): the query rounded to float16 moves a score by at
    most 2^-11 (unit vectors), so every row within `_FLOAT16_MARGIN` of the running k-th best
    is kept, and those few are scored again exactly with the float32 query."""
    q16 = query.astype(np.float16)[None]
    threshold = -np.inf
    rows = np.empty(0, dtype=np.int64)
    approx = np.empty(0, dtype=np.float64)
    along = 0
    for start, end in spans:
        # float64 out: numkong's float32 output path is many times slower
        scores = np.asarray(_simd.cdist(q16, vectors[start:end], metric="dot"))[0]
        if keep is not None:
            scores[~keep[along : along + len(scores)]] = -np.inf
        along += len(scores)
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


def span_top(
    vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None,
    spans: list[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """`exact_top` of one query over the rows in `spans` only (`keep`, if any, runs along them)."""
    if _simd is not None and vectors.dtype == np.float16:
        return _top_one_float16(vectors, query, k, keep, spans)
    rows = np.concatenate([np.arange(a, b) for a, b in spans])
    buffer = _buffer(vectors, max(b - a for a, b in spans))  # one, for every span
    scores = np.concatenate([_scores(vectors[a:b], query[None], buffer)[:, 0] for a, b in spans])
    if keep is not None:
        scores[~keep] = -np.inf
    rows, scores = rows[np.isfinite(scores)], scores[np.isfinite(scores)]
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order][None], scores[order][None]


def _buffer(vectors: np.ndarray, rows: int) -> np.ndarray | None:
    """Where float16 rows are widened a few MiB at a time (None for float32 ones)."""
    if vectors.dtype == np.float32:
        return None
    rows_per_widen = max(1, _WIDEN_BYTES // (4 * max(vectors.shape[1], 1)))
    return np.empty((max(1, min(rows_per_widen, rows)), vectors.shape[1]), dtype=np.float32)


def _scores(block: np.ndarray, queries: np.ndarray, buffer: np.ndarray | None) -> np.ndarray:
    """(rows, queries) dot products of one chunk of the matrix."""
    if block.dtype == np.float32:
        return block @ queries.T
    scores = np.empty((len(block), len(queries)), dtype=np.float32)
    for start, stop in spans(len(block), len(buffer)):
        wide = buffer[: stop - start]
        _widen(block[start:stop], wide)
        np.matmul(wide, queries.T, out=scores[start:stop])
    return scores


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, k: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores (queries x at most k, best first) of the best rows where `keep`;
    a row that fell short (fewer than k kept) has score -inf. Queries go in blocks (one pass
    over the matrix each), so the working memory does not grow with their number."""
    n = len(vectors)
    if _simd is not None and vectors.dtype == np.float16 and len(queries) == 1:
        return _top_one_float16(vectors, queries[0], k, keep, list(spans(n, _CHUNK_ROWS)))
    block = max(1, _SCORE_BYTES // (4 * max(1, min(n, _CHUNK_ROWS))))
    if len(queries) <= block:
        return _block_top(vectors, queries, k, keep)
    found = [_block_top(vectors, queries[a:b], k, keep) for a, b in spans(len(queries), block)]
    return np.concatenate([r for r, _ in found]), np.concatenate([s for _, s in found])


def _block_top(
    vectors: np.ndarray, queries: np.ndarray, k: int, keep: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """`exact_top` of one block of queries, in one pass over the matrix a chunk at a time."""
    n = len(vectors)
    rows = np.empty((len(queries), 0), dtype=np.int64)
    scores = np.empty((len(queries), 0), dtype=np.float32)
    buffer = _buffer(vectors, n)
    for start, stop in spans(n, _CHUNK_ROWS):
        chunk = _scores(vectors[start:stop], queries, buffer)
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
        Hit(matrix.path(int(r)), matrix.kind(int(r)), float(s), id=int(matrix.ids[int(r)]))
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
    """The entries of the lists nearest each query, filtered, the best re-scored exactly."""

    method = "approximate"

    def __init__(self, matrix: Matrix, lists: Lists) -> None:
        self.matrix, self.lists = matrix, lists
        self.probes = probes_for(lists.count)

    def search(
        self, queries: np.ndarray, *, k: int = 10, filters: Filters = Filters()
    ) -> list[list[Hit]]:
        q = _queries(queries, self.matrix.dims)
        filtered = bool(filters.kinds or filters.under or filters.globs)
        keep = filters.keep(self.matrix) if filtered else None
        kept = int(np.count_nonzero(keep)) if filtered else self.matrix.live
        if not kept or k <= 0:
            return [[] for _ in q]
        share = kept / max(self.matrix.live, 1)
        if share < EXACT_BELOW_SHARE:
            return ExactIndex(self.matrix).search(q, k=k, filters=filters)
        # a filter keeping a share of the items reads that many times more lists
        probes = min(self.lists.count, math.ceil(self.probes / share))
        near = np.argpartition(-(q @ self.lists.centres.T), probes - 1, axis=1)[:, :probes]
        results = [self._one(query, lists, k, keep, kept, filters.min_score) for query, lists in zip(q, near)]
        short = [i for i, hits in enumerate(results) if hits is None]
        if short:  # too few candidates in their lists: the exact answer, in one pass for all
            rows, scores = exact_top(self.matrix.vectors, q[short], k, keep)
            for i, r, s in zip(short, rows, scores):
                results[i] = _hits(self.matrix, r, s, filters.min_score)
        return results

    def _one(
        self, query: np.ndarray, lists: np.ndarray, k: int, keep: np.ndarray | None, kept: int,
        min_score: float | None,
    ) -> list[Hit] | None:
        """The best of the entries of `lists`, or None when they hold fewer than `k` (that
        pass). Every entry is a live row of the matrix (the lists are at its generation), so
        only a filter needs each entry's row looked up."""
        spans = self.lists.spans(lists)
        passed = None
        if keep is None:
            candidates = sum(b - a for a, b in spans)
        else:
            entries = np.concatenate([np.arange(a, b) for a, b in spans] or [np.empty(0, np.int64)])
            rows = self.matrix.rows_of(self.lists.ids[entries])
            passed = keep[rows] & (rows >= 0)
            candidates = int(np.count_nonzero(passed))
        if candidates < min(k, kept):
            return None
        found, scores = span_top(self.lists.vectors, query, k, passed, spans)
        return _hits(self.matrix, self.matrix.rows_of(self.lists.ids[found[0]]), scores[0], min_score)


# --- choosing ---------------------------------------------------------------------------------


def index_for(store: Store, collection: CollectionRecord, mode: str = "auto") -> VectorIndex:
    """The index to search `collection` with: `exact`, `approximate` (the inverted lists,
    patched or trained now if need be), or `auto`: the lists from APPROXIMATE_FROM live items
    when `bind index` has built them, patched now if they are behind (numpy's work, seconds at
    most), never trained here (that is `bind index`'s minutes); else exact. Where the lists
    cannot be written, `auto` searches exactly and `approximate` names the folder."""
    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    matrix = open_matrix(store, collection)
    lists = _ivf.saved(store, collection)
    if lists is not None and lists.generation > matrix.generation:  # written since: catch up
        matrix = open_matrix(store, collection)
    asked = mode
    if mode == "auto":
        wanted = matrix.live >= APPROXIMATE_FROM and lists is not None and _ivf.fits(lists, matrix)
        mode = "approximate" if wanted else "exact"
    if mode == "exact" or not matrix.live:
        return ExactIndex(matrix)
    if lists is None or lists.generation != matrix.generation:
        try:
            lists = _ivf.update_lists(store, collection, matrix)
        except (OSError, OutputError) as exc:
            if asked == "auto":
                return ExactIndex(matrix)
            if isinstance(exc, OutputError):
                raise
            path = _ivf.lists_path(store, collection)
            raise OutputError(path, f"cannot write the inverted lists ({exc.strerror or exc})") from None
    if lists.generation != matrix.generation:  # still apart (a writer in between): exact
        return ExactIndex(matrix)
    return ApproximateIndex(matrix, lists)


def update_index_files(store: Store, collection: CollectionRecord) -> None:
    """Bring the collection's index files up to date with SQLite (what `bind index` calls when
    it is done): the matrix always; the lists when there are some (patching needs numpy only),
    or when the collection is big enough for `auto` to use them and faiss is installed to
    train them. A folder that cannot be written is no error: the files are derived, and
    searches then read SQLite or search exactly instead."""
    try:
        matrix = update_matrix(store, collection)
        if not matrix.live:
            return
        lists = _ivf.saved(store, collection)
        trainable = _ivf.available() and matrix.live >= APPROXIMATE_FROM
        if (lists is not None and _ivf.fits(lists, matrix)) or trainable:
            _ivf.update_lists(store, collection, matrix)
    except (OSError, OutputError):
        return


def describe(store: Store, collection: CollectionRecord) -> dict:
    """How `auto` searches the collection now and the state of its index files (writes
    nothing), for `bind collections info`."""
    path = matrix_path(store, collection)
    live = sum(store.counts(collection).values())
    lists = _ivf.saved(store, collection)
    if live < APPROXIMATE_FROM:
        method = f"exact (approximate from {APPROXIMATE_FROM} items, or --approximate)"
    elif lists is None and not _ivf.available():
        method = f"exact (approximate needs {extras.INDEX.install})"
    elif lists is None:
        method = "exact (no inverted lists yet: `bind index` or `bind search --approximate` builds them)"
    else:
        method = (f"approximate (inverted lists: {lists.count} lists, {probes_for(lists.count)} read "
                  "a query; --exact for the exact answer)")
    lists_file = _ivf.lists_path(store, collection)
    return {
        "search": method,
        "index": state(store, collection),
        "index_file": str(path),
        "index_bytes": path.stat().st_size if path.exists() else 0,
        "lists_file": str(lists_file) if lists is not None else None,
        "lists_bytes": lists_file.stat().st_size if lists is not None else 0,
        "lists_generation": lists.generation if lists is not None else None,
    }
