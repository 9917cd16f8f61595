"""Vector maths on embeddings, in numpy alone: what compare, classify, arith and search share.

No torch here, so a program that only ranks stored vectors (a search, a server answering from
its cache) never pays for importing it.

Imports: bindcli.errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bindcli.errors import BindError, QueryError

#: decimals of every score bind prints for programs (JSON, CSV); `printed` rounds to them
SCORE_DIGITS = 6


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised along the last axis, as float32 (a zero vector stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def row_problems(vectors: np.ndarray, first: int = 0) -> list[tuple[int, str]]:
    """The rows of `vectors` that have no direction to search by, with why: `not finite` (NaN
    or infinity) or `all zero`; rows counted from `first`."""
    rows = np.atleast_2d(np.asarray(vectors))
    finite = np.isfinite(rows).all(axis=-1)
    zero = finite & ~rows.any(axis=-1)
    return [(first + int(i), "all zero" if finite[i] else "not finite") for i in np.flatnonzero(~finite | zero)]


def combine(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The ImageBind paper's embedding arithmetic: normalise each, weighted sum, normalise."""
    if len(vectors) != len(weights) or not vectors:
        raise QueryError(f"{len(vectors)} vectors but {len(weights)} weights")
    total = np.sum([w * normalise(v) for v, w in zip(vectors, weights)], axis=0)
    if not np.linalg.norm(total) > 1e-6:
        raise BindError("the terms cancel out: their weighted sum is the zero vector")
    return normalise(total)


def similarity(
    rows: np.ndarray, columns: np.ndarray, *, softmax: bool = False, skip_diagonal: bool = False
) -> np.ndarray:
    """(rows, columns) dot products: cosines for unit vectors. With `softmax`, upstream
    README's per-row softmax of them (give raw outputs); with `skip_diagonal` (everything
    against itself) the softmax leaves each input's own column out, NaN there, since an input
    always matches itself best."""
    products = rows @ columns.T
    if not softmax:
        return products
    logits = products.astype(np.float64)
    if skip_diagonal:
        np.fill_diagonal(logits, -np.inf)
    probs = softmax_rows(logits)
    if skip_diagonal:
        np.fill_diagonal(probs, np.nan)
    return probs


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64; a row's -inf entries get probability 0."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def best_columns(scores: np.ndarray, skip_diagonal: bool = False) -> list[int]:
    """The best column of each row (NaN never wins; with `skip_diagonal`, nor a row's match
    with itself, as when every input is compared with every other)."""
    masked = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    if skip_diagonal:
        np.fill_diagonal(masked, -np.inf)
    return [int(i) for i in masked.argmax(axis=1)]


def top_k(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Indices of the `k` highest scores, best first (ties keep their order); all if k is
    None or 0."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return order[: k or None]


def printed(score: float) -> float:
    """A score as bind prints it for programs: rounded to SCORE_DIGITS decimals."""
    return round(float(score), SCORE_DIGITS)


def at_least(scores: np.ndarray, min_score: float) -> np.ndarray:
    """Which scores pass `--min-score`: those that print as `min_score` or more.

    A user copies a printed score into `--min-score` and expects that item kept, but the
    printed value may be rounded up from the true one; so a score just below the threshold
    passes when its printed form reaches it (the very rounding `printed` applies).
    """
    scores = np.asarray(scores)
    keep = scores >= min_score
    near = np.flatnonzero(~keep & (scores >= min_score - 10.0**-SCORE_DIGITS))
    for i in near:
        keep[i] = printed(scores[i]) >= min_score
    return keep
