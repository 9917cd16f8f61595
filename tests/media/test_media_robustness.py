"""Files that used to load into misleading tensors: sound off channel 0, rotated videos, float
TIFFs, extreme aspect ratios, non-regular files, and decoder errors worded for people."""

from __future__ import annotations

import os
import struct
import warnings

import av
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from bindcli.errors import InputError, InputWarning
from bindcli.media import MediaOptions, load
from bindcli.media.image import vision_tensor
from bindcli.modality import Kind

MONO = MediaOptions(audio_upstream_quirks=False)


def _sound_on(channel: int, channels: int, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    samples = np.zeros((len(t), channels), np.float32)
    samples[:, channel] = 0.5 * np.sin(2 * np.pi * 440 * t)
    return samples


def _load_warning(path, options: MediaOptions = MediaOptions()) -> tuple[torch.Tensor, list[str]]:
    """The audio tensor, and the InputWarnings loading it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load(path, Kind.AUDIO, options)
    return out, [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


def test_sound_only_off_channel_0_warns_once_and_mono_hears_it(tmp_path):
    soundfile.write(tmp_path / "right.wav", _sound_on(1, 2), 16000)
    soundfile.write(tmp_path / "centre.wav", _sound_on(2, 6), 16000)
    soundfile.write(tmp_path / "silent.wav", np.zeros((16000, 2), np.float32), 16000)
    silent, messages = _load_warning(tmp_path / "silent.wav")
    assert messages == []
    for name in ("right.wav", "centre.wav"):
        path = tmp_path / name
        upstream, messages = _load_warning(path)
        assert len(messages) == 1 and str(path) in messages[0] and "--audio-mix mono" in messages[0]
        torch.testing.assert_close(upstream, silent)  # upstream hears silence
        mono, messages = _load_warning(path, MONO)
        assert (mono - silent).abs().max() > 1 and messages == []  # the mono mix does not
    soundfile.write(tmp_path / "left.wav", _sound_on(0, 2), 16000)
    assert _load_warning(tmp_path / "left.wav")[1] == []


def _write_mov(path, frames: np.ndarray, rotate_cw: int = 0) -> None:
    """A lossless (PNG) video of `frames`; `rotate_cw` degrees sets the track's display matrix
    (patched into `tkhd`, as a phone writes it: PyAV cannot set it)."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "rgb24"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if rotate_cw:
        one = 1 << 16
        cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[rotate_cw]
        data = bytearray(path.read_bytes())
        at = data.find(b"tkhd") + 4
        matrix = at + 4 + (20 if data[at] == 0 else 32) + 16
        data[matrix : matrix + 36] = struct.pack(">9i", cos * one, sin * one, 0, -sin * one, cos * one, 0, 0, 0, 1 << 30)
        path.write_bytes(data)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_video_rotation_metadata_is_applied(tmp_path, degrees):
    rng = np.random.default_rng(degrees)
    frames = rng.integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    _write_mov(tmp_path / "tagged.mov", frames, rotate_cw=degrees)
    upright = np.ascontiguousarray(np.rot90(frames, k=-degrees // 90, axes=(1, 2)))
    _write_mov(tmp_path / "upright.mov", upright)
    with av.open(str(tmp_path / "tagged.mov")) as container:
        assert next(container.decode(video=0)).rotation % 360 == -degrees % 360
    torch.testing.assert_close(load(tmp_path / "tagged.mov", Kind.VIDEO), load(tmp_path / "upright.mov", Kind.VIDEO))


def _float_tiff(path, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.float32), mode="F").save(path)


def test_float_tiff_image_is_refused(tmp_path):
    _float_tiff(tmp_path / "f.tif", np.random.default_rng(0).random((32, 32)))
    with pytest.raises(InputError, match="32-bit float image.*--as depth"):
        load(tmp_path / "f.tif", Kind.IMAGE)


def test_float_tiff_thermal_is_stretched_like_16_bit(tmp_path):
    celsius = 20 + 20 * np.random.default_rng(1).random((240, 320))
    _float_tiff(tmp_path / "c.tif", celsius)
    scaled = np.round((celsius - celsius.min()) / (celsius.max() - celsius.min()) * 65535)
    Image.fromarray(scaled.astype(np.uint16)).save(tmp_path / "c16.png")
    out = load(tmp_path / "c.tif", Kind.THERMAL)
    assert out.min() < 0.05 and out.max() > 0.95  # not 20..40 / 255
    torch.testing.assert_close(out, load(tmp_path / "c16.png", Kind.THERMAL), atol=1e-4, rtol=0)
    _float_tiff(tmp_path / "holes.tif", np.where(celsius > 30, np.nan, celsius))
    with pytest.raises(InputError, match="NaN or infinite"):
        load(tmp_path / "holes.tif", Kind.THERMAL)


def test_float_tiff_depth_is_metres(tmp_path):
    metres = 1 + 3 * np.random.default_rng(2).random((48, 64))
    _float_tiff(tmp_path / "d.tif", metres)
    np.save(tmp_path / "d.npy", metres.astype(np.float32))
    torch.testing.assert_close(load(tmp_path / "d.tif", Kind.DEPTH), load(tmp_path / "d.npy", Kind.DEPTH))


@pytest.mark.parametrize("kind", [Kind.IMAGE, Kind.THERMAL])
def test_extreme_aspect_ratio_is_refused_before_decoding(tmp_path, kind):
    Image.new("L", (3000, 1)).save(tmp_path / "line.png")
    with pytest.raises(InputError, match=r"3000x1.*aspect ratio"):
        load(tmp_path / "line.png", kind)
    Image.new("L", (1000, 20)).save(tmp_path / "panorama.png")  # 50:1 still loads
    assert load(tmp_path / "panorama.png", kind).shape[-2:] == (224, 224)


def test_extreme_aspect_ratio_video_is_refused(tmp_path):
    _write_mov(tmp_path / "strip.mov", np.zeros((2, 2, 1000, 3), np.uint8))
    with pytest.raises(InputError, match=r"1000x2.*aspect ratio"):
        load(tmp_path / "strip.mov", Kind.VIDEO)


def test_extreme_aspect_ratio_depth_array_is_refused(tmp_path):
    np.save(tmp_path / "line.npy", np.ones((2, 3000), np.float32))
    with pytest.raises(InputError, match=r"3000x2.*aspect ratio"):
        load(tmp_path / "line.npy", Kind.DEPTH)


def test_a_fifo_is_named_for_what_it_is(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(InputError, match="named pipe"):
        load(tmp_path / "pipe.wav", Kind.AUDIO)


def test_decoder_errors_are_worded_for_people(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"\x00junk" * 100)
    with pytest.raises(InputError) as caught:
        load(tmp_path / "junk.mp4", Kind.VIDEO)
    assert "Errno" not in caught.value.reason and "invalid data" in caught.value.reason.lower()
    Image.new("L", (8, 8)).save(tmp_path / "grey.png")
    with pytest.raises(InputError, match="an 8-bit greyscale image is not a depth map"):
        load(tmp_path / "grey.png", Kind.DEPTH)


def test_a_depth_map_read_as_imu_hints_at_as_depth(tmp_path):
    np.save(tmp_path / "depth.npy", np.ones((48, 64), np.float32))
    with pytest.raises(InputError, match="--as depth"):
        load(tmp_path / "depth.npy", Kind.IMU)


def test_palette_transparency_loads_without_a_python_warning(tmp_path):
    img = Image.new("P", (8, 8))
    img.putpalette(list(range(256)) * 3)
    img.info["transparency"] = bytes(range(256))
    img.save(tmp_path / "pal.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load(tmp_path / "pal.png", Kind.IMAGE)
    torch.testing.assert_close(out, vision_tensor(Image.open(tmp_path / "pal.png").convert("RGBA")))
