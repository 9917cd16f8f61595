"""CLI plumbing that several commands share: the collection-file options, the ranked-hits
table, and how a record (collection or cache info) is shown.

Command modules import from here and from `common`, never from each other.
"""

from __future__ import annotations

import datetime
import enum
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import formats
from bindcli.cli.common import Run, pick_format
from bindcli.errors import StoreError, UsageError
from bindcli.cli.output import Output
from bindcli._util.paths import path_text

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.store import Collection, Compaction, Hit, Store

DB_OPTION = Annotated[Optional[Path], typer.Option(
    "--db", metavar="FILE", dir_okay=False, show_default=False,
    help="Collection file. Default: $BIND_DATA_DIR/bind.sqlite3, else "
    "$XDG_DATA_HOME/bind/bind.sqlite3, else ~/.local/share/bind/bind.sqlite3.",
)]
COLLECTION_OPTION = Annotated[str, typer.Option(
    "--collection", "-c", metavar="NAME", help="Which collection in the file.",
)]
DEFAULT_COLLECTION = "default"
#: a query expression as a command's arguments, in `bind arith`'s syntax (`bindcli.query`)
QUERY_TERMS = Annotated[Optional[list[str]], typer.Argument(
    metavar="TERM [+|- TERM]...", show_default=False,
    help="Files combined with + and - (separate words); weight a term as 0.5:file.jpg. "
    "Put -- before a term that starts with '-'.",
)]
QUERY_TEXT = Annotated[Optional[list[str]], typer.Option(
    "--text", "-t", show_default=False,
    help="A text query term; 'W:text' weights it, a negative W subtracts (repeatable).",
)]
TOP_K_OPTION = Annotated[int, typer.Option(
    "--top-k", "-k", min=0, help="Results to show (0: all).",
)]


class VectorType(str, enum.Enum):
    """How a new collection stores its vectors (`store.DTYPES`)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


def check_templates(templates: Sequence[str], param_hint: str = "--template", source: str | None = None) -> None:
    """`zeroshot.check_templates` as a bad-parameter error on the option they came from
    (`source`: the file they were read from, named in the message)."""
    from bindcli.zeroshot import check_templates as check

    try:
        check(templates)
    except UsageError as exc:
        raise typer.BadParameter(f"{source}: {exc}" if source else str(exc), param_hint=param_hint) from None


def open_store(db: Path | None, *, create: bool = True) -> "Store":
    """The collection file named by --db, else the default one. Commands that only read pass
    `create=False`: a missing file is then an error naming it, and no file is made (a typo in
    --db must not leave an empty collection file behind)."""
    from bindcli._util.folders import default_db_path
    from bindcli.collections.store import Store

    path = db or default_db_path()
    if not create and not path.expanduser().exists():
        raise StoreError(f"{path_text(path)}: no such collection file (`bind index` creates it)")
    return Store(path)


def store_exists(db: Path | None) -> bool:
    """Whether the collection file named by --db (else the default one) exists yet: where it
    does not, a listing is empty rather than an error."""
    from bindcli._util.folders import default_db_path

    return (db or default_db_path()).expanduser().exists()


def wanted(top_k: int, store: "Store", collection: "Collection") -> int:
    """How many results `-k` asks of `collection`: 0 means all of its files."""
    return top_k or max(1, sum(store.counts(collection).values()))


class HitsFormat(str, enum.Enum):
    """How ranked results print (search, arith)."""

    AUTO = "auto"
    TABLE = "table"
    JSONL = "jsonl"
    PATHS = "paths"


def show_hits(run: Run, hits: "list[Hit]", fmt: str, queries: Sequence[int] | None = None) -> None:
    """Ranked results as a table, JSONL (`path`, `modality`, `score`) or bare paths; with
    `queries` (the query row of each hit, for a batch) JSONL records and the table lead
    with it."""
    fmt = pick_format(fmt, run.out, HitsFormat.JSONL.value)
    if fmt == HitsFormat.PATHS.value:
        run.out.binary(b"".join(os.fsencode(h.path) + b"\n" for h in hits))  # as `find` prints
        return
    rows = queries if queries is not None else [None] * len(hits)
    if fmt == HitsFormat.JSONL.value:
        from bindcli.vectors import printed

        run.out.text(formats.jsonl(
            {**({} if row is None else {"query": row}), "path": path_text(h.path), "modality": h.kind,
             "score": printed(h.score)}
            for row, h in zip(rows, hits)
        ))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    if queries is not None:
        table.add_column("query", justify="right")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("path", overflow="fold")  # a long path wraps rather than losing its name
    table.add_column("modality")
    n = 0
    for i, (row, hit) in enumerate(zip(rows, hits)):
        n = 1 if i == 0 or row != rows[i - 1] else n + 1
        cells = [f"{hit.score:.3f}", escape(path_text(_for_people(hit.path))), hit.kind]
        table.add_row(*([str(row)] if queries is not None else []), str(n), *cells)
    run.out.table(table)


def _for_people(path: str) -> str:
    """A table's path: relative to the current folder when it lies below it, else as stored.

    Collections store absolute paths, whose shared prefix would otherwise push the file names
    out of a terminal-wide table. JSONL and `paths` output keep the stored path.
    """
    if not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


class InfoFormat(str, enum.Enum):
    """How records print (`collections`, `cache`, `weights info`). One record is the same
    in JSON and JSONL: an object on one line; a list is an array or one object a line."""

    AUTO = "auto"
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"


FORMAT_OPTION = Annotated[InfoFormat, typer.Option(
    "--format", "-f", case_sensitive=False,
    help="auto: a table on a terminal, else JSON (a list as JSON lines).",
)]


def chosen(fmt: InfoFormat, out: Output, machine: InfoFormat = InfoFormat.JSON) -> InfoFormat:
    """`fmt`, with `auto` decided: a table for a person at a terminal, else `machine`."""
    return InfoFormat(pick_format(fmt.value, out, machine.value))


def when(timestamp: float | None) -> str | None:
    """A Unix time as local ISO 8601 to the second (None stays None)."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def show_record(out: Output, info: dict, fmt: InfoFormat, shown: dict[str, str] | None = None) -> None:
    """`info` as one JSON object, or for a person as a two-column table: `*_bytes` values
    readable (kB, MB), dicts as `key n, ...`, and `shown` replacing the text of some values."""
    if chosen(fmt, out) is not InfoFormat.TABLE:
        out.text(formats.json_text(info))
        return
    from rich.filesize import decimal
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if shown and key in shown:
            value = shown[key]
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {n}" for k, n in value.items()) or "—"
        elif key.endswith("_bytes"):
            value = decimal(value)
        table.add_row(key.replace("_", " "), escape(str(value)))
    out.table(table)


def compaction_text(done: "Compaction") -> str:
    """How much `Store.compact` gave back, for the closing stderr line of a removal."""
    from rich.filesize import decimal

    return (
        f"compacted the file from {decimal(done.before)} to {decimal(done.after)} "
        f"({decimal(max(done.reclaimed, 0))} reclaimed)"
    )
