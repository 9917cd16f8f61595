"""`bind arith`: embedding arithmetic (`bird.wav + 0.5:fruit.jpg - cage.jpg`) and retrieval.

The combination is the paper's: each term's vector normalised, weighted, summed, and the sum
normalised again. The expression syntax is rclip's: `+` and `-` are separate words, a weight
prefixes a term as `W:term`. Click reads any word starting with `-` and longer than one
character as an option, so a term that itself starts with `-` (a negative weight such as
`-0.5:x.jpg`) must come after `--`; `- 0.5:x.jpg` needs no such care.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import atomic, formats
from bindcli.cli.options import (
    DB_OPTION,
    QUERY_TERMS,
    QUERY_TEXT,
    TOP_K_OPTION,
    command,
    open_store,
    store_exists,
    wanted,
)
from bindcli.cli.render import HitsFormat, show_hits
from bindcli.cli.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.store import CollectionRecord
    from bindcli.query import Query


@command
def arith(
    run: Run,
    expression: QUERY_TERMS = None,
    text: QUERY_TEXT = None,
    gallery: Annotated[Optional[list[str]], typer.Option(
        "--gallery", "-g", metavar="DIR|FILE|COLLECTION", show_default=False,
        help="Where to search: folders (walked, hidden files skipped), files, or the name of "
        "a collection of the --db file made by `bind index` (repeatable).",
    )] = None,
    collection: Annotated[Optional[list[str]], typer.Option(
        "--collection", "-c", metavar="NAME", show_default=False,
        help="Also rank this collection of the --db file (repeatable).",
    )] = None,
    db: DB_OPTION = None,
    top_k: TOP_K_OPTION = 10,
    out_file: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE.npy", dir_okay=False,
        help="Also write the combined unit vector to FILE.npy.",
    )] = None,
    fmt: Annotated[HitsFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="auto: a table on a terminal, JSONL in a pipe; paths: bare paths for xargs.",
    )] = HitsFormat.AUTO,
) -> None:
    """Combine embeddings with + and -, then rank a gallery by cosine similarity.

    Without --gallery or -c the combined vector is written (-o FILE.npy) or printed as JSON.

    [dim]Examples:[/dim]
      bind arith bird.jpg + 0.5:rain.wav --gallery photos/
      bind arith dog.jpg --text "-1:grass" --text snow -g photos/ -k 5
      bind arith car.jpg - 0.3:street.jpg -o car-alone.npy
    """
    import numpy as np

    from bindcli.collections.nearest import index_for
    from bindcli.collections.store import Hit
    from bindcli.collections.timed import with_times
    from bindcli.query import Query

    parsed = Query.parse(expression or [], text or [])
    inputs = parsed.inputs(run.common.as_kind)
    roots, collections = _split_gallery(gallery or [], collection or [], db)
    for coll in collections:  # before embedding anything for a search that cannot run
        coll.check_model(run.vectors_id, run.model.config.name)
    candidates = _gallery(run, roots, parsed)
    results = run.embed(inputs + candidates, "Embedding gallery" if candidates else "Embedding")
    terms = parsed.terms
    if any(r is None for r in results[: len(terms)]):
        return  # the failed term is named on stderr (exit 1); without it there is no query
    query = parsed.vector(results[: len(terms)])
    if out_file:
        atomic.write_file(out_file, formats.npy_bytes(query))
        run.out.note(f"wrote the combined vector ({query.shape[0]} floats) to {out_file}")
    if not gallery and not collections:
        if not out_file:
            record = {"terms": parsed.describe(), "embedding": formats.floats(query)}
            run.out.text(formats.json_text(record))
        return
    found = [e for e in results[len(terms):] if e is not None]
    scores = np.stack([e.unit for e in found]) @ query if found else []
    hits = [Hit(e.input.source, e.input.kind.value, float(s)) for e, s in zip(found, scores)]
    if collections:
        with open_store(db, create=False) as store:
            for coll in collections:
                index = index_for(store, coll)
                hits += parsed.leave_out(
                    lambda n: with_times(store, coll, index.search(query, k=n)[0]), wanted(top_k, store, coll),
                    lambda hit: hit.path,
                )
    show_hits(run, sorted(hits, key=lambda h: -h.score)[: top_k or None], fmt)


def _split_gallery(
    gallery: Sequence[str], named: Sequence[str], db: Path | None
) -> "tuple[list[str], list[CollectionRecord]]":
    """Folders and files, and the collections of the --db file: those named by -c, and by
    --gallery entries that are not paths."""
    roots = [g for g in gallery if os.path.exists(g)]
    names = [g for g in gallery if not os.path.exists(g)]
    if not named and (not names or (db is None and not store_exists(None))):
        return roots + names, []  # walk reports the names as missing
    with open_store(db, create=False) as store:
        known = {c.name: c for c in store.collections()}
        chosen = [store.require(n) for n in named]
    roots += [n for n in names if n not in known]
    return roots, [known[n] for n in names if n in known] + chosen


def _gallery(run: Run, roots: Sequence[str], query: "Query") -> list:
    """Gallery inputs: every supported file under the roots, minus the query's own files
    (a query image would otherwise always rank first)."""
    from bindcli.collections.ingest import walk
    from bindcli.embed.inputs import Input

    items: list = []
    for found in walk(roots):
        if isinstance(found, Exception):
            items.append(found)
            continue
        path, kind = found
        if query.is_own(path):
            continue
        items.append(Input(str(path), run.common.as_kind or kind))  # canonical, as search shows
    return items
