"""Images -> the vision tower's (3, 224, 224) input, exactly as upstream's `data.py` makes it.

Upstream: PIL `convert("RGB")` (alpha dropped, not composited), short side to 224 with PIL
bicubic (antialiased), centre crop 224 (offsets rounded), /255, CLIP mean/std (upstream `data.load_and_transform_vision_data`).
On top of that, for files upstream never met: EXIF orientation is applied (a phone photo is
embedded upright), animated files give their first frame, 16-bit greyscale is scaled down
to 8 bits instead of being clipped at 255, a palette's transparency is dropped like any
alpha, and oversized images, images longer than `MAX_ASPECT_RATIO` times their width (a
3000x1 line would scale to 672000x224) and 32-bit float images (no brightness scale) are
refused before the scaled image is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms

from bindcli.errors import InputError
from bindcli.media.options import MediaOptions
from bindcli.media.source import decoding, existing_file
from bindcli.model.config import IMAGE_SIZE

SIZE = IMAGE_SIZE  # the vision tower's input, fixed by the architecture
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_VISION = transforms.Compose(
    [
        transforms.Resize(SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD),
    ]
)

#: Pillow modes holding more than 8 bits per sample in one channel
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
#: long side over short side beyond which a picture is refused: scaling the short side to 224
#: makes the long one this many times 224 (memory and time grow with it); panoramas fit
MAX_ASPECT_RATIO = 100

#: Pillow's modes, as people call them
MODE_NAMES = {
    "1": "1-bit black-and-white", "L": "8-bit greyscale", "LA": "8-bit greyscale-with-alpha",
    "P": "8-bit palette", "PA": "8-bit palette-with-alpha", "RGB": "8-bit colour",
    "RGBA": "8-bit colour-with-alpha", "CMYK": "CMYK colour", "YCbCr": "YCbCr colour",
    "LAB": "Lab colour", "HSV": "HSV colour", "I": "32-bit integer", "F": "32-bit float",
    **{mode: "16-bit greyscale" for mode in HIGH_DEPTH_MODES - {"I"}},
}


def describe_mode(mode: str) -> str:
    """`an 8-bit greyscale image` for Pillow's "L": what an error says an image is."""
    name = MODE_NAMES.get(mode, f"{mode}-mode")
    return f"{'an' if name[0] in '8aeiouAEIOU' else 'a'} {name} image"


def check_shape(source: str | Path, width: int, height: int, what: str = "image") -> None:
    """Refuse a picture too elongated to scale (see `MAX_ASPECT_RATIO`), from its size alone."""
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        long_side = SIZE * max(width, height) // max(min(width, height), 1)
        raise InputError(
            source,
            f"{what} is {width}x{height}, an aspect ratio over the {MAX_ASPECT_RATIO}:1 limit "
            f"(scaled to {SIZE} on its short side it would be {long_side} pixels long)",
        )


def open_image(source: str | Path, options: MediaOptions) -> Image.Image:
    """Decode `source` fully (first frame, upright), refusing decompression bombs.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    path = existing_file(source)
    with decoding(source, "image"):
        with Image.open(path) as img:
            width, height = img.size
            if width * height > options.max_image_pixels:
                raise InputError(
                    source,
                    f"image is {width}x{height} = {width * height} pixels, over the "
                    f"{options.max_image_pixels}-pixel limit (decompression-bomb guard)",
                )
            check_shape(source, width, height)
            img.seek(0)
            img.load()
            return ImageOps.exif_transpose(img)


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit single-channel image scaled to 8 bits (Pillow's `convert` would clip at 255)."""
    if img.mode not in HIGH_DEPTH_MODES:
        return img
    values = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")


def load_image(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(3, 224, 224) float32, CLIP-normalised."""
    img = open_image(source, options)
    if img.mode == "F":
        raise InputError(
            source,
            "a 32-bit float image has no brightness scale to read as a picture; save it as 8 "
            "or 16 bits, or read it with --as depth (metres) or --as thermal",
        )
    return vision_tensor(img)


def vision_tensor(img: Image.Image) -> torch.Tensor:
    """A decoded image (or a region cut from one, as `bind locate` does) as the vision
    tower's input, through the same steps as a file. A palette with per-entry transparency
    goes through RGBA, which gives the same colours without Pillow's warning about it."""
    if img.mode == "P" and isinstance(img.info.get("transparency"), bytes):
        img = img.convert("RGBA")
    return _VISION(to_8bit(img).convert("RGB"))
