"""Images -> the vision tower's (3, 224, 224) input, exactly as upstream's `data.py` makes it.

Upstream: PIL `convert("RGB")` (alpha dropped, not composited), short side to 224 with PIL
bicubic (antialiased), centre crop 224 (offsets rounded), /255, CLIP mean/std (upstream `data.load_and_transform_vision_data`).
On top of that, for files upstream never met: EXIF orientation is applied (a phone photo is
embedded upright), animated files give their first frame, 16-bit greyscale is scaled down
to 8 bits instead of being clipped at 255, and oversized images are refused before decoding.
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
    return vision_tensor(open_image(source, options))


def vision_tensor(img: Image.Image) -> torch.Tensor:
    """A decoded image (or a region cut from one, as `bind locate` does) as the vision
    tower's input, through the same steps as a file."""
    return _VISION(to_8bit(img).convert("RGB"))
