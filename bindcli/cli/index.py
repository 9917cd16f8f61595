"""`bind index`: embed every supported file under some paths into a collection, incrementally."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli.cli.options import (
    COLLECTION_OPTION, DB_OPTION, DEFAULT_COLLECTION, VectorType, command, open_store,
)
from bindcli.cli.run import Run
from bindcli.cli.engine import (
    ADDRESS_OPTION, CPUS_OPTION, ENGINE_OPTION, GPUS_OPTION, WORKERS_OPTION, EngineName,
    refuse_uris, use_engine,
)
from bindcli._util.paths import path_text

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.ingest import Report
    from bindcli.embed.embedder import Model
    from bindcli.collections.store import Collection, Store



@command
def index(
    run: Run,
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", show_default=False,
        help="Files and folders to index; with --engine ray also URIs (s3://bucket/prefix).",
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
    engine: ENGINE_OPTION = EngineName.LOCAL,
    address: ADDRESS_OPTION = None,
    workers: WORKERS_OPTION = None,
    gpus_per_worker: GPUS_OPTION = 0,
    cpus_per_worker: CPUS_OPTION = 1,
) -> None:
    """Embed new and changed files under PATH... into a collection; mark vanished ones deleted.

    Unchanged files (same path, size, mtime) are skipped; renamed or copied files reuse their
    vectors by content hash. Work is committed in batches: after Ctrl-C or a crash, run the
    same command again and it continues.

    [dim]Examples:[/dim]
      bind index ~/photos ~/recordings
      bind index . --db ./bind.sqlite3 --exclude '*.tmp' --collection trip
      bind index /shared/photos --engine ray --address auto --gpus-per-worker 1
      bind index s3://bucket/photos --engine ray --address auto
    """
    refuse_uris(engine, paths)
    use_engine(run, engine, address, workers, gpus_per_worker, cpus_per_worker)
    from bindcli.collections.ingest import embedding_with, walk
    from bindcli.collections.ingest import index as index_paths

    with open_store(db) as store:
        coll = _collection_for(store, collection, run.model, run.vectors_id, vectors.value)
        outputs: list[Path] = []  # bind's own vectors under PATH: never inputs
        found = list(walk(
            paths, exclude=exclude or (), include_hidden=include_hidden,
            as_kind=run.common.as_kind, on_skip=outputs.append,
        ))
        embed = embedding_with(lambda: run.embedder)  # built only if something must be embedded
        with run.out.progress(len(found), "Indexing") as advance:
            done = [0]

            def on_progress(report: "Report") -> None:
                total = sum(report.done().values()) + len(report.failed)
                advance(total - done[0], "Indexing " + _per_kind(report.done()))
                done[0] = total

            report = index_paths(
                store, coll, found, paths, embed, batch_size=4 * run.common.batch_size, on_progress=on_progress,
            )
    run.failed += run.out.failed(report.failed)
    if outputs:
        listed = ", ".join(path_text(p) for p in outputs[:3]) + (", ..." if len(outputs) > 3 else "")
        run.out.note(f"skipped {len(outputs)} files bind wrote (vectors with a manifest): {listed}")
    run.out.note(
        f"{coll.name}: {sum(report.done().values())} files ({_per_kind(report.done())}); "
        f"{sum(report.embedded.values())} embedded, {sum(report.reused.values())} reused, "
        f"{sum(report.unchanged.values())} unchanged, {report.removed} removed, "
        f"{len(report.failed)} failed"
    )


def _per_kind(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing yet"


def _collection_for(store: "Store", name: str, model: "Model", pinned: str, dtype: str) -> "Collection":
    """The collection `name`, created for this model (and loading options: `pinned`, see
    `Model.vectors_id`) if new."""
    found = store.collection(name) or store.create_collection(name, pinned, model.describe(), dtype)
    found.check_model(pinned, model.config.name)  # another run may have just made it
    return found
