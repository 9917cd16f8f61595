"""Images: upstream parity, every supported format, and unusable files."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from parity import VISION, assert_matches
from PIL import Image

from bindcli.errors import InputError
from bindcli.media import MediaOptions, load
from bindcli.modality import Kind

REFERENCE_IMAGES = [
    "dog_image.jpg",
    "car_image.jpg",
    "bird_image.jpg",
    "synthetic_rgba_0.png",
    "synthetic_gray_0.jpg",
]



@pytest.mark.parametrize("name", REFERENCE_IMAGES)
def test_matches_upstream(name, media_dir, preprocessed):
    out = load(media_dir / name, Kind.IMAGE)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert_matches(out.numpy(), preprocessed[f"vision/{name}"], VISION)  # CPU spread: parity.py


def _picture(width: int = 300, height: int = 200) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize(
    ("suffix", "params"),
    [
        (".bmp", {}),
        (".tif", {}),
        (".tiff", {"compression": "tiff_lzw"}),
        (".webp", {"lossless": True}),
    ],
)
def test_lossless_formats_equal_png(tmp_path, suffix, params):
    picture = Image.fromarray(_picture())
    picture.save(tmp_path / "ref.png")
    picture.save(tmp_path / f"pic{suffix}", **params)
    expected = load(tmp_path / "ref.png", Kind.IMAGE)
    torch.testing.assert_close(load(tmp_path / f"pic{suffix}", Kind.IMAGE), expected, atol=1e-6, rtol=0)


def test_jpeg_close_to_png(tmp_path):
    picture = Image.fromarray(_picture())
    picture.save(tmp_path / "ref.png")
    picture.save(tmp_path / "pic.jpg", quality=95)
    diff = load(tmp_path / "pic.jpg", Kind.IMAGE) - load(tmp_path / "ref.png", Kind.IMAGE)
    assert diff.abs().mean() < 0.05


def test_rgba_drops_alpha_without_compositing(tmp_path):
    rgb = _picture()
    alpha = np.zeros(rgb.shape[:2], np.uint8)  # fully transparent: compositing would blank it
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    torch.testing.assert_close(load(tmp_path / "a.png", Kind.IMAGE), load(tmp_path / "b.png", Kind.IMAGE))


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    grey8 = _picture()[..., 0]
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    Image.fromarray(grey8, "L").save(tmp_path / "flat.png")
    torch.testing.assert_close(load(tmp_path / "deep.png", Kind.IMAGE), load(tmp_path / "flat.png", Kind.IMAGE))


def test_gif_gives_first_frame(tmp_path):
    red = Image.new("RGB", (64, 48), (255, 0, 0))
    blue = Image.new("RGB", (64, 48), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue], duration=100)
    red.save(tmp_path / "red.png")
    torch.testing.assert_close(load(tmp_path / "anim.gif", Kind.IMAGE), load(tmp_path / "red.png", Kind.IMAGE))


def test_exif_orientation_is_applied(tmp_path):
    # Stored landscape: dark left half, bright right half. Orientation 6 = "rotate 90 degrees
    # clockwise to display", which puts the dark half on top of an upright portrait.
    stored = np.zeros((120, 240, 3), np.uint8)
    stored[:, 120:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    out = load(tmp_path / "phone.jpg", Kind.IMAGE)
    assert out[:, :100].mean() < -1.0 < 1.0 < out[:, 124:].mean()


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("L", (1, 1)).save(tmp_path / "tiny.png")
    data = bytearray((tmp_path / "tiny.png").read_bytes())
    # Rewrite the IHDR chunk to claim 100000 x 100000 pixels, with a valid CRC.
    ihdr = bytes(data[12:16]) + struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[16:24] = ihdr[4:12]
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    with pytest.raises(InputError, match="bomb"):
        load(tmp_path / "bomb.png", Kind.IMAGE)


def test_pixel_limit_is_an_option(tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "pic.png")
    with pytest.raises(InputError, match="pixel limit"):
        load(tmp_path / "pic.png", Kind.IMAGE, MediaOptions(max_image_pixels=1000))


def test_corrupt_and_truncated_jpeg(tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "good.jpg")
    good = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    for name in ("truncated.jpg", "garbage.jpg"):
        with pytest.raises(InputError, match=name):
            load(tmp_path / name, Kind.IMAGE)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load(tmp_path / "absent.png", Kind.IMAGE)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load(tmp_path / "empty.png", Kind.IMAGE)
    with pytest.raises(InputError, match="not a regular file"):
        load(tmp_path, Kind.IMAGE)
