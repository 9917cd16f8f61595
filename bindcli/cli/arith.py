"""`bind arith`: embedding arithmetic (`bird.wav + 0.5:fruit.jpg - cage.jpg`) and retrieval.

The combination is the paper's: each term's vector normalised, weighted, summed, and the sum
normalised again. The expression syntax is rclip's: `+` and `-` are separate words, a weight
prefixes a term as `W:term`. Click reads any word starting with `-` and longer than one
character as an option, so a term that itself starts with `-` (a negative weight such as
`-0.5:x.jpg`) must come after `--`; `- 0.5:x.jpg` needs no such care.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli import output
from bindcli.cli.common import Run, command
from bindcli.cli.index import open_store
from bindcli.cli.search import HitsFormat, show_hits

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.store import Collection

OPERATORS = {"+": 1.0, "-": -1.0}


@dataclasses.dataclass(frozen=True)
class Term:
    """One term of an expression: a file or a text, with its signed weight."""

    source: str
    weight: float = 1.0
    literal: bool = False


def split_weight(token: str) -> tuple[float, str]:
    """`0.5:fruit.jpg` -> (0.5, "fruit.jpg"); a token without a numeric prefix has weight 1."""
    head, sep, rest = token.partition(":")
    if sep and rest:
        try:
            return float(head), rest
        except ValueError:
            pass
    return 1.0, token


def parse_expression(tokens: Sequence[str], texts: Sequence[str] = ()) -> list[Term]:
    """File terms from `TERM [+|- TERM]...` (a missing operator means +), then the `--text`
    terms, which take the same `W:` prefix (a negative weight subtracts)."""
    terms: list[Term] = []
    sign: float | None = None
    for token in tokens:
        if token in OPERATORS:
            if sign is not None:
                raise typer.BadParameter(f"two operators in a row before {token!r}", param_hint="TERM")
            sign = OPERATORS[token]
            continue
        weight, source = (1.0, token) if Path(token).exists() else split_weight(token)
        terms.append(Term(source, (1.0 if sign is None else sign) * weight))
        sign = None
    if sign is not None:
        raise typer.BadParameter("the expression ends with an operator", param_hint="TERM")
    for text in texts:
        weight, source = split_weight(text)
        terms.append(Term(source, weight, literal=True))
    if not terms:
        raise typer.BadParameter("give at least one TERM or --text", param_hint="TERM")
    return terms


def combine(vectors: "Sequence[np.ndarray]", weights: Sequence[float]) -> "np.ndarray":
    """normalise each, weighted sum, normalise: the paper's embedding arithmetic."""
    import numpy as np

    from bindcli.errors import BindError
    from bindcli.runtime import normalise

    total = np.sum([w * normalise(v) for v, w in zip(vectors, weights)], axis=0)
    if not np.linalg.norm(total) > 1e-6:
        raise BindError("the terms cancel out: their weighted sum is the zero vector")
    return normalise(total)


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

    from bindcli.store import Hit

    terms = parse_expression(expression or [], text or [])
    files = [t for t in terms if not t.literal]
    inputs = run.inputs([t.source for t in files], [t.source for t in terms if t.literal])
    roots, collections = _split_gallery(gallery or [])
    candidates = _gallery(run, roots, {os.path.realpath(t.source) for t in files})
    results = run.embed(inputs + candidates, "Embedding gallery" if candidates else "Embedding")
    if any(r is None for r in results[: len(terms)]):
        return  # the failed term is named on stderr (exit 1); without it there is no query
    query = combine([r.raw for r in results[: len(terms)]], [t.weight for t in terms])
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
        from bindcli.cli.index import require_model

        with open_store(None) as store:
            for coll in collections:
                require_model(coll, run.embedder)
                hits += store.search(coll, query, k=top_k,
                                     exclude={os.path.abspath(t.source) for t in files})
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


def _gallery(run: Run, roots: Sequence[str], exclude: set[str]) -> list:
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
        if os.path.realpath(path) in exclude:
            continue
        shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
        items.append(Input(shown, run.common.as_kind or kind))
    return items
