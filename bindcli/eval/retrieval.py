"""Retrieval: how well queries (captions, class names, files) find their targets (clips,
videos) among all targets by cosine, in both directions: recall at 1, 5 and 10, median and
mean rank of the first right target, and mean average precision (which counts every right
target, where a query has several, as AudioSet's labels and Clotho's captions do).

The similarity matrix is computed a block of rows at a time (`BLOCK_SCORES` scores), so a
10k x 10k evaluation never holds 10^8 scores; each row's ranks come from that row alone.
Ties count in the query's favour: a right target is outranked only by a strictly higher
wrong one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli.errors import InputError
from bindcli.eval import tables
from bindcli.eval.accuracy import spread
from bindcli.modality import Kind
from bindcli.vectors import normalise

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder

#: scores held at once while ranking (a block of rows of the similarity matrix): 64 MiB
BLOCK_SCORES = 1 << 24
#: the recalls reported, R@K
RECALL_AT = (1, 5, 10)
#: hits listed for each missed query (`--errors`)
TOP_HITS = 5


# --- the figures, from vectors --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ranks:
    """Per query: the rank of its first right target (1 = first) and its average precision;
    `misses` are the queries whose first hit is wrong, each (query, its best hits, their scores)."""

    first: np.ndarray
    precision: np.ndarray
    misses: tuple[tuple[int, np.ndarray, np.ndarray], ...] = ()

    def figures(self) -> dict[str, float]:
        """R@K (fractions), median and mean rank, mAP; `n` the queries counted."""
        n = len(self.first)
        if not n:
            return {"n": 0}
        return {
            "n": n, **{f"r{k}": float(np.mean(self.first <= k)) for k in RECALL_AT},
            "median_rank": float(np.median(self.first)), "mean_rank": float(np.mean(self.first)),
            "map": float(np.mean(self.precision)),
        }


def rank(queries: np.ndarray, targets: np.ndarray, relevant: Sequence[Sequence[int]]) -> Ranks:
    """Ranks of `targets` (unit rows) for each of `queries` (unit rows), `relevant[i]` the
    targets right for query i (at least one each), a block of queries at a time."""
    queries, targets = np.asarray(queries, np.float32), np.asarray(targets, np.float32)
    block = max(1, BLOCK_SCORES // max(len(targets), 1))
    first, precision = np.zeros(len(queries)), np.zeros(len(queries))
    misses: list[tuple[int, np.ndarray, np.ndarray]] = []
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ targets.T
        rows = range(start, start + len(scores))
        single = np.array([len(relevant[i]) == 1 for i in rows])
        if single.any():  # one right target (a caption's clip): its rank is a count
            at = np.flatnonzero(single)
            hit = scores[at, [relevant[start + r][0] for r in at]]
            first[start + at] = 1 + np.count_nonzero(scores[at] > hit[:, None], axis=1)
            precision[start + at] = 1 / first[start + at]
        for r in np.flatnonzero(~single):
            first[start + r], precision[start + r] = _several(scores[r], relevant[start + r])
        wrong = np.flatnonzero(first[start:start + len(scores)] > 1)
        if wrong.size:
            k = min(TOP_HITS, scores.shape[1])
            best = np.argpartition(-scores[wrong], k - 1, axis=1)[:, :k]
            for r, cut in zip(wrong, best):
                order = cut[np.lexsort((cut, -scores[r, cut]))]  # best first, ties by position
                misses.append((start + int(r), order, scores[r, order]))
    return Ranks(first, precision, tuple(misses))


def _several(row: np.ndarray, right: Sequence[int]) -> tuple[int, float]:
    """The first right target's rank and the average precision, for several right targets:
    each is outranked by the wrong targets strictly above it."""
    hits = np.sort(row[np.asarray(right, np.int64)])[::-1]
    above = len(row) - np.searchsorted(np.sort(row), hits, side="right")
    right_above = len(hits) - np.searchsorted(hits[::-1], hits, side="right")
    position = above - right_above + np.arange(1, len(hits) + 1)
    return int(position[0]), float(np.mean(np.arange(1, len(hits) + 1) / position))


def reverse(relevant: Sequence[Sequence[int]], targets: int) -> list[list[int]]:
    """The relevance of the other direction: for each target, the queries it is right for."""
    back: list[list[int]] = [[] for _ in range(targets)]
    for query, rights in enumerate(relevant):
        for target in rights:
            back[target].append(query)
    return back


# --- what is evaluated -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Side:
    """The queries or the targets: files (`kind` says how they load, else their extension),
    texts, or class names (`templates`: each class's vector is the mean direction of its
    prompts, `bind classify`'s, for the other side's kind)."""

    name: str  # what the figures call it: "text", "audio", "video"
    items: tuple[str, ...]
    text: bool = False
    kind: Kind | None = None
    templates: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Retrieval:
    """Queries, targets and which targets are right for each query; a preset adds the
    paper's figures (direction -> metric -> %), its protocol, and `sound`: each video target
    also scored as the sum of its frames' and its sound's unit vectors (MSR-VTT's "with audio")."""

    name: str
    queries: Side
    targets: Side
    relevant: tuple[tuple[int, ...], ...]
    paper: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    protocol: str | None = None
    comparable: bool = True  # False: the paper's figures are printed, marked not comparable
    sound: bool = False

    @property
    def inputs(self) -> int:
        """How many things are embedded (class names count once, whatever their prompts)."""
        files = len(self.targets.items) * (2 if self.sound else 1)
        return files + (0 if self.queries.templates else len(self.queries.items))

    def directions(self) -> list[str]:
        """The directions measured, each `<from>_to_<to>`."""
        q, t = self.queries.name, self.targets.name
        views = [t, f"{t}+audio"] if self.sound else [t]
        return [d for v in views for d in (f"{q}_to_{v}", f"{v}_to_{q}")]


def read_pairs(path: str | Path) -> Retrieval:
    """A CSV (or `.tsv`) file of `query,target` rows, paths relative to the file (a
    `query_text` or `target_text` column holds texts instead); rows with the same query are
    one query with several targets, rows with the same target one target of several queries."""
    path = Path(path)
    queries: dict[str, int] = {}
    targets: dict[str, int] = {}
    pairs: dict[int, list[int]] = {}
    rows = tables.pairs(path, ("query", "target"))
    for row in rows:
        q = queries.setdefault(row["query"][0], len(queries))
        t = targets.setdefault(row["target"][0], len(targets))
        if t not in pairs.setdefault(q, []):
            pairs[q].append(t)
    return Retrieval(
        path.stem, Side("query", tuple(queries), text=rows[0]["query"][1]),
        Side("target", tuple(targets), text=rows[0]["target"][1]),
        tuple(tuple(pairs[q]) for q in range(len(queries))),
    )


def subset(data: Retrieval, limit: int | None) -> Retrieval:
    """At most `limit` targets, spread evenly over them, and the queries right for one of
    them (with only those targets): a quick estimate, not comparable with the paper's."""
    if not limit or limit >= len(data.targets.items):
        return data
    keep = spread(list(range(len(data.targets.items))), limit)
    new = {old: n for n, old in enumerate(keep)}
    queries, relevant = [], []
    for q, rights in enumerate(data.relevant):
        kept = tuple(new[t] for t in rights if t in new)
        if kept:
            queries.append(q)
            relevant.append(kept)
    part = f"a subset, {limit} of {len(data.targets.items)} {data.targets.name} items"
    if data.paper:
        part += ": not comparable with the paper's figures"
    return dataclasses.replace(
        data,
        queries=_pick(data.queries, queries), targets=_pick(data.targets, keep), relevant=tuple(relevant),
        protocol=f"{data.protocol}; {part}" if data.protocol else part, comparable=False,
    )


def _pick(side: Side, keep: Sequence[int]) -> Side:
    return dataclasses.replace(side, items=tuple(side.items[i] for i in keep))


# --- a run ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Miss:
    """A query whose first hit is wrong: the rank of its first right target and its best
    hits, (item, cosine, right?)."""

    direction: str
    query: str
    rank: int
    top: tuple[tuple[str, float, bool], ...]


@dataclasses.dataclass
class Report:
    """Each direction's figures, the failures and the misses of a run."""

    data: Retrieval
    figures: dict[str, dict[str, float]]
    counts: dict[str, int]  # queries and targets scored
    failed: list[InputError]
    misses: list[Miss]

    def to_json(self) -> dict:
        result: dict = {
            "dataset": self.data.name, "task": "retrieval", **self.counts, "failed": len(self.failed),
            "directions": self.figures,
        }
        if self.data.paper:
            result["paper"] = {d: {m: v / 100 for m, v in ms.items()} for d, ms in self.data.paper.items()}
            result["comparable"] = self.data.comparable
        if self.data.protocol is not None:
            result["protocol"] = self.data.protocol
        return result


def evaluate(
    embedder: "Embedder", data: Retrieval, *, as_kind: Kind | str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> Report:
    """Embeds both sides (through the embedder's cache; files as `as_kind` where given, else
    as their side says or their extension), leaves out what failed, and ranks in every
    direction."""
    from bindcli.embed.inputs import gather, text_inputs
    from bindcli.eval.accuracy import class_directions
    from bindcli.zeroshot import templates_for

    def inputs(side: Side, kind: Kind | str | None) -> list:
        return text_inputs(side.items) if side.text else gather(side.items, as_kind=kind or side.kind)

    asked = [] if data.queries.templates else inputs(data.queries, as_kind)
    spans = {"queries": (0, len(asked))}
    for part, kind in (("targets", as_kind), ("sound", Kind.AUDIO))[: 2 if data.sound else 1]:
        made = inputs(data.targets, kind)
        spans[part] = (len(asked), len(asked) + len(made))
        asked += made
    vectors: list[np.ndarray | None] = [None] * len(asked)
    failed: list[InputError] = []
    for slot, result in embedder.stream(asked, progress):
        if isinstance(result, InputError):
            failed.append(result)
        else:
            vectors[slot] = result.unit
    if data.queries.templates:
        kind = data.targets.kind or Kind.TEXT
        by_kind = templates_for({kind}, data.queries.templates)
        classes = {name: (name,) for name in data.queries.items}
        query_vectors = list(class_directions(embedder, classes, by_kind)[kind])
    else:
        query_vectors = vectors[slice(*spans["queries"])]
    views = {data.targets.name: vectors[slice(*spans["targets"])]}
    if data.sound:
        frames, sounds = views[data.targets.name], vectors[slice(*spans["sound"])]
        views[f"{data.targets.name}+audio"] = [
            None if f is None or s is None else normalise(f + s) for f, s in zip(frames, sounds)
        ]
    usable = [all(v[t] is not None for v in views.values()) for t in range(len(data.targets.items))]
    # a query scored only against targets that could be embedded; one left with none drops out
    pairs = [
        (q, [t for t in rights if usable[t]]) for q, rights in enumerate(data.relevant)
        if query_vectors[q] is not None
    ]
    pairs = [(q, rights) for q, rights in pairs if rights]
    kept_targets = [t for t in range(len(usable)) if usable[t]]
    renumber = {t: n for n, t in enumerate(kept_targets)}
    kept_queries = [q for q, _ in pairs]
    relevant = [[renumber[t] for t in rights] for _, rights in pairs]
    back = reverse(relevant, len(kept_targets))
    # a target no kept query is right for has no rank of its own, but stays in the gallery
    ranked_back = [t for t in range(len(kept_targets)) if back[t]]
    Q = np.stack([query_vectors[q] for q in kept_queries]) if kept_queries else np.zeros((0, 1), np.float32)
    figures: dict[str, dict[str, float]] = {}
    misses: list[Miss] = []
    names = (data.queries.items, data.targets.items)
    for view, rows in views.items():
        T = np.stack([rows[t] for t in kept_targets]) if kept_targets else np.zeros((0, Q.shape[1]), np.float32)
        forward = f"{data.queries.name}_to_{view}"
        backward = f"{view}_to_{data.queries.name}"
        there = rank(Q, T, relevant) if kept_queries else Ranks(np.zeros(0), np.zeros(0))
        home = rank(T[ranked_back], Q, [back[t] for t in ranked_back]) if kept_queries else there
        figures[forward], figures[backward] = there.figures(), home.figures()
        misses += _misses(forward, there, kept_queries, kept_targets, relevant, *names)
        misses += _misses(
            backward, home, [kept_targets[t] for t in ranked_back], kept_queries,
            [back[t] for t in ranked_back], names[1], names[0],
        )
    failed.sort(key=lambda e: e.source)
    counts = {"queries": len(kept_queries), "targets": len(kept_targets)}
    return Report(data, figures, counts, failed, misses)


def _misses(
    direction: str, ranks: Ranks, rows: Sequence[int], columns: Sequence[int],
    relevant: Sequence[Sequence[int]], row_names: Sequence[str], column_names: Sequence[str],
) -> list[Miss]:
    """`ranks.misses` named: `rows`/`columns` map the ranked rows and columns to items."""
    return [
        Miss(direction, row_names[rows[i]], int(ranks.first[i]), tuple(
            (column_names[columns[c]], float(s), int(c) in relevant[i]) for c, s in zip(best, scores)
        ))
        for i, best, scores in ranks.misses
    ]
