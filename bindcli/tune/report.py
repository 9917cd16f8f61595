"""What an adapter did, measured: top-1 on the held-out split before and after it, by
`bind eval`'s protocol (the same templates, class directions and ranking, so `bind eval
--adapter` on that split prints the same figure), and on a second data set the user names
(`--keep`), so what it cost elsewhere is measured rather than guessed.

Pairs have no classes: their figure is retrieval top-1, each file against every partner of
the split.

Imports: see `bindcli.tune`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from bindcli.embed.inputs import Input, gather
from bindcli.errors import InputError
from bindcli.eval.accuracy import Dataset, evaluate
from bindcli.model.adapter import Adapter
from bindcli.tune.data import TuneData, split
from bindcli.tune.train import data_hash

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.modality import Kind

#: how each figure is measured, as the report says
EVAL_PROTOCOL = "zero-shot top-1 as bind eval measures it"
PAIRS_PROTOCOL = "retrieval top-1: each file against every partner of the split (an equal partner counts)"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One data set's figure without and with the adapter."""

    name: str
    n: int
    before: float
    after: float
    protocol: str
    failed: tuple[InputError, ...] = ()

    def to_json(self) -> dict:
        return {"dataset": self.name, "n": self.n, "failed": len(self.failed), "before": self.before,
                "after": self.after, "change": self.after - self.before, "protocol": self.protocol}


@dataclasses.dataclass(frozen=True)
class TuneReport:
    adapter: Adapter
    held_out: Comparison
    keep: Comparison | None = None

    def to_json(self) -> dict:
        h = self.adapter.header
        result = {
            "adapter": str(self.adapter.path), "id": self.adapter.id, "base": h.base, "tower": h.tower,
            "method": h.method, "rank": h.rank, "blocks": h.blocks, "epochs": h.epochs,
            "held_out": self.held_out.to_json(),
        }
        if self.keep is not None:
            result["keep"] = self.keep.to_json()
        return result


def with_adapter(base: "Embedder", adapter: Adapter) -> "Embedder":
    """An embedder like `base` (its model, placement, loading options and cache) with the
    adapter on: the untuned towers' vectors come from the same cache entries."""
    from bindcli.embed.embedder import Embedder

    adapter.check_base(base.model_id)
    return Embedder(
        base.config, base.weights, base.placement, batch_size=base.batch_size, workers=base.workers,
        options=base.options, cache=base.cache, known_id=base.model_id, adapter=adapter,
    )


def held_out_of(adapter: Adapter, data: TuneData) -> TuneData:
    """The part of `data` the adapter was not trained on: its held-out split when `data` is
    the data it was tuned on with `--val FRACTION` (the header says how it was drawn), else
    all of `data`."""
    drawn = adapter.header.split
    if "fraction" in drawn and drawn.get("of") == data_hash(data):
        return split(data, float(drawn["fraction"]), int(drawn["seed"]))[1]
    return data


def compare(
    base: "Embedder",
    tuned: "Embedder",
    data: "TuneData | Dataset",
    templates: tuple[str, ...] = (),
    *,
    as_kind: "Kind | None" = None,
    progress: Callable[[int], None] = lambda n: None,
) -> Comparison:
    """`data`'s figure with `base` and with `tuned`: eval's top-1 for labelled data, retrieval
    top-1 for pairs."""
    if isinstance(data, TuneData) and not data.by_class:
        before, failed = _pairs_top1(base, data, progress)
        after, _ = _pairs_top1(tuned, data, progress)
        return Comparison(data.name, len(data.examples) - len(failed), before, after, PAIRS_PROTOCOL, failed)
    dataset = data.dataset() if isinstance(data, TuneData) else data
    reports = [evaluate(e, dataset, templates, as_kind=as_kind, progress=progress) for e in (base, tuned)]
    return Comparison(dataset.name, reports[0].total.n, reports[0].figures()["top1"],
                      reports[1].figures()["top1"], EVAL_PROTOCOL, tuple(reports[0].failed))


def _pairs_top1(
    embedder: "Embedder", data: TuneData, progress: Callable[[int], None]
) -> tuple[float, tuple[InputError, ...]]:
    from bindcli.embed.stages import Embedding

    files = embedder.embed(gather([e.path for e in data.examples]), progress=progress)
    partners = embedder.embed([Input.text(e.target) if e.text else e.target for e in data.examples])
    failed = tuple(r for r in files + partners if isinstance(r, InputError))
    kept = [n for n, (f, p) in enumerate(zip(files, partners)) if isinstance(f, Embedding) and isinstance(p, Embedding)]
    if not kept:
        return 0.0, failed
    queries = np.stack([files[n].unit for n in kept])  # type: ignore[union-attr]
    keys = np.stack([partners[n].unit for n in kept])  # type: ignore[union-attr]
    targets = np.array([data.examples[n].target for n in kept])
    return float(np.mean(targets[np.argmax(queries @ keys.T, axis=1)] == targets)), failed
