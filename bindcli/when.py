"""When in a recording a query is: windows of time scored against the query's vector, the
best ranges refined at their edges, and a timeline picture of the scores.

`bind locate --in walk.mp4` asks it. The file is read in windows (`bindcli.windows`) through
the embedder's segment pipeline; each window's cosine to the query is its score; the best
windows not overlapping a better one by more than half become ranges, and each range's edges
are moved in and out, a step halved every round, while that scores better (as `bindcli.locate`
refines an image's boxes): a range comes to fit the moment, not the window grid.

Imports: bindcli._util, bindcli.errors, bindcli.vectors, bindcli.media, bindcli.embed,
bindcli.windows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli._util import extras
from bindcli._util.chunks import batched
from bindcli.errors import InputError, UsageError
from bindcli.vectors import normalise
from bindcli.windows import EPSILON, Reading, Window

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.inputs import Input

#: ranges overlapping a better one by more than this share of the shorter are suppressed
OVERLAP = 0.5
#: refinement rounds; each moves an edge by this fraction of the window length, halved every round
REFINE_ROUNDS = 3
REFINE_STEP = 0.25


@dataclasses.dataclass(frozen=True)
class Moment:
    """A range of a recording, in seconds, and its score."""

    start: float
    end: float
    score: float


@dataclasses.dataclass
class Timeline:
    """One recording's answer: every window's score, and the best ranges, best first."""

    source: str
    reading: str
    windows: np.ndarray  # (n, 2) start, end
    scores: np.ndarray  # (n,)
    moments: list[Moment]


def _overlap(a: Moment, b: Moment) -> float:
    shared = min(a.end, b.end) - max(a.start, b.start)
    return max(shared, 0.0) / max(min(a.end - a.start, b.end - b.start), EPSILON)


def _suppressed(moments: Sequence[Moment], k: int, overlap: float = OVERLAP) -> list[Moment]:
    """The best `k` of `moments`, each overlapping a better kept one by at most `overlap`."""
    kept: list[Moment] = []
    for m in sorted(moments, key=lambda m: -m.score):
        if all(_overlap(m, other) <= overlap + EPSILON for other in kept):
            kept.append(m)
        if len(kept) == k:
            break
    return kept


class _Scorer:
    """Scores stretches of one file against the query through the reading's tower,
    remembering every score."""

    def __init__(self, embedder: "Embedder", inp: "Input", query: np.ndarray) -> None:
        self.embedder, self.inp, self.query = embedder, inp, normalise(query)
        self.scores: dict[tuple[float, float], float] = {}

    def __call__(self, spans: Sequence[tuple[float, float]]) -> list[Moment]:
        from bindcli.embed import stages
        from bindcli.media import MediaOptions
        from bindcli.media.segments import read_span

        todo = [s for s in dict.fromkeys(spans) if s not in self.scores]
        batches: dict[stages.BatchKey, list[tuple[tuple[float, float], object]]] = {}
        for start, end in todo:
            tensor = read_span(self.inp.source, self.inp.kind, self.inp.reading, start, end,  # type: ignore[arg-type]
                               self.embedder.options or MediaOptions())
            batches.setdefault(stages.batch_key(self.inp.kind, tensor, self.inp.reading), []).append(((start, end), tensor))
        for key, batch in batches.items():
            for part in batched(batch, self.embedder.batch_size):
                vectors = normalise(stages.encode(self.embedder.encoder, key, [t for _, t in part]))  # type: ignore[misc]
                self.scores.update((span, float(v @ self.query)) for (span, _), v in zip(part, vectors))
        return [Moment(a, b, self.scores[(a, b)]) for a, b in spans]


def _moves(m: Moment, step: float, shortest: float, duration: float) -> list[tuple[float, float]]:
    a, b = m.start, m.end
    moved = [(a - step, b), (a + step, b), (a, b - step), (a, b + step), (a - step, b + step), (a + step, b - step)]
    return list(dict.fromkeys(
        (max(0.0, x), min(duration, y)) for x, y in moved
        if min(duration, y) - max(0.0, x) >= shortest - EPSILON and (max(0.0, x), min(duration, y)) != (a, b)
    ))


def refine(score: _Scorer, moment: Moment, step: float, shortest: float, duration: float,
           rounds: int = REFINE_ROUNDS) -> Moment:
    """Coordinate ascent on the range's edges: each round tries each edge moved in and out
    (and the range grown and shrunk), keeps the best, and halves the step."""
    for n in range(rounds):
        candidates = _moves(moment, step / 2**n, shortest, duration)
        if not candidates:
            break
        best = max(score(candidates), key=lambda m: m.score)
        if best.score > moment.score:
            moment = best
    return moment


def when(
    embedder: "Embedder", source: str | Path, query: np.ndarray, window: Window,
    reading: Reading | None = None, *, k: int = 5, min_score: float | None = None,
    refine_edges: bool = True,
) -> Timeline:
    """Where in `source` (audio, video or IMU) the query vector is: every window's score and
    the `k` best ranges, refined, best first. InputError when the file cannot be read so."""
    from bindcli.embed.inputs import Input

    inp = Input.file(source).in_segments(window, reading)
    window.check(inp.reading)  # type: ignore[arg-type]
    [found] = embedder.embed([inp])
    if isinstance(found, InputError):
        raise found
    times, scores = found.times, found.unit @ normalise(np.asarray(query, np.float32))
    score = _Scorer(embedder, inp, query)
    score.scores.update({(float(a), float(b)): float(s) for (a, b), s in zip(times, scores)})
    # windows apart from each other, so refined ranges are not the same moment grown twice
    coarse = _suppressed([Moment(float(a), float(b), float(s)) for (a, b), s in zip(times, scores)], k, 0.0)
    duration = float(times[:, 1].max())
    shortest = max(inp.reading.shortest, min(window.length, duration))  # type: ignore[union-attr]
    if refine_edges:
        coarse = [refine(score, m, REFINE_STEP * window.length, shortest, duration) for m in coarse]
    moments = _suppressed(coarse, k)
    if min_score is not None:
        moments = [m for m in moments if m.score >= min_score]
    return Timeline(str(source), inp.reading.value, times, scores, moments)  # type: ignore[union-attr]


def check_picture(path: Path) -> None:
    """Refuse, before any work, a timeline picture this module cannot draw."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: a timeline is drawn as PNG; name it FILE.png")
    if extras.PLOT.missing():
        raise UsageError(extras.PLOT.hint(needed_by="a timeline picture"))


def draw_timeline(timeline: Timeline, path: Path) -> None:
    """The score of every window over time (a line at each window's middle), the best
    ranges shaded and labelled, as a PNG written to `path` (atomically)."""
    from bindcli._util import atomic
    from bindcli.windows import clock

    check_picture(path)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    middles = timeline.windows.mean(axis=1)
    figure, axes = pyplot.subplots(figsize=(10, 3), dpi=100)
    axes.plot(middles, timeline.scores, color="#1f77b4", linewidth=1)
    for n, m in enumerate(timeline.moments, 1):
        axes.axvspan(m.start, m.end, color="#d62728", alpha=0.25)
        axes.annotate(f"{n}: {clock(m.start)} ({m.score:.2f})", (m.start, m.score), fontsize=8,
                      xytext=(2, 4), textcoords="offset points")
    ticks = axes.get_xticks()
    axes.set_xticks(ticks)
    axes.set_xticklabels([clock(max(t, 0.0)) for t in ticks], fontsize=8)
    axes.set_xlim(0, float(timeline.windows[:, 1].max()))
    axes.set_xlabel("time")
    axes.set_ylabel("cosine to the query")
    axes.set_title(f"{Path(timeline.source).name} ({timeline.reading})", fontsize=10)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    pyplot.close(figure)
