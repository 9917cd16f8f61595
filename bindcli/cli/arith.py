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

from bindcli import output
from bindcli.cli.common import Run, command
from bindcli.cli.shared import HitsFormat, open_store, show_hits

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.query import Query
    from bindcli.store import Collection


@command
def arith(
    run: Run,
    expression: Annotated[Optional[list[str]], typer.Argument(
        metavar="TERM [+|- TERM]...", show_default=False,
        help="Files combined with + and - (separate words); weight a term as 0.5:file.jpg. "
        "Put -- before a term that starts with '-'.",
    )] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", show_default=False,
        help="A text term, added; 'W:text' weights it, a negative W subtracts (repeatable).",
    )] = None,
    gallery: Annotated[Optional[list[str]], typer.Option(
        "--gallery", "-g", metavar="DIR|FILE|COLLECTION", show_default=False,
        help="Where to search: folders (walked, hidden files skipped), files, or the name of "
        "a collection made by `bind index` (repeatable).",
    )] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Results to show.")] = 10,
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

    Without --gallery the combined vector is written (-o FILE.npy) or printed as JSON.

    [dim]Examples:[/dim]
      bind arith bird.jpg + 0.5:rain.wav --gallery photos/
      bind arith dog.jpg --text "-1:grass" --text snow -g photos/ -k 5
      bind arith car.jpg - 0.3:street.jpg -o car-alone.npy
    """
    import numpy as np

    from bindcli.query import Query
    from bindcli.store import Hit
    from bindcli.vector_index import index_for

    parsed = Query.parse(expression or [], text or [])
    inputs = parsed.inputs(run.common.as_kind)
    roots, collections = _split_gallery(gallery or [])
    for coll in collections:  # before embedding anything for a search that cannot run
        coll.check_model(run.model.id, run.model.config.name)
    candidates = _gallery(run, roots, parsed)
    results = run.embed(inputs + candidates, "Embedding gallery" if candidates else "Embedding")
    terms = parsed.terms
    if any(r is None for r in results[: len(terms)]):
        return  # the failed term is named on stderr (exit 1); without it there is no query
    query = parsed.vector(results[: len(terms)])
    if out_file:
        output.write_file(out_file, output.npy_bytes(query))
        run.out.note(f"wrote the combined vector ({query.shape[0]} floats) to {out_file}")
    if not gallery:
        if not out_file:
            described = [{"input": t.source, "weight": t.weight, "text": t.literal} for t in terms]
            run.out.text(output.json_text({"terms": described, "embedding": output.floats(query)}))
        return
    found = [e for e in results[len(terms):] if e is not None]
    scores = np.stack([e.unit for e in found]) @ query if found else []
    hits = [Hit(e.input.source, e.input.kind.value, float(s)) for e, s in zip(found, scores)]
    if collections:
        with open_store(None) as store:
            for coll in collections:
                index = index_for(store, coll)
                hits += parsed.leave_out(
                    lambda n: index.search(query, k=n)[0], top_k, lambda hit: hit.path
                )
    show_hits(run, sorted(hits, key=lambda h: -h.score)[:top_k], fmt.value)


def _split_gallery(gallery: Sequence[str]) -> "tuple[list[str], list[Collection]]":
    """Folders and files, and the collections named by entries that are not paths."""
    roots = [g for g in gallery if os.path.exists(g)]
    names = [g for g in gallery if not os.path.exists(g)]
    if not names:
        return roots, []
    with open_store(None) as store:
        known = {c.name: c for c in store.collections()}
    roots += [n for n in names if n not in known]  # walk reports them as missing
    return roots, [known[n] for n in names if n in known]


def _gallery(run: Run, roots: Sequence[str], query: "Query") -> list:
    """Gallery inputs: every supported file under the roots, minus the query's own files
    (a query image would otherwise always rank first)."""
    from bindcli.indexer import walk
    from bindcli.runtime import Input

    items: list = []
    for found in walk(roots):
        if isinstance(found, Exception):
            items.append(found)
            continue
        path, kind = found
        if query.is_own(path):
            continue
        shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
        items.append(Input(shown, run.common.as_kind or kind))
    return items
