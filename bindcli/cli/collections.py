"""`bind collections …`: what collections exist, what is in one, and removing one.

These read only the collection file (no model, no torch). Tables for people, JSON in a pipe.
The format option and the helpers below serve `bind cache` too.
"""

from __future__ import annotations

import datetime
import enum
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from bindcli import output
from bindcli.cli.index import DB_OPTION, open_store

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.store import Compaction

app = typer.Typer(
    name="collections",
    help="List, describe and remove collections (see `bind index`).",
    no_args_is_help=True,
)

NAME_ARG = Annotated[str, typer.Argument(metavar="NAME", help="The collection.")]


class InfoFormat(str, enum.Enum):
    AUTO = "auto"
    TABLE = "table"
    JSON = "json"


FORMAT_OPTION = Annotated[InfoFormat, typer.Option(
    "--format", "-f", case_sensitive=False, help="auto: a table on a terminal, JSON in a pipe.",
)]


def as_table(fmt: InfoFormat) -> bool:
    return fmt is InfoFormat.TABLE or (fmt is InfoFormat.AUTO and sys.stdout.isatty())


def when(timestamp: float | None) -> str | None:
    """A Unix time as local ISO 8601 to the second (None stays None)."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def show_record(info: dict, fmt: InfoFormat, shown: dict[str, str] | None = None) -> None:
    """`info` as one JSON object, or for a person as a two-column table: `*_bytes` values
    readable (kB, MB), dicts as `key n, ...`, and `shown` replacing the text of some values."""
    if not as_table(fmt):
        sys.stdout.write(output.json_text(info))
        return
    from rich.console import Console
    from rich.filesize import decimal
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if shown and key in shown:
            value = shown[key]
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {n}" for k, n in value.items()) or "—"
        elif key.endswith("_bytes"):
            value = decimal(value)
        table.add_row(key.replace("_", " "), str(value))
    Console(highlight=False).print(table)


def compaction_text(done: "Compaction") -> str:
    """How much `Store.compact` gave back, for the closing stderr line of a removal."""
    from rich.filesize import decimal

    return (
        f"compacted the file from {decimal(done.before)} to {decimal(done.after)} "
        f"({decimal(max(done.reclaimed, 0))} reclaimed)"
    )


@app.command("list")
def list_command(db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO) -> None:
    """One line per collection: name, files, model (JSON lines in a pipe)."""
    with open_store(db) as store:
        rows = [
            {"name": c.name, "files": sum(store.counts(c).values()), "model": c.model,
             "model_id": c.model_id, "created": when(c.created_at)}
            for c in store.collections()
        ]
        path = store.path
    if not rows:
        print(f"bind: no collections in {path} yet; create one with `bind index PATH`",
              file=sys.stderr)
    if as_table(fmt):
        from rich.console import Console
        from rich.table import Table

        table = Table()
        for column in ("name", "files", "model", "created"):
            table.add_column(column, justify="right" if column == "files" else "left")
        for r in rows:
            table.add_row(r["name"], str(r["files"]), r["model"], r["created"])
        Console(highlight=False).print(table)
    else:
        sys.stdout.write(output.jsonl(rows))


@app.command("info")
def info_command(
    name: NAME_ARG, db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO
) -> None:
    """Files per modality, model, vector format, size on disk and where the file is."""
    with open_store(db) as store:
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
    show_record(info, fmt)


@app.command("remove")
def remove_command(name: NAME_ARG, db: DB_OPTION = None) -> None:
    """Remove a collection (its files on disk are untouched; the embedding cache stays), then
    compact the collection file so it shrinks (a rewrite: needs free disk about its size)."""
    with open_store(db) as store:
        store.remove_collection(name)
        done = store.compact()
        path = store.path
    print(f"bind: removed collection {name!r} from {path}; {compaction_text(done)}",
          file=sys.stderr)
