"""How a collection's vectors are searched: the seam between `bind search` and the storage.

The SQLite file is the source of truth for paths and vectors; a `VectorIndex` answers "the k
nearest items". Today's is `ExactScan`, which reads the vectors from the file a chunk at a
time; a memory-mapped matrix or an approximate (HNSW/IVF) index is another implementation of
the same method, chosen by `index_for`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from bindcli.store import Collection, Hit, Store


class VectorIndex(Protocol):
    """Nearest items of one collection by cosine similarity."""

    def search(
        self,
        query: np.ndarray,
        *,
        k: int = 10,
        kinds: Iterable[str] | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """The `k` best live items, best first; only `kinds` if given; none that print below
        `min_score` (`vectors.at_least`)."""


class ExactScan:
    """Every live vector of the collection scored against the query (exact; memory bounded
    by one chunk of rows)."""

    def __init__(self, store: Store, collection: Collection) -> None:
        self.store = store
        self.collection = collection

    def search(
        self,
        query: np.ndarray,
        *,
        k: int = 10,
        kinds: Iterable[str] | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        return self.store.search(self.collection, query, k=k, kinds=kinds, min_score=min_score)


def index_for(store: Store, collection: Collection) -> VectorIndex:
    """The index to search `collection` with."""
    return ExactScan(store, collection)
