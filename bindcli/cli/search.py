"""`bind search`: rank a collection by cosine similarity to a text, a file or an expression."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bindcli.cli.common import Run, command
from bindcli.cli.shared import (
    COLLECTION_OPTION, DB_OPTION, DEFAULT_COLLECTION, TOP_K_OPTION, HitsFormat, open_store,
    show_hits, wanted,
)
from bindcli.modality import Kind


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
    from bindcli.query import Query
    from bindcli.vector_index import index_for

    parsed = Query.parse(query or [], text or [])
    with open_store(db, create=False) as store:
        coll = store.require(collection)  # before loading a model for nothing
        coll.check_model(run.vectors_id, run.model.config.name)
        vector = run.query_vector(parsed)
        if vector is None:
            return  # the failed term is named on stderr (exit 1); without it there is no query
        index = index_for(store, coll)
        kinds = [m.value for m in modality or []]
        hits = parsed.leave_out(
            lambda n: index.search(vector, k=n, min_score=min_score, kinds=kinds),
            wanted(top_k, store, coll), lambda hit: hit.path,
        )
    show_hits(run, hits, fmt.value)
