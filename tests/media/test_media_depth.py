"""Depth: millimetre PNGs and metre arrays -> standardised disparity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bindcli.errors import InputError
from bindcli.media import MediaOptions, load
from bindcli.modality import Kind

RAW = MediaOptions(depth_standardize=False)


def _ramp_m(height: int = 240, width: int = 320) -> np.ndarray:
    """Depth rising from 1 m (top) to 4 m (bottom), in whole millimetres."""
    return np.repeat(np.linspace(1000, 4000, height).round()[:, None], width, axis=1) / 1000.0


def test_png_millimetres_equal_npy_metres(tmp_path):
    depth = _ramp_m()
    Image.fromarray(np.rint(depth * 1000).astype(np.uint16)).save(tmp_path / "d.png")
    np.save(tmp_path / "d.npy", depth.astype(np.float32))
    np.savez(tmp_path / "d.npz", depth=depth.astype(np.float32), other=np.zeros(3))
    png = load(tmp_path / "d.png", Kind.DEPTH)
    assert png.shape == (1, 224, 224) and png.dtype == torch.float32
    torch.testing.assert_close(load(tmp_path / "d.npy", Kind.DEPTH), png, atol=1e-4, rtol=0)
    torch.testing.assert_close(load(tmp_path / "d.npz", Kind.DEPTH), png, atol=1e-4, rtol=0)
    assert abs(float(png.mean())) < 1e-4 and abs(float(png.std(unbiased=False)) - 1) < 1e-3


def test_disparity_values_and_camera_parameters(tmp_path):
    np.save(tmp_path / "flat.npy", np.full((100, 100), 2.0, np.float32))
    out = load(tmp_path / "flat.npy", Kind.DEPTH, RAW)
    torch.testing.assert_close(out, torch.full((1, 224, 224), 0.075 * 518.857901 / 2.0))
    camera = MediaOptions(depth_standardize=False, depth_baseline_m=0.095, depth_focal_px=500.0)
    torch.testing.assert_close(load(tmp_path / "flat.npy", Kind.DEPTH, camera), torch.full((1, 224, 224), 0.095 * 500.0 / 2.0))
    # standardising a flat map leaves zeros, not NaN
    assert load(tmp_path / "flat.npy", Kind.DEPTH).eq(0).all()


def test_clipping_and_holes(tmp_path):
    depth = np.full((100, 100), 100.0, np.float32)  # beyond 50 m: clipped to 50 m
    depth[:, 50:] = 0.0  # no measurement
    np.save(tmp_path / "d.npy", depth)
    out = load(tmp_path / "d.npy", Kind.DEPTH, RAW)[0]
    assert out[:, :100].sub(0.075 * 518.857901 / 50.0).abs().max() < 1e-5
    assert out[:, 124:].abs().max() < 1e-6


def test_refused_inputs(tmp_path):
    Image.new("L", (64, 64), 100).save(tmp_path / "eight_bit.png")
    np.save(tmp_path / "cube.npy", np.ones((3, 4, 5), np.float32))
    np.savez(tmp_path / "two.npz", a=np.ones((4, 4)), b=np.ones((4, 4)))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    for name, reason in [
        ("eight_bit.png", "not a depth map"),
        ("cube.npy", "2-D depth map"),
        ("two.npz", "2 arrays"),
        ("objects.npy", "cannot read array"),
        ("absent.npy", "no such file"),
    ]:
        with pytest.raises(InputError, match=reason):
            load(tmp_path / name, Kind.DEPTH)
