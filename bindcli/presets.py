"""Named datasets for `bind eval`, read in their official release layouts, with the ImageBind
paper's protocol (arXiv 2305.05665, appendix): CLIP's 80 ImageNet templates for every
modality, and the paper's imagebind_huge top-1 beside what is measured.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bindcli.errors import UsageError
from bindcli.evaluate import Dataset, Item, label_of, read_folder, visible
from bindcli.modality import Kind
from bindcli.zeroshot import read_lines

DATA = Path(__file__).parent / "data"

#: imagebind_huge's zero-shot top-1 (%), the paper's Table 2
PAPER_TOP1 = {"esc50": 66.9, "imagenet-val": 77.7, "kinetics400": 50.0, "llvip": 63.4}

#: the paper's names for LLVIP's two classes; a class scores its best name
LLVIP_NAMES = {"person": ("person", "man", "woman", "people"), "background": ("street", "road", "car", "light", "tree")}


def paper_templates() -> tuple[str, ...]:
    return read_lines(DATA / "clip_imagenet_templates.txt")


def esc50(root: Path) -> Dataset:
    """ESC-50 as released (`meta/esc50.csv`, `audio/*.wav`): 2000 clips, 50 classes, 5 folds
    reported apart and averaged, as the paper does."""
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise UsageError(f"{root}: no meta/esc50.csv (expected the ESC-50 release: meta/, audio/)")
    try:
        with open(meta, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{meta}: cannot read it as a UTF-8 CSV table ({exc})") from None
    names = {int(r["target"]): label_of(r["category"]) for r in rows}
    items = tuple(Item(str(root / "audio" / r["filename"]), label_of(r["category"]), r["fold"]) for r in rows)
    items = tuple(sorted(items, key=lambda i: (int(i.fold or 0), i.path)))
    classes = {names[t]: (names[t],) for t in sorted(names)}
    return Dataset("esc50", items, classes, paper_templates(), PAPER_TOP1["esc50"])


def imagenet_val(root: Path) -> Dataset:
    """ILSVRC2012 val in one folder per WordNet id (`n01440764/*.JPEG`), scored against all
    1000 classes by their readable names."""
    wnids = [line.split("\t") for line in read_lines(DATA / "imagenet_classes.tsv")]
    counts = Counter(name for _, name in wnids)
    # a few synsets share a readable name ("missile", "sunglasses"): their labels add the id
    label = {w: name if counts[name] == 1 else f"{name} ({w})" for w, name in wnids}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and visible(p.name)) if root.is_dir() else []
    unknown = [p.name for p in folders if p.name not in label]
    if not folders or unknown:
        what = f"unknown class folder {unknown[0]!r}" if unknown else "no class folders"
        raise UsageError(f"{root}: {what} (expected ILSVRC2012 val in WordNet-id folders: n01440764/...)")
    items = tuple(
        Item(str(f), label[p.name]) for p in folders for f in sorted(p.iterdir()) if f.is_file() and visible(f.name)
    )
    classes = {label[w]: (name,) for w, name in wnids}
    return Dataset("imagenet-val", items, classes, paper_templates(), PAPER_TOP1["imagenet-val"])


def kinetics400(root: Path) -> Dataset:
    """Kinetics-400 val clips sorted into one folder per class (`abseiling/*.mp4`)."""
    data = read_folder(root)
    if len(data.classes) != 400:
        raise UsageError(f"{root}: {len(data.classes)} class folders, Kinetics-400 has 400")
    return dataclasses.replace(
        data, name="kinetics400", templates=paper_templates(), paper=PAPER_TOP1["kinetics400"],
    )


def llvip(root: Path) -> Dataset:
    """LLVIP infrared crops in `person/` and `background/`, read as thermal, each class
    scored by the best of the paper's names for it."""
    folders = {p.name for p in root.iterdir() if p.is_dir() and visible(p.name)} if root.is_dir() else set()
    if folders != set(LLVIP_NAMES):
        raise UsageError(f"{root}: expected exactly the folders person/ and background/ of infrared crops")
    data = read_folder(root)
    return dataclasses.replace(
        data, name="llvip", classes=LLVIP_NAMES, templates=paper_templates(), paper=PAPER_TOP1["llvip"],
        kind=Kind.THERMAL,
    )


PRESETS: dict[str, Callable[[Path], Dataset]] = {
    "esc50": esc50, "imagenet-val": imagenet_val, "kinetics400": kinetics400, "llvip": llvip,
}


def read_preset(name: str, root: str | Path) -> Dataset:
    """The named preset's dataset at `root`."""
    try:
        reader = PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
    return reader(Path(root))
