"""`bind search`: rank a collection by cosine similarity to a text, a file or an expression."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util.paths import canonical
from bindcli.cli.options import (
    COLLECTION_OPTION,
    DB_OPTION,
    DEFAULT_COLLECTION,
    TOP_K_OPTION,
    command,
    open_store,
)
from bindcli.cli.render import HitsFormat, show_hits
from bindcli.cli.run import Run
from bindcli.modality import Kind

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.collections.collection import Collection
    from bindcli.query import Query


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
    top_k: TOP_K_OPTION = 10,
    min_score: Annotated[Optional[float], typer.Option(
        "--min-score", show_default=False,
        help="Drop results below this cosine. Scales differ per modality pair.",
    )] = None,
    under: Annotated[Optional[list[str]], typer.Option(
        "--under", metavar="DIR", show_default=False,
        help="Only files below this folder or URI prefix (repeatable).",
    )] = None,
    glob: Annotated[Optional[list[str]], typer.Option(
        "--glob", metavar="GLOB", show_default=False,
        help="Only paths matching this glob; one without '/' matches the file name (repeatable).",
    )] = None,
    vector: Annotated[Optional[Path], typer.Option(
        "--vector", metavar="FILE.npy", dir_okay=False, show_default=False,
        help="Query with these vectors (one row or many, e.g. from `bind embed -o`) instead "
        "of TERMs: no model is loaded.",
    )] = None,
    each: Annotated[bool, typer.Option(
        "--each", help="Every TERM and --text is a query of its own (a batch), not one sum.",
    )] = False,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Score every item, even where the approximate index would be used.",
    )] = False,
    approximate: Annotated[bool, typer.Option(
        "--approximate", help="Read only the inverted lists nearest the query (built now if "
        "missing; needs bindcli[index]).",
    )] = False,
    preview: Annotated[bool, typer.Option(
        "--preview", help="Show pictures and film posters inline where the terminal draws them "
        "(kitty, iTerm2, WezTerm, sixel; BIND_PREVIEW=kitty|iterm|sixel says which); plain "
        "output elsewhere.",
    )] = False,
    group_by: Annotated[Optional[str], typer.Option(
        "--group-by", metavar="segment|file", show_default=False,
        help="In a collection of segments: each window a hit (segment; the default), or the "
        "best window of each file, widened over its hits beside it (file; the default with "
        "--format paths).",
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
    With several queries (--each, or --vector rows) each JSONL hit has "query": its row
    (from 0: TERMs, then --text).

    [dim]Examples:[/dim]
      bind search --text "a bird singing" --modality image
      bind search bird_call.wav -k 5 --under ~/photos/2024
      bind search bird.wav + 0.5:fruit.jpg --format paths | xargs feh
      bind search --vector queries.npy --glob '*.jpg' --format jsonl
      bind search --text "a red car" --preview       # thumbnails in kitty, iTerm2 or sixel
      bind search bark.wav -c moments --group-by file
    """
    from bindcli.collections.collection import Collection
    from bindcli.collections.nearest import Filters
    from bindcli.query import Query

    if exact and approximate:
        raise typer.BadParameter("use either --exact or --approximate", param_hint="--approximate")
    if vector and (query or text or each):
        raise typer.BadParameter("--vector replaces TERM, --text and --each", param_hint="--vector")
    queries = [] if vector else _queries(Query.parse(query or [], text or []), each)
    with open_store(db, create=False) as store:
        coll = Collection.open(store, collection, create=False)  # before loading a model for nothing
        if vector:
            vectors, owns, rows = _vector_queries(run, coll, vector)
            if not rows:
                return  # each bad row is named on stderr (exit 1)
        else:
            coll.check_model(run.model, run.common.media_options)
            vectors, owns, rows = _embedded(run, queries)
            if not rows:
                return  # each failed term is named on stderr (exit 1)
        filters = Filters(
            tuple(m.value for m in modality or []),
            tuple(str(canonical(d)) for d in under or []),
            tuple(glob or []), min_score,
        )
        results = coll.search_vector(
            vectors, top_k, filters, leave_out=owns,
            mode="exact" if exact else "approximate" if approximate else "auto",
            group_by=group_by or ("file" if fmt is HitsFormat.PATHS else "segment"),
        )
    rows = rows or list(range(len(results)))
    flat = [(row, h) for row, hits in zip(rows, results) for h in hits]
    if preview and _previewed(run, [h for _, h in flat], fmt):
        return
    show_hits(run, [h for _, h in flat], fmt,
              queries=[row for row, _ in flat] if len(results) > 1 else None)


def _previewed(run: Run, hits: list, fmt: HitsFormat) -> bool:
    """The hits with their pictures inline, where the terminal draws them and the output is
    for a person; False (and a note on a terminal that draws none) for plain output."""
    from bindcli.cli import preview
    from bindcli.cli.render import resolved

    if resolved(fmt, run.out, HitsFormat.JSONL) is not HitsFormat.TABLE or not run.out.stdout_is_terminal:
        return False
    protocol = preview.detect()
    if protocol is None:
        run.out.note("--preview: this terminal draws no pictures inline that bind knows of (kitty, "
                     "iTerm2, WezTerm, sixel; BIND_PREVIEW=kitty|iterm|sixel says which)")
        return False
    from bindcli._util.paths import path_text
    from bindcli.errors import InputError
    from bindcli.media.picture import PICTURED, picture

    for n, hit in enumerate(hits, 1):
        run.out.text(f"{n:>3}  {hit.score:.3f}  {path_text(hit.path)}  {hit.kind}\n")
        if hit.kind not in PICTURED:
            continue
        try:
            drawn = preview.encode(protocol, picture(hit.path, hit.kind))
        except InputError as exc:
            run.out.text(f"     ({exc.reason})\n")
            continue
        run.out.text(drawn + "\n")
    return True


def _queries(parsed: "Query", each: bool) -> "list[Query]":
    """The query, or with --each one query per term (its weight dropped: alone it is moot)."""
    from bindcli.query import Query

    if not each:
        return [parsed]
    return [Query((dataclasses.replace(term, weight=1.0),)) for term in parsed.terms]


def _vector_queries(run: Run, coll: "Collection", npy: Path) -> "tuple[np.ndarray, list, list[int]]":
    """The rows of a `--vector` file that can be searched, the file each row's manifest names
    (left out of its results), and their row numbers; a row without a direction (NaN,
    infinity, all zero) is named on stderr and left out."""
    from bindcli.collections.exchange import query_files
    from bindcli.vectors import row_problems

    vectors = coll.read_queries(npy)
    bad = dict(row_problems(vectors))
    for row, why in bad.items():
        run.out.error(f"{npy}: row {row}: {why}")
        run.failed += 1
    rows = [row for row in range(len(vectors)) if row not in bad]
    owns = query_files(npy, len(vectors))
    return vectors[rows], [owns[row] for row in rows], rows


def _embedded(run: Run, queries: "list[Query]") -> "tuple[np.ndarray, list, list[int]]":
    """The queries' vectors (all terms embedded in one run), their own files, and their
    rows; a query whose term failed is left out (and named on stderr)."""
    import numpy as np

    from bindcli.errors import BindError
    from bindcli.query import Query

    terms = Query(tuple(t for q in queries for t in q.terms))
    results = run.embed(terms.inputs(run.common.as_kind))
    vectors, owns, rows, at = [], [], [], 0
    for row, q in enumerate(queries):
        mine, at = results[at : at + len(q.terms)], at + len(q.terms)
        if any(r is None for r in mine):
            continue
        try:
            vectors.append(q.vector(mine))
        except BindError as exc:  # terms that cancel out
            run.out.error(str(exc))
            run.failed += 1
            continue
        owns.append(q.own_files)
        rows.append(row)
    return (np.stack(vectors) if vectors else np.empty((0, 0))), owns, rows
