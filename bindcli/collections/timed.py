"""Search answers with times: a segment item's hit carries its window, and hits can be
grouped by file (the best window of each, widened over the hits beside it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from bindcli.collections.store import CollectionRecord, Hit, Store

#: how `search` groups hits: each segment on its own, or one per file
GROUPINGS = ("segment", "file")
#: windows closer than this (seconds) touch
_TOUCH = 1e-6


def with_times(store: Store, collection: CollectionRecord, hits: Sequence[Hit]) -> list[Hit]:
    """`hits` with each segment's window (`start`, `end`) filled in from the store."""
    times = store.times(collection, (h.id for h in hits if h.id is not None))
    return [
        dataclasses.replace(h, start=times[h.id][0], end=times[h.id][1]) if h.id in times else h
        for h in hits
    ]


def by_file(hits: Sequence[Hit], near: int | None = None) -> list[Hit]:
    """The best hit of each file, best first; a segment's range widened over the hits of its
    file among the first `near` (default all) whose windows touch it, one after another
    (adjacent windows that scored well merge into one range)."""
    best: dict[str, Hit] = {}
    for hit in hits:
        if hit.path not in best or hit.score > best[hit.path].score:
            best[hit.path] = hit
    merged = []
    for path, top in best.items():
        if top.start is None:
            merged.append(top)
            continue
        start, end = top.start, top.end
        windows = sorted((h.start, h.end) for h in hits[:near] if h.path == path and h.start is not None)
        grew = True
        while grew:
            grew = False
            for a, b in windows:
                if a <= end + _TOUCH and b >= start - _TOUCH and (a < start or b > end):
                    start, end, grew = min(a, start), max(b, end), True
        merged.append(dataclasses.replace(top, start=start, end=end))
    return sorted(merged, key=lambda h: -h.score)


def grouped_search(search: Callable[[int], list[list[Hit]]]) -> Callable[[int], list[list[Hit]]]:
    """`search` grouped `by_file`: for n results per query, as many hits are read as it takes
    to find n files (or all there are); windows merge among the first 4n (at least 16) hits."""

    def found(n: int) -> list[list[Hit]]:
        near = wanted = max(4 * n, 16)
        while True:
            raw = search(wanted)
            groups = [by_file(hits, near) for hits in raw]
            if all(len(g) >= n or len(r) < wanted for g, r in zip(groups, raw)):
                return [g[:n] for g in groups]
            wanted *= 2

    return found
