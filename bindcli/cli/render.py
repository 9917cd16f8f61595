"""How results print: `--format` with `auto` decided, ranked hits, records (a collection's,
the cache's, a checkpoint's) and the names of inputs in a table.

Tables for people at a terminal, the machine formats (`bindcli._util.formats`) for scripts.
"""

from __future__ import annotations

import datetime
import enum
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bindcli._util import formats
from bindcli._util.paths import path_text
from bindcli.cli.output import Output

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.cli.run import Run
    from bindcli.collections.store import Compaction, Hit
    from bindcli.embed.stages import Embedding, Segments

Format = TypeVar("Format", bound=enum.Enum)


def resolved(fmt: Format, out: Output, machine: Format) -> Format:
    """A `--format` with `auto` decided, the same for every command: a table for a person at
    a terminal (stdout itself), else `machine`, the command's machine format. Every format
    enum has `auto` and `table`."""
    if fmt.value != "auto":
        return fmt
    return type(fmt)("table") if out.stdout_is_terminal else machine


class HitsFormat(str, enum.Enum):
    """How ranked results print (search, arith)."""

    AUTO = "auto"
    TABLE = "table"
    JSONL = "jsonl"
    PATHS = "paths"


def show_hits(run: "Run", hits: "list[Hit]", fmt: HitsFormat, queries: Sequence[int] | None = None) -> None:
    """Ranked results as a table, JSONL (`path`, a segment's `start` and `end`, `modality`,
    `score`) or bare paths; with
    `queries` (the query row of each hit, for a batch) JSONL records and the table lead
    with it."""
    fmt = resolved(fmt, run.out, HitsFormat.JSONL)
    if fmt is HitsFormat.PATHS:
        run.out.binary(b"".join(os.fsencode(h.path) + b"\n" for h in hits))  # as `find` prints
        return
    rows = queries if queries is not None else [None] * len(hits)
    if fmt is HitsFormat.JSONL:
        from bindcli.vectors import printed

        run.out.text(formats.jsonl(
            {**({} if row is None else {"query": row}), "path": path_text(h.path),
             **({} if h.start is None else {"start": round(h.start, 6), "end": round(h.end, 6)}),
             "modality": h.kind, "score": printed(h.score)}
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
        where = "" if hit.start is None else f"  {span(hit.start, hit.end)}"
        cells = [f"{hit.score:.3f}", escape(path_text(_for_people(hit.path))) + where, hit.kind]
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


def when(timestamp: float | None) -> str | None:
    """A Unix time as local ISO 8601 to the second (None stays None)."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def show_record(out: Output, info: dict, fmt: InfoFormat, shown: dict[str, str] | None = None) -> None:
    """`info` as one JSON object, or for a person as a two-column table: `*_bytes` values
    readable (kB, MB), dicts as `key n, ...`, and `shown` replacing the text of some values."""
    if resolved(fmt, out, InfoFormat.JSON) is not InfoFormat.TABLE:
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


def table_labels(embeddings: "Sequence[Embedding]") -> list[str]:
    """How inputs are named in a table: file names when those are unambiguous (long paths
    would crowd the columns out), else the paths as given; texts in quotes. Escaped, so a `[`
    in a file name is not read as Rich markup."""
    from rich.markup import escape

    inputs = [e.input for e in embeddings]
    files = {i.source for i in inputs if not i.literal}
    short = len({Path(f).name for f in files}) == len(files)
    return [
        escape(path_text(f'"{i.source}"' if i.literal else Path(i.source).name if short else i.source))
        + (f"  {span(e.start, e.end)}" if e.start is not None else "")
        for i, e in zip(inputs, embeddings)
    ]


def each_embedding(results: "Iterable[Embedding | Segments | None]") -> "Iterator[Embedding]":
    """Each embedding of `results` (None skipped), a file read in segments giving one per window."""
    from bindcli.embed.stages import Segments

    for result in results:
        if result is not None:
            yield from (result.parts if isinstance(result, Segments) else (result,))


def input_name(e: "Embedding") -> str:
    """An input as a machine format names it: its path or text, a segment as the moment it
    is (`talk.mp4@00:12:31-00:12:36`, which a query takes back)."""
    if e.start is None:
        return e.input.source
    return f"{e.input.source}@{span(e.start, e.end)}"


def span(start: float, end: float | None) -> str:
    """A segment's window as people read it: `00:12:31-00:12:36`."""
    from bindcli.windows import clock

    return f"{clock(start)}-{clock(end if end is not None else start)}"
