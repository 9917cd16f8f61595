"""Video: upstream parity, the frames each clip takes, every container, and bad files."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch
from parity import VIDEO, assert_matches

from bindcli.errors import InputError
from bindcli.media import MediaOptions, load
from bindcli.media.image import CLIP_MEAN, CLIP_STD
from bindcli.media.video import frame_indices
from bindcli.modality import Kind

FPS = 10
FRAMES = 64
STEP = 4  # grey level of frame i is STEP * i, so a decoded frame names its own index


def test_matches_upstream(media_dir, preprocessed):
    reference = preprocessed["video/synthetic_0.mp4"]
    out = load(media_dir / "synthetic_0.mp4", Kind.VIDEO)
    assert out.shape == (15, 3, 2, 224, 224) and out.dtype == torch.float32
    assert_matches(out.numpy(), reference, VIDEO)  # CPU spread: parity.py


def _write(path, codec: str, width: int = 96, height: int = 64, frames: int = FRAMES, pix_fmt: str = "yuv420p") -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = 12  # several keyframes, so seeking is exercised
        if codec == "libx264":
            stream.options = {"crf": "0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), STEP * i % 256, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        container.mux(stream.encode(None))


def _decoded_index(view: torch.Tensor) -> int:
    """The source frame index of one (3, 224, 224) normalised view."""
    grey = view * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)
    return round(float(grey.mean()) * 255 / STEP)


def test_each_clip_takes_its_first_and_last_frame(tmp_path):
    _write(tmp_path / "count.mp4", "libx264")
    out = load(tmp_path / "count.mp4", Kind.VIDEO)
    expected = frame_indices(FRAMES, FPS, MediaOptions())
    # 6.4 s: 2 s clips start every (6.4 - 2) / 5 s, frames ceil(fps * start) .. ceil(fps * end) - 1
    starts = [k * 4.4 / 5 for k in range(5)]
    assert expected == [i for s in starts for i in (math.ceil(FPS * s), math.ceil(FPS * (s + 2)) - 1)]
    got = [_decoded_index(out[3 * clip + 1, :, t]) for clip in range(5) for t in (0, 1)]
    assert got == expected
    torch.testing.assert_close(out[0::3, :, :, :, 0:224 - 32], out[1::3, :, :, :, 32:224])  # uniform frames


def test_short_video_repeats_its_frames(tmp_path):
    _write(tmp_path / "short.mp4", "libx264", frames=8)
    assert frame_indices(8, FPS, MediaOptions()) == [0, 7] * 5
    out = load(tmp_path / "short.mp4", Kind.VIDEO)
    assert [_decoded_index(out[1, :, t]) for t in (0, 1)] == [0, 7]


def test_three_crops_run_along_the_long_side(tmp_path):
    with av.open(str(tmp_path / "tall.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 128, "yuv420p"
        stream.options = {"crf": "0"}
        rows = np.repeat(np.linspace(0, 255, 128)[:, None], 64, axis=1)
        picture = np.repeat(rows[:, :, None], 3, axis=2).astype(np.uint8)
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    out = load(tmp_path / "tall.mp4", Kind.VIDEO)
    top, centre, bottom = (float(out[i].mean()) for i in range(3))
    assert top < centre < bottom


@pytest.mark.parametrize(
    ("name", "codec"),
    [("v.mov", "libx264"), ("v.mkv", "libx264"), ("v.webm", "libvpx-vp9"), ("v.avi", "mpeg4")],
)
def test_containers(tmp_path, name, codec):
    _write(tmp_path / name, codec, frames=30)
    out = load(tmp_path / name, Kind.VIDEO)
    assert out.shape == (15, 3, 2, 224, 224)
    expected = frame_indices(30, FPS, MediaOptions())
    got = [_decoded_index(out[3 * clip + 1, :, t]) for clip in range(5) for t in (0, 1)]
    assert max(abs(g - e) for g, e in zip(got, expected)) <= 1  # lossy codecs blur the grey


def test_truncated_and_corrupt_video(tmp_path):
    _write(tmp_path / "full.mp4", "libx264")
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.mp4").write_bytes(bytes(range(256)) * 16)
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("cut.mp4", "noise.mp4", "empty.mp4", "absent.mp4"):
        with pytest.raises(InputError, match=name):
            load(tmp_path / name, Kind.VIDEO)


def test_decoding_is_bounded_by_the_clips(tmp_path, monkeypatch):
    # A long file (100 s at 10 fps) must not be decoded frame by frame to its end.
    _write(tmp_path / "long.mp4", "libx264", width=32, height=32, frames=1000)
    decoded = 0
    real_decode = av.container.InputContainer.decode

    def counting_decode(self, *args, **kwargs):
        nonlocal decoded
        for frame in real_decode(self, *args, **kwargs):
            decoded += 1
            yield frame

    monkeypatch.setattr(av.container.InputContainer, "decode", counting_decode)
    load(tmp_path / "long.mp4", Kind.VIDEO)
    assert 0 < decoded <= 10 * 12  # at most one keyframe interval per wanted frame
