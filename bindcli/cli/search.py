"""`bind search`: rank a collection by cosine similarity to a text, a file or an expression."""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli import output
from bindcli.cli.common import Run, command, pick_format
from bindcli.cli.index import (
    COLLECTION_OPTION, DB_OPTION, DEFAULT_COLLECTION, open_store, require_model,
)
from bindcli.modality import Kind

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.store import Hit


class HitsFormat(str, enum.Enum):
    """How ranked results print (search, arith)."""

    AUTO = "auto"
    TABLE = "table"
    JSONL = "jsonl"
    PATHS = "paths"


@command
def search(
    run: Run,
    query: Annotated[Optional[list[str]], typer.Argument(
        metavar="[TERM [+|- TERM]...]", show_default=False,
        help="Media files, combined with + and - as in `bind arith` (weight: 0.5:file.jpg).",
    )] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", show_default=False,
        help="A text query term; 'W:text' weights it, a negative W subtracts (repeatable).",
    )] = None,
    modality: Annotated[Optional[list[Kind]], typer.Option(
        "--modality", "-m", case_sensitive=False, show_default=False,
        help="Only results of this kind (repeatable).",
    )] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Results to show.")] = 10,
    min_score: Annotated[Optional[float], typer.Option(
        "--min-score", show_default=False,
        help="Drop results below this cosine. Scales differ per modality pair.",
    )] = None,
    fmt: Annotated[HitsFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="auto: a table on a terminal, JSONL in a pipe; paths: bare paths for xargs.",
    )] = HitsFormat.AUTO,
    db: DB_OPTION = None,
    collection: COLLECTION_OPTION = DEFAULT_COLLECTION,
) -> None:
    """Find the files in a collection closest to the query, across modalities.

    The query's own files are left out of the results. Scores are cosine similarities; they sit
    on different scales for different modality pairs, so compare them within one --modality.

    [dim]Examples:[/dim]
      bind search --text "a bird singing" --modality image
      bind search bird_call.wav -k 5
      bind search bird.wav + 0.5:fruit.jpg --format paths | xargs feh
    """
    from bindcli.cli.arith import combine, parse_expression

    terms = parse_expression(query or [], text or [])
    files = [t for t in terms if not t.literal]
    with open_store(db) as store:
        coll = store.require(collection)  # before loading a model for nothing
        inputs = run.inputs([t.source for t in files], [t.source for t in terms if t.literal])
        results = run.embed(inputs)
        if any(r is None for r in results):
            return  # the failed term is named on stderr (exit 1); without it there is no query
        require_model(coll, run.embedder)
        query_vector = combine([r.raw for r in results], [t.weight for t in terms])
        hits = store.search(
            coll, query_vector, k=top_k, min_score=min_score,
            kinds=[m.value for m in modality or []],
            exclude={os.path.abspath(t.source) for t in files},
        )
    show_hits(run, hits, fmt.value)


def show_hits(run: Run, hits: "list[Hit]", fmt: str) -> None:
    """Ranked results as a table, JSONL (`path`, `modality`, `score`) or bare paths."""
    fmt = pick_format(fmt, run.out, HitsFormat.JSONL.value)
    if fmt == HitsFormat.PATHS.value:
        run.out.text("".join(h.path + "\n" for h in hits))
        return
    if fmt == HitsFormat.JSONL.value:
        run.out.text(output.jsonl(
            {"path": h.path, "modality": h.kind, "score": round(h.score, 6)} for h in hits
        ))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("path", overflow="fold")  # a long path wraps rather than losing its name
    table.add_column("modality")
    for n, hit in enumerate(hits, 1):
        table.add_row(str(n), f"{hit.score:.3f}", escape(_for_people(hit.path)), hit.kind)
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
