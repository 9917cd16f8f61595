"""`bind collections …`: what collections exist, what is in one, removing one, and moving
vectors in and out as the `.npy` + manifest pair of `bind embed -o`.

These read only the collection file (no model, no torch). Tables for people, JSON in a pipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bindcli._util import formats
from bindcli._util.folders import default_db_path
from bindcli.cli.options import DB_OPTION, VectorType, guarded, open_store, store_exists
from bindcli.cli.output import Output
from bindcli.cli.render import (
    FORMAT_OPTION,
    InfoFormat,
    compaction_text,
    resolved,
    show_record,
    when,
)

app = typer.Typer(
    name="collections",
    help="List, describe, remove, import and export collections (see `bind index`).",
    no_args_is_help=True,
)

NAME_ARG = Annotated[str, typer.Argument(metavar="NAME", help="The collection.")]
NPY_ARG = Annotated[Path, typer.Argument(
    metavar="FILE.npy", dir_okay=False, help="Vectors, with the manifest FILE.npy.json beside them.",
)]


@app.command("list")
@guarded
def list_command(out: Output, db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO) -> None:
    """One line per collection: name, files, model (JSON lines in a pipe)."""
    rows, path = [], db or default_db_path()
    if store_exists(db):
        from bindcli.collections.collection import Collection

        with open_store(db) as store:
            rows = [
                {"name": c.name, "files": c.count(), "model": c.record.model,
                 "model_id": c.record.model_id, "created": when(c.record.created_at)}
                for c in Collection.all(store)
            ]
    if not rows:
        out.note(f"no collections in {path} yet; create one with `bind index PATH`")
    fmt = resolved(fmt, out, InfoFormat.JSONL)
    if fmt is InfoFormat.TABLE:
        from rich.markup import escape
        from rich.table import Table

        table = Table()
        for column in ("name", "files", "model", "created"):
            table.add_column(column, justify="right" if column == "files" else "left")
        for r in rows:
            table.add_row(escape(r["name"]), str(r["files"]), escape(r["model"]), r["created"])
        out.table(table)
    else:
        out.text(formats.json_text(rows) if fmt is InfoFormat.JSON else formats.jsonl(rows))


@app.command("info")
@guarded
def info_command(
    out: Output, name: NAME_ARG, db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO
) -> None:
    """Files per modality, model, vector format, size on disk, where the file is, and how a
    search runs (exact or approximate) and whether its index files are up to date."""
    from bindcli.collections.collection import Collection

    with open_store(db, create=False) as store:
        info = Collection.open(store, name, create=False).info()
    show_record(out, {**info, "created": when(info["created"]), "updated": when(info["updated"])}, fmt)


@app.command("remove")
@guarded
def remove_command(out: Output, name: NAME_ARG, db: DB_OPTION = None) -> None:
    """Remove a collection (its files on disk are untouched; the embedding cache stays), then
    compact the collection file so it shrinks (a rewrite: needs free disk about its size)."""
    from bindcli.collections.collection import Collection

    with open_store(db, create=False) as store:
        done = Collection.open(store, name, create=False).remove()
        path = store.path
    out.note(f"removed collection {name!r} from {path}; {compaction_text(done)}")


@app.command("import")
@guarded
def import_command(
    out: Output,
    name: NAME_ARG,
    npy: NPY_ARG,
    db: DB_OPTION = None,
    vectors: Annotated[VectorType, typer.Option(
        "--vectors", case_sensitive=False, help="How a new collection stores vectors.",
    )] = VectorType.FLOAT32,
) -> None:
    """Add the vectors `bind embed -o FILE.npy` wrote (FILE.npy + FILE.npy.json) to a
    collection, created for the manifest's model if new. The rows' paths need not exist here;
    a collection of another model is refused."""
    from bindcli.collections.collection import Collection

    with open_store(db) as store:
        coll, count = Collection.import_(store, name, npy, vectors=vectors.value)
        total = coll.count()
    out.note(f"{coll.name}: imported {count} vectors from {npy}; {total} files now")


@app.command("export")
@guarded
def export_command(out: Output, name: NAME_ARG, npy: NPY_ARG, db: DB_OPTION = None) -> None:
    """Write a collection's vectors as `bind embed -o` does: FILE.npy (float32, unit length)
    and the manifest FILE.npy.json (model, and per row input path, modality, sha256)."""
    from bindcli.collections.collection import Collection
    from bindcli.collections.manifest import sidecar

    with open_store(db) as store:
        count = Collection.open(store, name, create=False).export(npy)
    out.note(f"wrote {count} vectors to {npy} (manifest {sidecar(npy)})")
