"""`bindcli.Collection`: the library's one object for a collection, so a script does what
`bind index`, `bind search` and `bind collections` do without assembling the store, the walk,
the ingest and the search itself (the commands call it too).

    with bindcli.open_embedder() as embedder, \\
            bindcli.Collection.open("bind.sqlite3", "photos", embedder) as photos:
        photos.update(["~/photos"])               # only new and changed files are embedded
        for hit in photos.search("a dog on a beach", k=5):
            print(f"{hit.score:.3f} {hit.path}")

Progress comes through callbacks; errors are the typed ones of `bindcli.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from bindcli.collections import exchange
from bindcli.collections.nearest import Filters, describe, index_for
from bindcli.collections.store import CollectionRecord, Compaction, Hit, Store
from bindcli.collections.timed import GROUPINGS, grouped_search, with_times
from bindcli.errors import UsageError
from bindcli.modality import Kind
from bindcli.query import Query, Term, leave_out_each

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.ingest import Report
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.identity import Model
    from bindcli.media.options import MediaOptions
    from bindcli.windows import Reading, Window

#: what embeds for a collection: an embedder, or a function that builds one when first needed
EmbedderSource = Union["Embedder", Callable[[], "Embedder"]]


class Collection:
    """One collection of a collection file, pinned to the model that made its vectors.

    A context manager: it closes the collection file when `open` opened it (a `Store` passed
    in stays open, its owner's to close).
    """

    def __init__(
        self, store: Store, record: CollectionRecord, embedder: EmbedderSource | None = None,
        *, owns_store: bool = False,
    ) -> None:
        self.store = store
        self.record = record
        self._embedder = embedder
        self._owns_store = owns_store

    @classmethod
    def open(
        cls,
        db: str | Path | Store,
        name: str = "default",
        embedder: EmbedderSource | None = None,
        *,
        model: "Model | None" = None,
        options: "MediaOptions | None" = None,
        vectors: str = "float32",
        create: bool = True,
    ) -> "Collection":
        """The collection `name` of the file `db` (a path, or a `Store` the caller keeps).

        With `create`, a new collection is made for the embedder's model, its vectors stored
        as `vectors` (`float32`, or `float16` for half the file); without, one that does not
        exist is an error listing those that do. Either way a collection of another model (or
        loading options) is refused, as `bind index` refuses it. `embedder` may be a function
        that returns one, called only once something must be embedded; then `model` (and the
        loading `options`) say what it will compute.
        """
        store, owns = (db, False) if isinstance(db, Store) else (Store(db) if create else Store.existing(db), True)
        try:
            if create:
                pinned, model = _pin(embedder, model, options)
                record = store.collection(name) or store.create_collection(
                    name, pinned, model.describe(), vectors
                )
            else:
                record = store.require(name)
            found = cls(store, record, embedder, owns_store=owns)
            if embedder is not None or model is not None:
                found.check_model(model, options)  # another process may have just made it
        except BaseException:
            if owns:
                store.close()
            raise
        return found

    @classmethod
    def all(cls, store: Store) -> list["Collection"]:
        """Every collection of the file, by name."""
        return [cls(store, record) for record in store.collections()]

    @classmethod
    def import_(
        cls, store: Store, name: str, npy: str | Path, *, vectors: str = "float32"
    ) -> tuple["Collection", int]:
        """Add the vectors of a `.npy` + manifest pair (`bind embed -o FILE.npy`) to
        collection `name`, made for the manifest's model if new (`vectors`: how it stores
        them); a collection of another model is refused. Returns it and the rows added."""
        record, count = exchange.import_pair(store, name, npy, vectors)
        return cls(store, record), count

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the collection file if `open` opened it."""
        if self._owns_store:
            self.store.close()

    @property
    def name(self) -> str:
        return self.record.name

    def check_model(self, model: "Model | None" = None, options: "MediaOptions | None" = None) -> None:
        """Refuse to mix in vectors of another model or loading options (`model`, else this
        collection's embedder's): their scores against these would mean nothing."""
        pinned, model = _pin(self._embedder, model, options)
        self.record.check_model(pinned, model.config.name)

    def counts(self) -> dict[str, int]:
        """Live files per kind."""
        return self.store.counts(self.record)

    def count(self) -> int:
        """Live files."""
        return sum(self.counts().values())

    def info(self) -> dict:
        """What `bind collections info` shows: files per kind, model, vector format, sizes,
        where the files are, when it was made and last updated (Unix times), and how a
        search runs and whether the index files beside the file are up to date."""
        record, counts, stats = self.record, self.counts(), self.store.stats(self.record)
        return {
            "name": record.name,
            "files": sum(counts.values()),
            "per_modality": counts,
            "deleted": stats["deleted"],
            "model": record.model,
            "model_id": record.model_id,
            "vectors": f"{stats['dims']} x {record.dtype}" if stats["dims"] else record.dtype,
            "vector_bytes": stats["vector_bytes"],
            "file": str(self.store.path),
            "file_bytes": self.store.file_bytes(),
            "created": record.created_at,
            "updated": stats["updated_at"],
            **describe(self.store, record),
        }

    def update(
        self,
        paths_or_uris: Iterable[str | Path],
        *,
        exclude: Sequence[str] = (),
        include_hidden: bool = False,
        as_kind: Kind | None = None,
        batch_size: int = 32,
        on_found: Callable[[int], None] = lambda files: None,
        on_skip: Callable[[Path], None] = lambda path: None,
        on_progress: "Callable[[Report], None]" = lambda report: None,
        segments: "Window | str | None" = None,
        readings: "Sequence[Reading | str]" = (),
    ) -> "Report":
        """Bring the collection up to date with the files under `paths_or_uris` (URIs need
        an embedder that reads them, such as the Ray engine's): new and changed ones are
        embedded, renamed and copied ones reuse their vectors, vanished ones are marked
        deleted. Committed `batch_size` files at a time, so an interrupted run keeps its work
        and the next one goes on from there. `on_found` hears how many files the walk found,
        `on_skip` each of bind's own outputs passed over, `on_progress` the report after each
        commit. Files that failed are in the returned report. `segments` (`"5s:2.5s"` or a
        `Window`) indexes audio, video and IMU files as one item per window of time, read each
        way of `readings` (`"frames"`, `"sound"`, ...) they have."""
        from bindcli.collections.ingest import index, walk
        from bindcli.windows import Reading, Window

        window = Window.parse(segments) if isinstance(segments, str) else segments

        roots = list(paths_or_uris)
        found = list(walk(
            roots, exclude=exclude, include_hidden=include_hidden, as_kind=as_kind, on_skip=on_skip,
        ))
        on_found(len(found))
        return index(  # the embedder is built only if something must be embedded
            self.store, self.record, found, roots, self._embedder_now, batch_size=batch_size,
            on_progress=on_progress, segments=window, readings=[Reading(r) for r in readings],
        )

    def search(
        self, query: "Query | str | Path", k: int = 10, filters: Filters = Filters(),
        *, mode: str = "auto",
    ) -> list[Hit]:
        """The `k` items nearest `query` (0: all), best first: a text, a file (a `Path`), or a
        `Query` expression (`Query.parse(["dog.jpg", "-", "0.5:cage.jpg"], ["snow"])`), embedded
        by this collection's embedder. The query's own files are left out. `filters` keeps
        kinds, folders, globs and a minimum score; `mode`: `auto`, `exact` or `approximate`,
        as `bind search` has them. A term that cannot be embedded raises its InputError."""
        if isinstance(query, Path):
            query = Query((Term(str(query)),))
        elif isinstance(query, str):
            query = Query((Term(query, literal=True),))
        vector = query.embed(self._embedder_now())
        return self.search_vector(vector, k, filters, mode=mode, leave_out=[query.own_files])

    def search_vector(
        self,
        vectors: np.ndarray,
        k: int = 10,
        filters: Filters = Filters(),
        *,
        mode: str = "auto",
        leave_out: Sequence[frozenset[str]] | None = None,
        group_by: str = "segment",
    ) -> list[Hit] | list[list[Hit]]:
        """The `k` items nearest a query vector (0: all), best first; for a 2-D array of
        query rows, one such list per row. `leave_out`, per row, holds canonical paths that
        are not results (a query's own files). No model is needed. A segment's hit carries
        its window (`start`, `end`); `group_by="file"` keeps the best window of each file,
        widened over the hits of that file beside it (`timed.by_file`)."""
        if group_by not in GROUPINGS:
            raise UsageError(f"unknown grouping {group_by!r}; use one of {', '.join(GROUPINGS)}")
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        index = index_for(self.store, self.record, mode)
        owns = list(leave_out) if leave_out is not None else [frozenset()] * len(queries)

        def timed(n: int) -> list[list[Hit]]:
            return [with_times(self.store, self.record, hits) for hits in index.search(queries, k=n, filters=filters)]

        search = grouped_search(timed) if group_by == "file" else timed
        results = leave_out_each(owns, search, k or max(1, self.count()), lambda hit: hit.path)
        return results if np.ndim(vectors) == 2 else results[0]

    def read_queries(self, npy: str | Path) -> np.ndarray:
        """Query vectors from a `.npy` (one row or many), refused when the manifest beside it
        names another model than this collection's or they are of another width. No model is
        loaded; `search_vector` refuses rows without a direction (NaN, all zero)."""
        return exchange.read_queries(npy, self.record, self.store.live_shape(self.record)[1])

    def export(self, npy: str | Path) -> int:
        """Write the live vectors (float32, unit length, in insertion order) to `npy` and the
        manifest beside it, as `bind embed -o` does; returns the rows written."""
        return exchange.export_pair(self.store, self.record, npy)

    def remove(self) -> Compaction:
        """Remove the collection and its index files (the indexed files on disk and the
        embedding cache stay), then compact the collection file so it shrinks; returns its
        size before and after (a rewrite: it needs free disk about its size)."""
        from bindcli.collections._matrix import discard

        discard(self.store, self.record)
        self.store.remove_collection(self.record.name)
        return self.store.compact()

    def _embedder_now(self) -> "Embedder":
        source = self._embedder
        if source is None:
            raise UsageError(f"collection {self.name!r} was opened without an embedder: "
                             "pass one to Collection.open to embed")
        return source if hasattr(source, "stream") else source()


def _pin(
    embedder: EmbedderSource | None, model: "Model | None", options: "MediaOptions | None"
) -> "tuple[str, Model]":
    """What a collection is pinned to (the vectors id) and the model, from `model` and
    `options`, else from the embedder itself."""
    if model is None:
        if embedder is None or not hasattr(embedder, "stream"):
            raise UsageError("Collection.open needs an embedder, or model= with a function that "
                             "builds one, to create a collection or check its model")
        from bindcli.embed.identity import Model

        model = Model(embedder.config, embedder.weights, embedder.model_id,
                      adapter=getattr(embedder, "adapter", None))
        options = embedder.options
    return model.vectors_id(options), model
