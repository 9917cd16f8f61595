"""Zero-shot accuracy on a labelled dataset: what `bind eval` computes.

Items stream through the embedder and are scored as they arrive, so a run holds the class
directions, a confusion matrix and the misclassified items, never the dataset's vectors. Each
item is ranked exactly as `bindcli.zeroshot` ranks it for `bind classify` (same templates,
same directions), so eval's top-1 is classify's first label. A class may have several names;
its score is the best of theirs, as the ImageBind paper scores NYU-D and LLVIP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli._util.chunks import batched
from bindcli.errors import InputError, UsageError
from bindcli.eval import tables
from bindcli.modality import Kind
from bindcli.vectors import top_k

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder

#: names embedded at a time while class directions are built (bounds the prompt vectors held)
NAMES_PER_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class Item:
    """One labelled file; `fold` groups items a preset reports apart (ESC-50's folds)."""

    path: str
    label: str
    fold: int | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Labelled files and their classes: label -> the names its prompts are made of."""

    name: str
    items: tuple[Item, ...]
    classes: Mapping[str, tuple[str, ...]]
    templates: tuple[str, ...] = ()  # a preset's protocol; empty: each modality's own
    paper: float | None = None  # the ImageBind paper's top-1 (%), for a preset
    kind: Kind | None = None  # how every file loads (LLVIP's .jpg crops are thermal), else by extension
    protocol: str | None = None  # how a preset made its items and labels, where that is bind's own choice


def label_of(folder: str) -> str:
    """A class name from a folder name: `pouring_water` is "pouring water"."""
    return " ".join(folder.replace("_", " ").split())


def visible(name: str) -> bool:
    """Whether a file or folder counts: hidden ones (`.DS_Store`, `.cache/`) never do."""
    return not name.startswith(".")


def read_folder(root: str | Path) -> Dataset:
    """A folder whose subfolders are the classes; every file below one is an item of it."""
    root = Path(root)
    items = [
        Item(str(f), label_of(sub.name))
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and visible(p.name))
        for f in sorted(sub.rglob("*"))
        if f.is_file() and all(visible(p) for p in f.relative_to(sub).parts)
    ]
    return _dataset(root.name, items)


def read_table(path: str | Path) -> Dataset:
    """A CSV (or `.tsv`) file with `path` and `label` columns, paths relative to the file; a
    row with a path but no label, or a file that is not UTF-8 CSV, is a UsageError."""
    path = Path(path)
    items: list[Item] = []
    with tables.rows(path) as rows:
        missing = {"path", "label"} - set(rows.fieldnames or ())
        if missing:
            raise UsageError(f"{path}: no {' or '.join(sorted(missing))} column")
        for r in rows:
            if not r["path"]:
                continue
            label = (r["label"] or "").strip()
            if not label:
                raise UsageError(f"{path}:{rows.line_num}: {r['path']!r} has no label")
            items.append(Item(str(path.parent / r["path"]), label))
    return _dataset(path.stem, items)


def read_dataset(path: str | Path) -> Dataset:
    """A class-folder tree or a `path,label` table."""
    if Path(path).is_dir():
        return read_folder(path)
    if Path(path).is_file():
        return read_table(path)
    raise UsageError(f"{path}: no such folder or file")


def _dataset(name: str, items: list[Item]) -> Dataset:
    if not items:
        raise UsageError(f"{name}: no labelled files found")
    labels = sorted({i.label for i in items})
    return Dataset(name, tuple(items), {label: (label,) for label in labels})


def subset(dataset: Dataset, limit: int | None = None, per_class: int | None = None) -> Dataset:
    """At most `per_class` items of each class, then at most `limit` in all: a quick estimate.
    Each pick is spread evenly over what it picks from, so every fold (ESC-50's are listed one
    after another) and every class keeps its share instead of the first ones filling it."""
    items = list(dataset.items)
    if per_class:
        keep: set[int] = set()
        by_label: dict[str, list[int]] = {}
        for n, item in enumerate(items):
            by_label.setdefault(item.label, []).append(n)
        for positions in by_label.values():
            keep.update(spread(positions, per_class))
        items = [item for n, item in enumerate(items) if n in keep]
    if limit:
        items = spread(items, limit)
    if len(items) == len(dataset.items):
        return dataset
    part = f"a subset, {len(items)} of {len(dataset.items)} items" + (
        ": not comparable with the paper's figure" if dataset.paper is not None else "")
    protocol = f"{dataset.protocol}; {part}" if dataset.protocol else part
    return dataclasses.replace(dataset, items=tuple(items), protocol=protocol)


def spread(values: list, count: int) -> list:
    """`count` of `values`, evenly spaced over them, in their order (all when there are fewer)."""
    if count >= len(values):
        return values
    return [values[i] for i in np.linspace(0, len(values) - 1, count).round().astype(int)]


# --- scoring -------------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """Counts for one fold, or for the whole run."""

    confusion: np.ndarray  # (truth, predicted) counts
    top5: int = 0

    @classmethod
    def empty(cls, classes: int) -> "Tally":
        return cls(np.zeros((classes, classes), np.int64))

    def add(self, truth: int, ranked: np.ndarray) -> None:
        self.confusion[truth, ranked[0]] += 1
        self.top5 += int(truth in ranked[:5])

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        return float(np.trace(self.confusion)) / self.n if self.n else 0.0

    @property
    def top5_rate(self) -> float:
        return self.top5 / self.n if self.n else 0.0

    @property
    def recalls(self) -> np.ndarray:
        """Each class's recall; NaN for a class with no items."""
        counts = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / counts

    @property
    def mean_per_class_recall(self) -> float:
        recalls = self.recalls[~np.isnan(self.recalls)]
        return float(recalls.mean()) if recalls.size else 0.0


@dataclasses.dataclass(frozen=True)
class Miss:
    """A misclassified item and its five best classes, (label, score) with cosine scores."""

    path: str
    label: str
    top: tuple[tuple[str, float], ...]


@dataclasses.dataclass
class Report:
    """What a run measured: the whole run's tally, each fold's, the failures and the misses."""

    dataset: Dataset
    labels: tuple[str, ...]
    total: Tally
    folds: dict[int, Tally]
    failed: list[InputError]
    misses: list[Miss]

    def figures(self) -> dict[str, float]:
        """top1, top5 and mean per-class recall: the mean over folds where there are folds
        (the paper's ESC-50 protocol), else over all items. A fold with no item scored (all
        failed) is left out of the mean; with none scored anywhere, the whole run's."""
        parts = [t for t in self.folds.values() if t.n] or [self.total]  # a fold all failures: left out
        return {
            "top1": float(np.mean([t.top1 for t in parts])),
            "top5": float(np.mean([t.top5_rate for t in parts])),
            "mean_per_class_recall": float(np.mean([t.mean_per_class_recall for t in parts])),
        }

    def to_json(self) -> dict:
        counts = self.total.confusion.sum(axis=1)
        result: dict = {
            "dataset": self.dataset.name, "n": self.total.n, "failed": len(self.failed),
            **self.figures(),
            "per_class": {
                label: {"n": int(n), "recall": None if np.isnan(r) else float(r)}
                for label, n, r in zip(self.labels, counts, self.total.recalls)
            },
            "confusion": self.total.confusion.tolist(),
            "labels": list(self.labels),
        }
        if self.folds:
            result["folds"] = [
                {"fold": fold, "n": t.n, "top1": t.top1, "top5": t.top5_rate} for fold, t in self.folds.items()
            ]
        if self.dataset.paper is not None:
            result["paper_top1"] = self.dataset.paper / 100
        if self.dataset.protocol is not None:
            result["protocol"] = self.dataset.protocol
        return result


def class_directions(
    embedder: "Embedder",
    classes: Mapping[str, Sequence[str]],
    templates: Mapping[Kind, Sequence[str]],
) -> dict[Kind, np.ndarray]:
    """Each kind's (names, dim) unit directions, names in class order, a chunk of names at a
    time (ImageNet's 1000 classes by 80 templates would otherwise hold 80k prompt vectors)."""
    from bindcli.embed.inputs import Input
    from bindcli.embed.stages import Embedding
    from bindcli.zeroshot import Classifier, prompts

    names = [n for ns in classes.values() for n in ns]
    parts: dict[Kind, list[np.ndarray]] = {kind: [] for kind in templates}
    for chunk in batched(names, NAMES_PER_CHUNK):
        asked = prompts(chunk, templates)
        results = embedder.embed([Input.text(p) for p in asked])
        bad = next((r for r in results if not isinstance(r, Embedding)), None)
        if bad is not None:
            raise UsageError(f"could not embed the prompt {bad.source!r}: {bad.reason}")
        classifier = Classifier.from_prompts(chunk, templates, dict(zip(asked, results)))  # type: ignore[arg-type]
        for kind, rows in classifier.directions.items():
            parts[kind].append(rows)
    return {kind: np.concatenate(rows) for kind, rows in parts.items()}


def evaluate(
    embedder: "Embedder",
    dataset: Dataset,
    templates: Sequence[str] = (),
    *,
    as_kind: Kind | str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> Report:
    """Zero-shot accuracy of `dataset`: prompts from `templates` for every kind, else the
    dataset's own (a preset's), else each modality's (`bind classify`'s)."""
    from bindcli.embed.inputs import Input, gather
    from bindcli.zeroshot import templates_for

    inputs = gather([i.path for i in dataset.items], as_kind=as_kind or dataset.kind)
    kinds = {x.kind for x in inputs if isinstance(x, Input)}
    by_kind = templates_for(kinds, templates or dataset.templates)
    directions = class_directions(embedder, dataset.classes, by_kind)
    labels = tuple(dataset.classes)
    index = {label: n for n, label in enumerate(labels)}
    # the names of class c are rows starts[c]..starts[c+1]: a class scores its best name's cosine
    starts = np.cumsum([0] + [len(ns) for ns in dataset.classes.values()])[:-1]
    total = Tally.empty(len(labels))
    folds = {fold: Tally.empty(len(labels)) for fold in dict.fromkeys(i.fold for i in dataset.items) if fold is not None}
    failed: list[InputError] = []
    misses: list[Miss] = []
    for slot, result in embedder.stream(inputs, progress):
        if isinstance(result, InputError):
            failed.append(result)
            continue
        item = dataset.items[slot]
        scores = np.maximum.reduceat(directions[result.input.kind] @ result.unit, starts)
        ranked = top_k(scores, 5)
        truth = index[item.label]
        total.add(truth, ranked)
        if item.fold is not None:
            folds[item.fold].add(truth, ranked)
        if ranked[0] != truth:
            misses.append(Miss(item.path, item.label, tuple((labels[i], float(scores[i])) for i in ranked)))
    failed.sort(key=lambda e: e.source)
    misses.sort(key=lambda m: m.path)
    return Report(dataset, labels, total, folds, failed, misses)
