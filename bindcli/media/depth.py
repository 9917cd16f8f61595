"""Depth maps -> the depth tower's (1, 224, 224) input. Upstream ships no loader.

Convention (from the paper and co-author imisra's recipe in omnivore issue #12):
the tower sees *disparity*, baseline x focal / depth, with depth clipped to [0.01, 50] m;
the maps are then resized / centre-cropped to 224 and standardised, the steps that
reproduced the paper's SUN RGB-D number (ImageBind issue #134).

  * Inputs: a 16-bit PNG (or TIFF) in millimetres, the NYU Depth v2 / SUN RGB-D convention
    (`depth_png_unit_m` changes the unit; raw SUN RGB-D PNGs store depth bit-rotated and
    must be decoded with its toolbox first), a 32-bit float image in metres, or a
    `.npy` / `.npz` (array `depth`) of metres. 8-bit images are refused: they are
    visualisations, not measurements.
  * Pixels without a measurement (0, negative, NaN, inf: sensor holes) get disparity 0, as
    if infinitely far, instead of being clipped to 0.01 m, which would make them the
    nearest, brightest points of the map and dominate the standardisation.
  * Standardised per map to zero mean and unit variance (`depth_standardize`), so the
    camera's baseline and focal length only set a scale that cancels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bindcli.errors import InputError
from bindcli.media.arrays import read_array
from bindcli.media.image import HIGH_DEPTH_MODES, check_shape, describe_mode, open_image
from bindcli.media.options import MediaOptions
from bindcli.media.planes import resize_crop

MIN_DEPTH_M = 0.01
MAX_DEPTH_M = 50.0
ARRAY_SUFFIXES = (".npy", ".npz")
FLAT_TOLERANCE = 1e-6  # relative spread below which a map counts as flat (resampling noise)


def read_depth_m(source: str | Path, options: MediaOptions) -> np.ndarray:
    """(H, W) float32 depth in metres; unmeasured pixels are left as they are (0 or NaN)."""
    if Path(source).suffix.lower() in ARRAY_SUFFIXES:
        array = read_array(source, "depth")
        plane = np.squeeze(array)
        if plane.ndim != 2:
            raise InputError(source, f"expected a 2-D depth map, got shape {array.shape}")
        check_shape(source, plane.shape[1], plane.shape[0], "depth map")
        return plane.astype(np.float32)
    img = open_image(source, options)
    if img.mode in HIGH_DEPTH_MODES:
        return np.asarray(img, dtype=np.float32) * np.float32(options.depth_png_unit_m)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    raise InputError(
        source,
        f"{describe_mode(img.mode)} is not a depth map; expected a 16-bit PNG in millimetres "
        "or a float .npy/.npz in metres",
    )


def to_disparity(depth_m: np.ndarray, options: MediaOptions) -> np.ndarray:
    """baseline * focal / depth, depth clipped to [0.01, 50] m; 0 where nothing was measured."""
    measured = np.isfinite(depth_m) & (depth_m > 0)
    clipped = np.clip(np.where(measured, depth_m, MAX_DEPTH_M), MIN_DEPTH_M, MAX_DEPTH_M)
    disparity = options.depth_baseline_m * options.depth_focal_px / clipped
    return np.where(measured, disparity, 0.0).astype(np.float32)


def load_depth(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(1, 224, 224) float32 disparity, standardised unless `depth_standardize` is off."""
    plane = resize_crop(to_disparity(read_depth_m(source, options), options))
    if not options.depth_standardize:
        return plane
    values = plane.double()  # float32 sums of a flat map leave residues that /std would blow up
    mean, std = values.mean(), values.std(correction=0)
    if std <= FLAT_TOLERANCE * abs(mean):
        return torch.zeros_like(plane)  # a flat map (one distance everywhere) has no structure
    return ((values - mean) / std).float()
