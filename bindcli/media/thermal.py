"""Thermal images -> the thermal tower's (1, 224, 224) input. Upstream ships no loader.

Convention (upstream publishes none; this is the one that reproduced the paper): the tower was trained on LLVIP, 8-bit single-channel infrared frames
(stored as greyscale JPEG/PNG, sometimes replicated to RGB). The recipe that reproduced the
paper's LLVIP number (62.4% vs 63.4%) is resize / centre-crop 224 and scale to [0, 1] with
no mean/std normalisation; with CLIP normalisation it dropped to 55%.

  * 8-bit images (any mode; colour is converted to luma): value / 255.
  * 16-bit images (radiometric cameras) and 32-bit float ones (temperatures, in any unit):
    stretched per image to [0, 1] between their min and max, standing in for the automatic
    gain control that produced LLVIP's 8-bit frames (a raw /65535 would leave a typical
    scene as a nearly flat grey, and 20-40 degrees read as 8-bit would be nearly black).
    A float image with NaN or infinite pixels is refused: it has no range to stretch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bindcli.errors import InputError
from bindcli.media.image import HIGH_DEPTH_MODES, open_image
from bindcli.media.options import MediaOptions
from bindcli.media.planes import resize_crop


def load_thermal(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(1, 224, 224) float32 in [0, 1] (up to bicubic overshoot)."""
    img = open_image(source, options)
    if img.mode in HIGH_DEPTH_MODES | {"F"}:
        values = np.asarray(img, dtype=np.float32)
        if not np.isfinite(values).all():
            raise InputError(source, "the thermal image holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        plane = (values - low) / (high - low) if high > low else np.zeros_like(values)
    else:
        plane = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return resize_crop(plane)
