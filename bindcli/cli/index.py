"""`bind index`: embed every supported file under some paths into a collection, incrementally."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util.paths import path_text
from bindcli.cli.engine import (
    ADDRESS_OPTION,
    CPUS_OPTION,
    ENGINE_OPTION,
    GPUS_OPTION,
    WORKERS_OPTION,
    EngineName,
    refuse_uris,
    use_engine,
)
from bindcli.cli.options import (
    COLLECTION_OPTION,
    DB_OPTION,
    DEFAULT_COLLECTION,
    READING_OPTION,
    SEGMENTS_OPTION,
    VectorType,
    command,
    open_store,
    parse_segments,
)
from bindcli.cli.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.ingest import Report


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
    segments: SEGMENTS_OPTION = None,
    reading: READING_OPTION = None,
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
      bind index ~/films --segments 5s:2.5s --reading frames --reading sound -c moments
    """
    refuse_uris(engine, paths)
    use_engine(run, engine, address, workers, gpus_per_worker, cpus_per_worker)
    if segments is not None and engine is not EngineName.LOCAL:
        raise typer.BadParameter("--segments embeds in this process", param_hint="--engine")
    window, readings = parse_segments(run, segments, reading)
    from bindcli.collections.collection import Collection

    outputs: list[Path] = []  # bind's own vectors under PATH: never inputs
    with open_store(db) as store, contextlib.ExitStack() as bar:
        coll = Collection.open(
            store, collection, lambda: run.embedder, model=run.model, options=run.common.media_options,
            vectors=vectors.value,
        )
        advance: list[Callable[..., None]] = []
        done = [0]

        def on_progress(report: "Report") -> None:
            total = sum(report.done().values()) + len(report.failed)
            advance[0](total - done[0], "Indexing " + _per_kind(report.done()))
            done[0] = total

        report = coll.update(
            paths, exclude=exclude or (), include_hidden=include_hidden, as_kind=run.common.as_kind,
            batch_size=4 * run.common.batch_size, on_skip=outputs.append, on_progress=on_progress,
            segments=window, readings=readings,
            on_found=lambda files: advance.append(bar.enter_context(run.out.progress(files, "Indexing"))),
        )
    run.failed += run.out.failed(report.failed)
    if outputs:
        listed = ", ".join(path_text(p) for p in outputs[:3]) + (", ..." if len(outputs) > 3 else "")
        run.out.note(f"skipped {len(outputs)} files bind wrote (vectors with a manifest): {listed}")
    run.out.note(
        f"{collection}: {sum(report.done().values())} files ({_per_kind(report.done())}); "
        f"{sum(report.embedded.values())} embedded, {sum(report.reused.values())} reused, "
        f"{sum(report.unchanged.values())} unchanged, {report.removed} removed, "
        f"{len(report.failed)} failed"
    )


def _per_kind(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing yet"

