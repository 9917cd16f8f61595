"""Query expressions (`bird.wav + 0.5:fruit.jpg - cage.jpg --text snow`) and their vectors.

The syntax is rclip's: `+` and `-` are separate words, a weight prefixes a term as `W:term`,
a missing operator means `+`. A weight is a finite number, a colon and then neither a space
nor a digit (so `10:30 train` and `16:9` are texts); a text that would read as weighted
starts with a backslash, which is dropped (`\\0.5:dog` is the text `0.5:dog`, `0.5:\\3 dogs` weighs
`3 dogs`). The combination is the ImageBind paper's (`vectors.combine`).
A file term may be a moment of the file, `talk.mp4@12:31-12:36`: only that stretch is
embedded (a moment is not left out of results, so other moments of its file are found).
`arith`, `search` and anything else that takes a query share this, including one rule for
leaving the query's own files out of its results: two paths are the same file when their
canonical forms (`bindcli._util.paths.canonical`) are.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.embed,
bindcli.windows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from bindcli._util.paths import canonical
from bindcli.errors import InputError, QueryError
from bindcli.vectors import combine
from bindcli.windows import parse_moment

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.inputs import Input
    from bindcli.embed.stages import Embedding, Segments
    from bindcli.modality import Kind

OPERATORS = {"+": 1.0, "-": -1.0}
#: `W:` then a character that is no space and no digit; `nan` and `inf` are caught to refuse them
_WEIGHTED = re.compile(
    r"([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|nan|inf(?:inity)?)):(.+)",
    re.IGNORECASE | re.DOTALL,
)
ESCAPE = "\\"

_Hit = TypeVar("_Hit")


@dataclasses.dataclass(frozen=True)
class Term:
    """One term of an expression: a file or a text, with its signed weight."""

    source: str
    weight: float = 1.0
    literal: bool = False  # `source` is a text, not a path
    #: a moment of the file (`talk.mp4@12:31-12:36`), in seconds: only that stretch is embedded
    moment: tuple[float, float] | None = None


def split_weight(token: str, is_file: Callable[[str], bool] | None = None) -> tuple[float, str]:
    """`0.5:fruit.jpg` -> (0.5, "fruit.jpg"); a token without a weight has weight 1.

    What follows the colon must start with neither a space nor a digit, unless `is_file` says
    it names a file (`0.5:2.jpg`). A weight that is not finite raises QueryError.
    """
    match = _WEIGHTED.fullmatch(token)
    if not match:
        return 1.0, token
    head, rest = match.groups()
    if rest[0].isspace() or (rest[0].isdigit() and not (is_file and is_file(rest))):
        return 1.0, token
    weight = float(head)
    if not math.isfinite(weight):
        raise QueryError(
            f"{token!r}: a weight must be a finite number (for a text that starts so, write "
            f"{ESCAPE}{token})"
        )
    return weight, rest


def split_text(text: str) -> tuple[float, str]:
    """A `--text` term's weight and text: as `split_weight`, then one leading backslash, which
    marks the rest as the text itself, is dropped."""
    weight, rest = (1.0, text) if text.startswith(ESCAPE) else split_weight(text)
    return weight, rest.removeprefix(ESCAPE)


@dataclasses.dataclass(frozen=True)
class Query:
    """A parsed expression: file terms first, then text terms (the order inputs are built in)."""

    terms: tuple[Term, ...]

    @classmethod
    def parse(cls, tokens: Sequence[str] = (), texts: Sequence[str] = ()) -> "Query":
        """File terms from `TERM [+|- TERM]...`, then the `--text` terms, which take the same
        `W:` prefix (a negative weight subtracts) and the backslash escape. A token naming an
        existing file is a file even if it looks weighted (`1:2.jpg`)."""
        terms: list[Term] = []
        sign: float | None = None
        for token in tokens:
            if token in OPERATORS:
                if sign is not None:
                    raise QueryError(f"two operators in a row before {token!r}")
                sign = OPERATORS[token]
                continue
            exists = os.path.lexists
            weight, source = (1.0, token) if exists(token) else split_weight(token, exists)
            moment = None if exists(source) else parse_moment(source)
            if moment is not None:
                source = moment[0]
            terms.append(Term(source, (1.0 if sign is None else sign) * weight,
                              moment=moment[1:] if moment is not None else None))
            sign = None
        if sign is not None:
            raise QueryError("the expression ends with an operator")
        for text in texts:
            weight, source = split_text(text)
            terms.append(Term(source, weight, literal=True))
        if not terms:
            raise QueryError("give at least one TERM or --text")
        return cls(tuple(terms))

    def describe(self) -> list[dict]:
        """The terms as JSON-ready records: what `arith` prints and a generated PNG keeps."""
        return [
            {"input": t.source, "weight": t.weight, "text": t.literal,
             **({"start": t.moment[0], "end": t.moment[1]} if t.moment else {})}
            for t in self.terms
        ]

    @property
    def files(self) -> list[str]:
        return [t.source for t in self.terms if not t.literal]

    @property
    def texts(self) -> list[str]:
        return [t.source for t in self.terms if t.literal]

    def inputs(self, as_kind: "Kind | str | None" = None) -> "list[Input | InputError]":
        """One input per term, in term order (a moment of a file as one segment of it)."""
        from bindcli.embed.inputs import Input, gather

        found = gather(self.files, self.texts, as_kind)
        for n, term in enumerate(self.terms):
            if term.moment is not None and not isinstance(found[n], InputError):
                try:
                    found[n] = Input.moment(term.source, *term.moment)
                except InputError as exc:
                    found[n] = exc
        return found

    def vector(self, embeddings: "Sequence[Embedding | Segments]") -> np.ndarray:
        """The combined unit vector from the terms' embeddings (in term order); a moment's
        is its one segment's."""
        from bindcli.embed.stages import Segments

        raws = [e.parts[0].raw if isinstance(e, Segments) else e.raw for e in embeddings]
        return combine(raws, [t.weight for t in self.terms])

    def embed(self, embedder: "Embedder", as_kind: "Kind | str | None" = None) -> np.ndarray:
        """The query's vector; raises the first term's InputError if any term is unusable."""
        results = embedder.embed(self.inputs(as_kind))
        for result in results:
            if isinstance(result, InputError):
                raise result
        return self.vector(results)  # type: ignore[arg-type]

    @functools.cached_property
    def own_files(self) -> frozenset[str]:
        """The real paths of the query's files: what its results must leave out."""
        return frozenset(str(canonical(t.source)) for t in self.terms if not t.literal and t.moment is None)

    def is_own(self, path: str | Path) -> bool:
        return str(canonical(path)) in self.own_files

    def leave_out(
        self, search: Callable[[int], Sequence[_Hit]], k: int, path_of: Callable[[_Hit], str]
    ) -> list[_Hit]:
        """The `k` best results of `search(n)` (which returns its n best) that are not the
        query's own files, asking for more when some of the first were."""
        return leave_out_each([self.own_files], lambda n: [search(n)], k, path_of)[0]


def leave_out_each(
    owns: Sequence[frozenset[str]],
    search: Callable[[int], Sequence[Sequence[_Hit]]],
    k: int,
    path_of: Callable[[_Hit], str],
) -> list[list[_Hit]]:
    """For a batch of queries: per query, the `k` best of `search(n)` (each query's n best,
    in one call) that are not among that query's own files (`owns`: canonical paths)."""
    want = k + max((len(own) for own in owns), default=0)
    while True:
        batches = search(want)
        kept = [
            [h for h in hits if not own or str(canonical(path_of(h))) not in own]
            for hits, own in zip(batches, owns)
        ]
        if all(len(k_) >= k or len(h) < want for k_, h in zip(kept, batches)):
            return [hits[:k] for hits in kept]
        want *= 2
