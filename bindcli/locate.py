"""Where in an image a query (a sound, a text, another picture) is: regions scored by the
vision tower against the query's vector.

Every modality lands in the vision tower's space, so no detector is needed: propose regions,
cut each out of the decoded image, embed the cuts with the vision tower, rank them by cosine
to the query (the recipe of Grounded-Segment-Anything's ImageBind_SAM playground). Regions
come from a proposal source: a multi-scale grid of windows by default, or any detector's
boxes; a mask generator (Segment Anything) is a later proposal source whose masks would blank
what lies outside the object inside its box.

Imports: bindcli._util, bindcli.errors, bindcli.vectors, bindcli.media, bindcli.embed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli._util.chunks import batched
from bindcli.errors import InputError, UsageError
from bindcli.vectors import normalise

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from bindcli.embed.embedder import Embedder

#: (x0, y0, x1, y1) in pixels of the upright image, x1 and y1 exclusive
BoxXY = tuple[int, int, int, int]

#: a proposal source: the regions worth scoring in an image of (width, height)
Proposals = Callable[[int, int], list[BoxXY]]

#: window sides as fractions of the image's short side, and width/height ratios
SCALES = (0.9, 0.6, 0.4, 0.25)
ASPECTS = (1.0, 1.5, 1 / 1.5)
#: boxes overlapping a better one by more than this IoU are suppressed
NMS_IOU = 0.5
#: refinement rounds; each moves every edge of the best boxes by this fraction of their size,
#: halved every round
REFINE_ROUNDS = 3
REFINE_STEP = 0.2

#: how a region becomes the tower's input: `crop` cuts the box out (short side to 224,
#: centre crop: the tower sees the box at full resolution); `blank` keeps the whole image,
#: padded square, with everything outside the box set to the CLIP mean colour
CROP_MODES = ("crop", "blank")
_MEAN_RGB = (122, 116, 104)  # CLIP_MEAN * 255: zero after normalisation


@dataclasses.dataclass(frozen=True)
class Box:
    box: BoxXY
    score: float


@dataclasses.dataclass
class Located:
    """One image's answer: its upright size, boxes best first, and (when asked) the
    per-pixel heat map of window scores."""

    image: str
    width: int
    height: int
    boxes: list[Box]
    windows: int  # regions embedded, refinement included
    heat: np.ndarray | None = None


def grid(width: int, height: int, scales: Sequence[float] = SCALES,
         aspects: Sequence[float] = ASPECTS) -> list[BoxXY]:
    """Windows of several sizes and shapes, overlapping by half, edges always covered.

    Window sides follow the short side, so a long thin image (a 2000x30 banner) would need
    thousands of tiny windows: sides under one patch of the vision tower (`MIN_SIDE`) are left
    out, and past `MAX_WINDOWS` the stride widens until the grid fits (about four ordinary
    photos' worth)."""
    short = min(width, height)
    shapes = []
    for scale in scales:
        for aspect in aspects:
            w = min(width, max(1, round(scale * short * math.sqrt(aspect))))
            h = min(height, max(1, round(scale * short / math.sqrt(aspect))))
            if min(w, h) >= min(MIN_SIDE, short):
                shapes.append((w, h))
    shapes = shapes or [(width, height)]
    stride = 0.5
    while True:
        found: dict[BoxXY, None] = {}
        for w, h in shapes:
            for y in _starts(height, h, stride):
                for x in _starts(width, w, stride):
                    found[(x, y, x + w, y + h)] = None
        if len(found) <= MAX_WINDOWS:
            return list(found)
        stride *= 1.5


#: the smallest window side: one patch of the vision tower (14 px); a smaller crop is one
#: patch scaled up, which says nothing
MIN_SIDE = 14
#: the most windows `grid` proposes; an ordinary photo gets 250-500
MAX_WINDOWS = 1200


def _starts(length: int, window: int, stride: float = 0.5) -> list[int]:
    """Offsets of windows at `stride` windows apart, spread to end exactly at `length`."""
    steps = math.ceil((length - window) / (window * stride)) if length > window else 0
    return sorted({round(i * (length - window) / steps) for i in range(steps + 1)} if steps else {0})


def fixed(boxes: Sequence[Sequence[float]], source: str = "proposals") -> Proposals:
    """A detector's boxes as a proposal source. A box may overshoot the image by rounding
    (`OVERSHOOT`) and is then clipped to it; one further out belongs to another image."""

    def proposals(width: int, height: int) -> list[BoxXY]:
        checked = []
        for box in boxes:
            x0, y0, x1, y1 = (float(v) for v in box[:4])
            slack_x, slack_y = _slack(width), _slack(height)
            if not (-slack_x <= x0 < x1 <= width + slack_x and -slack_y <= y0 < y1 <= height + slack_y):
                raise InputError(source, f"box {list(box[:4])} is not inside the {width}x{height} image")
            clipped = (max(0, round(x0)), max(0, round(y0)), min(width, round(x1)), min(height, round(y1)))
            if clipped[0] >= clipped[2] or clipped[1] >= clipped[3]:
                raise InputError(source, f"box {list(box[:4])} is less than a pixel of the {width}x{height} image")
            checked.append(clipped)
        return checked

    return proposals


#: how far a proposal may reach past the image's edge (a detector's rounding) and be clipped:
#: this fraction of the side, at least two pixels
OVERSHOOT = 0.01


def _slack(side: int) -> float:
    return max(2.0, OVERSHOOT * side)


def read_proposals(path: Path) -> Callable[[str], Proposals]:
    """A proposals file -> each image's proposal source. The file holds a list of boxes (for
    every image), `{image: boxes}` (by path or file name), or what `bind locate -f json|jsonl`
    printed; a box is `[x0, y0, x1, y1]` in pixels, or `[x0, y0, x1, y1, score]` as detectors
    write them (the score is not used). Anything else is a UsageError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--proposals {path}: cannot read it ({exc})") from None
    data = _json_or_lines(path, text)
    if isinstance(data, dict) and "boxes" in data:  # one image's line of `-f jsonl`
        data = [data]
    if isinstance(data, list) and data and all(isinstance(r, dict) and "boxes" in r for r in data):
        data = {r.get("image"): [b.get("box") if isinstance(b, dict) else b for b in r["boxes"]] for r in data}
    if not data:
        raise UsageError(f"--proposals {path}: holds no boxes")
    if isinstance(data, list):
        _check_boxes(path, data)
        return lambda image: fixed(data, image)
    if not isinstance(data, dict):
        raise UsageError(f"--proposals {path}: expected a list of boxes or {{image: boxes}}")
    for boxes in data.values():
        _check_boxes(path, boxes)
    by_name = {Path(str(k)).name: v for k, v in data.items()}

    def proposals_for(image: str) -> Proposals:
        boxes = data.get(image, by_name.get(Path(image).name))
        if not boxes:
            raise InputError(image, f"no boxes for it in {path}")
        return fixed(boxes, image)

    return proposals_for


def _json_or_lines(path: Path, text: str) -> object:
    """One JSON value, or one per line (`-f jsonl`)."""
    import json

    try:
        return json.loads(text)
    except ValueError as whole:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise UsageError(f"--proposals {path}: cannot read it as JSON ({whole})") from None


def _check_boxes(path: Path, boxes: object) -> None:
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    ok = isinstance(boxes, list) and all(
        isinstance(b, list) and len(b) in (4, 5) and all(number(v) for v in b) for b in boxes
    )
    if not ok:
        raise UsageError(f"--proposals {path}: each box must be [x0, y0, x1, y1] (or with a score "
                         "after them) in pixels, as finite numbers")


def iou(a: BoxXY, b: BoxXY) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    union = _area(a) + _area(b) - inter
    return inter / union if union else 0.0


def _area(b: BoxXY) -> int:
    return (b[2] - b[0]) * (b[3] - b[1])


def nms(boxes: Sequence[Box], threshold: float = NMS_IOU) -> list[Box]:
    """Best first, dropping any box that overlaps a kept one by more than `threshold`."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(iou(box.box, k.box) <= threshold for k in kept):
            kept.append(box)
    return kept


def region(img: "Image.Image", box: BoxXY, mode: str = "crop") -> "Image.Image":
    """The picture the tower sees for `box` (see CROP_MODES)."""
    from PIL import Image

    if mode == "crop":
        return img.crop(box)
    if mode != "blank":
        raise UsageError(f"unknown crop mode {mode!r}; choose from {', '.join(CROP_MODES)}")
    side = max(img.size)
    canvas = Image.new("RGB", (side, side), _MEAN_RGB)
    canvas.paste(img.convert("RGB").crop(box), box[:2])
    return canvas


class Scorer:
    """Scores regions of one image against a unit query vector through the vision tower,
    remembering every score (the heat map is made of them)."""

    def __init__(self, embedder: "Embedder", img: "Image.Image", query: np.ndarray, mode: str) -> None:
        self.embedder = embedder
        self.img = img
        self.query = normalise(query)
        self.mode = mode
        self.scores: dict[BoxXY, float] = {}

    def __call__(self, boxes: Sequence[BoxXY]) -> list[Box]:
        from bindcli.media.image import vision_tensor

        todo = [b for b in dict.fromkeys(boxes) if b not in self.scores]
        size = self.embedder.batch_size
        for chunk in batched(todo, size):
            tensors = [vision_tensor(region(self.img, b, self.mode)) for b in chunk]
            vectors = normalise(self.embedder.encoder.encode("vision", tensors))
            self.scores.update(zip(chunk, (float(s) for s in vectors @ self.query)))
        return [Box(b, self.scores[b]) for b in boxes]


def refine(score: Scorer, box: Box, width: int, height: int,
           rounds: int = REFINE_ROUNDS, step: float = REFINE_STEP) -> Box:
    """Coordinate ascent on the box's edges: each round tries every edge moved in and out
    (and the box grown and shrunk), keeps the best, and halves the step; so the best box
    comes to fit the object, not just a window that overlaps it."""
    for n in range(rounds):
        frac = step / 2**n
        candidates = [c for c in _moves(box.box, frac, width, height) if c != box.box]
        if not candidates:
            break
        best = max(score(candidates), key=lambda b: b.score)
        if best.score > box.score:
            box = best
    return box


def _moves(b: BoxXY, frac: float, width: int, height: int) -> list[BoxXY]:
    x0, y0, x1, y1 = b
    dx, dy = max(1, round(frac * (x1 - x0))), max(1, round(frac * (y1 - y0)))
    moved = [
        (x0 - dx, y0, x1, y1), (x0 + dx, y0, x1, y1), (x0, y0, x1 - dx, y1), (x0, y0, x1 + dx, y1),
        (x0, y0 - dy, x1, y1), (x0, y0 + dy, x1, y1), (x0, y0, x1, y1 - dy), (x0, y0, x1, y1 + dy),
        (x0 - dx, y0 - dy, x1 + dx, y1 + dy), (x0 + dx, y0 + dy, x1 - dx, y1 - dy),
    ]
    clipped = [(max(0, a), max(0, c), min(width, e), min(height, f)) for a, c, e, f in moved]
    return list(dict.fromkeys(m for m in clipped if m[2] - m[0] >= 8 and m[3] - m[1] >= 8))


def heat_map(scores: dict[BoxXY, float], width: int, height: int, how: str = "max") -> np.ndarray:
    """(height, width) float32: per pixel, the max (or mean) score of the windows covering
    it; NaN where none does."""
    if how not in ("max", "mean"):
        raise UsageError(f"unknown heat map reduction {how!r}; choose max or mean")
    acc = np.full((height, width), -np.inf if how == "max" else 0.0, np.float32)
    count = np.zeros((height, width), np.int32)
    for (x0, y0, x1, y1), s in scores.items():
        if how == "max":
            np.maximum(acc[y0:y1, x0:x1], s, out=acc[y0:y1, x0:x1])
        else:
            acc[y0:y1, x0:x1] += s
        count[y0:y1, x0:x1] += 1
    if how == "mean":
        acc /= np.maximum(count, 1)
    acc[count == 0] = np.nan
    return acc


def locate(
    embedder: "Embedder",
    image: "str | Path | Image.Image",
    query: np.ndarray,
    *,
    k: int = 5,
    proposals: Proposals | None = None,
    mode: str = "crop",
    refine_top: int = 3,
    min_score: float | None = None,
    heat: str | None = None,
    name: str | None = None,
) -> Located:
    """The `k` regions of `image` closest to `query` (any modality's vector), best first.

    Without `proposals` the regions are `grid` windows, thinned by `nms`, the best
    `refine_top` of them refined; with them (a detector's boxes, `fixed`) the given boxes are
    only re-ranked. `heat` ("max" or "mean") also returns the per-pixel heat map. `name` is
    the image's name in the result (default: its path, or a PIL image's file name). Raises
    InputError for an image that cannot be decoded or a proposal outside it.
    """
    from bindcli.media.image import open_image
    from bindcli.media.options import MediaOptions
    from bindcli.vectors import at_least

    if isinstance(image, (str, Path)):
        name, img = name or str(image), open_image(image, embedder.options or MediaOptions())
    else:
        name, img = name or getattr(image, "filename", "") or "<image>", image
    width, height = img.size
    score = Scorer(embedder, img, query, mode)
    given = proposals is not None
    boxes = (proposals or grid)(width, height)
    if not boxes:
        raise InputError(name, "no regions to score")
    ranked = score(boxes)
    heat_values = heat_map(score.scores, width, height, heat) if heat else None
    if given:
        ranked = sorted(ranked, key=lambda b: -b.score)
    else:
        ranked = nms(ranked)
        top = [refine(score, b, width, height) for b in ranked[:refine_top]]
        ranked = nms(top + ranked[refine_top:])
    if min_score is not None:
        keep = at_least(np.array([b.score for b in ranked]), min_score)
        ranked = [b for b, ok in zip(ranked, keep) if ok]
    return Located(name, width, height, ranked[:k], len(score.scores), heat_values)


# --- pictures ------------------------------------------------------------------------------

#: box colours by rank, then repeating
_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48))
#: the heat map's colour scale, low to high (dark blue, cyan, yellow, red)
_SCALE = np.array([(20, 20, 110), (0, 180, 220), (250, 230, 40), (220, 30, 30)], np.float32)


def draw_boxes(img: "Image.Image", boxes: Sequence[Box]) -> "Image.Image":
    """A copy of the image with each box outlined and labelled with its rank and score."""
    from PIL import ImageDraw, ImageFont

    picture = img.convert("RGB")
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(picture.size) / 30)))
    for n, b in reversed(list(enumerate(boxes, 1))):  # the best drawn last, on top
        colour = _COLOURS[(n - 1) % len(_COLOURS)]
        draw.rectangle(b.box, outline=colour, width=line)
        label = f"#{n} {b.score:.3f}"
        x, y = b.box[0] + line, b.box[1] + line
        draw.rectangle(draw.textbbox((x, y), label, font=font), fill=colour)
        draw.text((x, y), label, fill=(0, 0, 0), font=font)
    return picture


def draw_heat(img: "Image.Image", heat: np.ndarray, alpha: float = 0.5) -> "Image.Image":
    """The image under the heat map in colour (the scores stretched from lowest to highest);
    pixels no window covered keep the image's own colour."""
    from PIL import Image

    covered = ~np.isnan(heat)
    lo, hi = (float(heat[covered].min()), float(heat[covered].max())) if covered.any() else (0.0, 1.0)
    t = np.clip((np.nan_to_num(heat, nan=lo) - lo) / ((hi - lo) or 1.0), 0, 1) * (len(_SCALE) - 1)
    low = np.minimum(t.astype(np.int32), len(_SCALE) - 2)
    colours = _SCALE[low] + (t - low)[..., None] * (_SCALE[low + 1] - _SCALE[low])
    base = np.asarray(img.convert("RGB"), np.float32)
    mix = np.where(covered[..., None], (1 - alpha) * base + alpha * colours, base)
    return Image.fromarray(np.clip(np.rint(mix), 0, 255).astype(np.uint8), "RGB")
