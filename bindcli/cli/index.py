"""`bind index`: embed every supported file under some paths into a collection, incrementally."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli.cli.common import Run, command

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.indexer import Report
    from bindcli.runtime import Embedder
    from bindcli.store import Collection, Store

DB_OPTION = Annotated[Optional[Path], typer.Option(
    "--db", metavar="FILE", dir_okay=False, show_default=False,
    help="Collection file. Default: $BIND_DATA_DIR/bind.sqlite3, else "
    "$XDG_DATA_HOME/bind/bind.sqlite3, else ~/.local/share/bind/bind.sqlite3.",
)]
COLLECTION_OPTION = Annotated[str, typer.Option(
    "--collection", "-c", metavar="NAME", help="Which collection in the file.",
)]
DEFAULT_COLLECTION = "default"


class VectorType(str, enum.Enum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"


def open_store(db: Path | None) -> "Store":
    """The collection file named by --db, else the default one."""
    from bindcli.store import Store, default_db_path

    return Store(db or default_db_path())


@command
def index(
    run: Run,
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH...", show_default=False, help="Files and folders to index.",
    )],
    db: DB_OPTION = None,
    collection: COLLECTION_OPTION = DEFAULT_COLLECTION,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", "-x", metavar="GLOB", show_default=False,
        help="Skip files or folders whose name or relative path matches (repeatable).",
    )] = None,
    include_hidden: Annotated[bool, typer.Option(
        "--include-hidden", help="Also index hidden files and folders (names starting with '.').",
    )] = False,
    vectors: Annotated[VectorType, typer.Option(
        "--vectors", case_sensitive=False,
        help="How a new collection stores vectors; float16 halves the file.",
    )] = VectorType.FLOAT32,
) -> None:
    """Embed new and changed files under PATH... into a collection; mark vanished ones deleted.

    Unchanged files (same path, size, mtime) are skipped; renamed or copied files reuse their
    vectors by content hash. Work is committed in batches: after Ctrl-C or a crash, run the
    same command again and it continues.

    [dim]Examples:[/dim]
      bind index ~/photos ~/recordings
      bind index . --db ./bind.sqlite3 --exclude '*.tmp' --collection trip
    """
    from bindcli.indexer import callbacks, walk
    from bindcli.indexer import index as index_paths

    with open_store(db) as store:
        embedder = run.embedder
        coll = _collection_for(store, collection, embedder, vectors.value)
        found = list(walk(
            paths, exclude=exclude or (), include_hidden=include_hidden, as_kind=run.common.as_kind
        ))
        embed, cached = callbacks(embedder)
        with run.out.progress(len(found), "Indexing") as advance:
            done = [0]

            def on_progress(report: "Report") -> None:
                total = sum(report.done().values()) + len(report.failed)
                advance(total - done[0], "Indexing " + _per_kind(report.done()))
                done[0] = total

            report = index_paths(
                store, coll, found, paths, embed, cached=cached,
                batch_size=4 * run.common.batch_size, on_progress=on_progress,
            )
    run.failed += run.out.failed(report.failed)
    run.out.note(
        f"{coll.name}: {sum(report.done().values())} files ({_per_kind(report.done())}); "
        f"{sum(report.embedded.values())} embedded, {sum(report.reused.values())} reused, "
        f"{sum(report.unchanged.values())} unchanged, {report.removed} removed, "
        f"{len(report.failed)} failed"
    )


def _per_kind(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing yet"


def _collection_for(store: "Store", name: str, embedder: "Embedder", dtype: str) -> "Collection":
    """The collection `name`, created for this model if new."""
    found = store.collection(name)
    if found is None:
        described = f"{embedder.config.name} ({embedder.weights.name})"
        return store.create_collection(name, embedder.model_id, described, dtype)
    require_model(found, embedder)
    return found


def require_model(collection: "Collection", embedder: "Embedder") -> None:
    """Refuse to mix vectors of two models: their scores would be meaningless."""
    from bindcli.store import StoreError

    if collection.model_id != embedder.model_id:
        raise StoreError(
            f"collection {collection.name!r} was built with model {collection.model} "
            f"[{collection.model_id}]; this run uses {embedder.config.name} "
            f"[{embedder.model_id}]. Use the same --model-config and --weights, another "
            "collection, or `bind collections remove` first"
        )
