"""Thermal: single-channel 8/16-bit images scaled to [0, 1], no mean/std."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bindcli.errors import InputError
from bindcli.media import load
from bindcli.modality import Kind


def test_eight_bit_grey_and_rgb(tmp_path):
    Image.new("L", (320, 256), 128).save(tmp_path / "grey.png")
    Image.new("RGB", (320, 256), (128, 128, 128)).save(tmp_path / "llvip.jpg", quality=100)
    grey = load(tmp_path / "grey.png", Kind.THERMAL)
    assert grey.shape == (1, 224, 224) and grey.dtype == torch.float32
    torch.testing.assert_close(grey, torch.full((1, 224, 224), 128 / 255))
    torch.testing.assert_close(load(tmp_path / "llvip.jpg", Kind.THERMAL), grey, atol=2 / 255, rtol=0)


def test_sixteen_bit_is_stretched_to_unit_range(tmp_path):
    ramp = np.repeat(np.linspace(7000, 8000, 300)[None, :], 224, axis=0).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "radiometric.png")
    out = load(tmp_path / "radiometric.png", Kind.THERMAL)
    assert out.shape == (1, 224, 224)
    assert -0.01 < float(out.min()) < 0.2 and 0.8 < float(out.max()) < 1.01
    assert out[0, :, 0].mean() < out[0, :, -1].mean()


def test_bad_thermal(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    for name in ("zero.png", "junk.png"):
        with pytest.raises(InputError, match=name):
            load(tmp_path / name, Kind.THERMAL)
