"""`bind collections …`: what collections exist, what is in one, and removing one.

These read only the collection file (no model, no torch). Tables for people, JSON in a pipe.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bindcli import output
from bindcli.cli.common import guarded
from bindcli.cli.shared import (
    DB_OPTION, FORMAT_OPTION, InfoFormat, chosen, compaction_text, open_store, show_record,
    store_exists, when,
)
from bindcli.locations import default_db_path
from bindcli.output import Output

app = typer.Typer(
    name="collections",
    help="List, describe and remove collections (see `bind index`).",
    no_args_is_help=True,
)

NAME_ARG = Annotated[str, typer.Argument(metavar="NAME", help="The collection.")]


@app.command("list")
@guarded
def list_command(db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO) -> None:
    """One line per collection: name, files, model (JSON lines in a pipe)."""
    out = Output()
    rows, path = [], db or default_db_path()
    if store_exists(db):
        with open_store(db) as store:
            rows = [
                {"name": c.name, "files": sum(store.counts(c).values()), "model": c.model,
                 "model_id": c.model_id, "created": when(c.created_at)}
                for c in store.collections()
            ]
    if not rows:
        out.note(f"no collections in {path} yet; create one with `bind index PATH`")
    fmt = chosen(fmt, out, InfoFormat.JSONL)
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
        out.text(output.json_text(rows) if fmt is InfoFormat.JSON else output.jsonl(rows))


@app.command("info")
@guarded
def info_command(
    name: NAME_ARG, db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO
) -> None:
    """Files per modality, model, vector format, size on disk and where the file is."""
    with open_store(db, create=False) as store:
        coll = store.require(name)
        counts = store.counts(coll)
        stats = store.stats(coll)
        info = {
            "name": coll.name,
            "files": sum(counts.values()),
            "per_modality": counts,
            "deleted": stats["deleted"],
            "model": coll.model,
            "model_id": coll.model_id,
            "vectors": f"{stats['dims']} x {coll.dtype}" if stats["dims"] else coll.dtype,
            "vector_bytes": stats["vector_bytes"],
            "file": str(store.path),
            "file_bytes": store.file_bytes(),
            "created": when(coll.created_at),
            "updated": when(stats["updated_at"]),
        }
    show_record(Output(), info, fmt)


@app.command("remove")
@guarded
def remove_command(name: NAME_ARG, db: DB_OPTION = None) -> None:
    """Remove a collection (its files on disk are untouched; the embedding cache stays), then
    compact the collection file so it shrinks (a rewrite: needs free disk about its size)."""
    with open_store(db, create=False) as store:
        store.remove_collection(name)
        done = store.compact()
        path = store.path
    Output().note(f"removed collection {name!r} from {path}; {compaction_text(done)}")
