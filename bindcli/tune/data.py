"""What `bind tune` learns from: class folders (or a `path,label` table), each item against
its class name through the modality's prompt templates, or a CSV/TSV of pairs `a,b` (a file
against an image file or a text), and the held-out split.

Imports: see `bindcli.tune`.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bindcli.errors import InputError, UsageError
from bindcli.eval.accuracy import Dataset, Item, read_folder, read_table
from bindcli.modality import Kind, detect

#: the anchor towers of pairs: the paper binds every modality to images (and texts)
ANCHOR_TOWERS = ("vision", "text")


@dataclasses.dataclass(frozen=True)
class Example:
    """One training item: a file of the tuned modality and what it must come near, its class
    name (class data) or its partner (pairs: a file, or a text when `text`)."""

    path: str
    target: str
    text: bool = True


@dataclasses.dataclass(frozen=True)
class TuneData:
    """Examples of one tuned tower; `classes` for class data (the class names, in order),
    empty for pairs."""

    name: str
    examples: tuple[Example, ...]
    classes: tuple[str, ...] = ()

    @property
    def by_class(self) -> bool:
        return bool(self.classes)

    def dataset(self) -> Dataset:
        """Class data as `bind eval` reads it: what the report scores with eval's protocol."""
        items = tuple(Item(e.path, e.target) for e in self.examples)
        return Dataset(self.name, items, {c: (c,) for c in self.classes})

    def subset(self, positions: Sequence[int], name: str) -> "TuneData":
        return TuneData(name, tuple(self.examples[i] for i in positions), self.classes)


def read_data(path: str | Path) -> TuneData:
    """Class folders, a `path,label` table, or a table of pairs (`a,b` columns, or two
    columns without a header)."""
    path = Path(path)
    if path.is_dir():
        return _classes(read_folder(path))
    if not path.is_file():
        raise UsageError(f"{path}: no such folder or file")
    rows = _rows(path)
    if rows and {"path", "label"} <= {c.strip().lower() for c in rows[0]}:
        return _classes(read_table(path))
    return _pairs(path, rows)


def _classes(dataset: Dataset) -> TuneData:
    if len(dataset.classes) < 2:
        raise UsageError(f"{dataset.name}: {len(dataset.classes)} class; tuning needs at least two")
    examples = tuple(Example(item.path, item.label) for item in dataset.items)
    return TuneData(dataset.name, examples, tuple(dataset.classes))


def _rows(path: Path) -> list[list[str]]:
    tsv = path.suffix.lower() == ".tsv"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [r for r in csv.reader(f, delimiter="\t" if tsv else ",") if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: cannot read it as a UTF-8 {'TSV' if tsv else 'CSV'} table ({exc})") from None


def _pairs(path: Path, rows: list[list[str]]) -> TuneData:
    if rows and [c.strip().lower() for c in rows[0]] == ["a", "b"]:
        rows = rows[1:]
    examples = []
    for line, row in enumerate(rows, 1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise UsageError(f"{path}: row {line}: expected two fields, a file and an image or a text")
        a, b = row[0].strip(), row[1].strip()
        partner = path.parent / b
        examples.append(Example(str(path.parent / a), str(partner) if partner.is_file() else b, not partner.is_file()))
    if len(examples) < 2:
        raise UsageError(f"{path}: {len(examples)} pair; tuning needs at least two")
    anchors = {"text" if e.text else _tower(e.target) for e in examples}
    if len(anchors) > 1 or not anchors <= set(ANCHOR_TOWERS):
        raise UsageError(f"{path}: the second column must be all images or all texts (the anchors)")
    return TuneData(path.stem, tuple(examples))


def _tower(path: str) -> str:
    try:
        return detect(path).tower
    except InputError:  # an extension no modality reads
        return "unknown"


def tuned_tower(data: TuneData, as_kind: Kind | None = None) -> str:
    """The one tower the data's files go through; the anchor's must be another."""
    towers = set()
    for e in data.examples:
        try:
            towers.add(detect(e.path, as_kind).tower)
        except InputError:  # an unknown kind fails alone later, named with the others
            continue
    if len(towers) != 1:
        found = ", ".join(sorted(towers)) or "none"
        raise UsageError(f"{data.name}: the files must go through one tower to tune it (found: {found})")
    tower = towers.pop()
    anchor = "text" if data.by_class or data.examples[0].text else "vision"
    if tower == anchor:
        raise UsageError(
            f"{data.name}: the {tower} tower would be tuned against itself; its anchor "
            + ("is the class names' text: give pairs against images" if data.by_class else "must be another tower")
        )
    return tower


def split(data: TuneData, fraction: float, seed: int) -> tuple[TuneData, TuneData]:
    """(training, held-out): `fraction` of each class (of the pairs) held out, drawn with
    `seed`; at least one item of each class with two or more, never all of one."""
    if not 0 < fraction < 1:
        raise UsageError(f"--val {fraction}: give a fraction between 0 and 1, or a second DATA")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for n, e in enumerate(data.examples):
        groups.setdefault(e.target if data.by_class else "", []).append(n)
    held: list[int] = []
    for positions in groups.values():
        take = min(len(positions) - 1, max(1, round(fraction * len(positions))))
        held.extend(int(i) for i in rng.permutation(positions)[:take])
    held_set = set(held)
    train = [n for n in range(len(data.examples)) if n not in held_set]
    return data.subset(train, data.name), data.subset(sorted(held), f"{data.name} (held out)")
