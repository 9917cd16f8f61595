"""Long recordings read in windows of time: each reading, short files, damaged ones."""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest
import soundfile
import torch

from bindcli.errors import InputError, InputWarning
from bindcli.media import MediaOptions, load
from bindcli.media.image import CLIP_MEAN, CLIP_STD
from bindcli.media.segments import read_segments, stream_segments
from bindcli.modality import Kind
from bindcli.windows import Reading, Window

RATE = 16_000
FPS = 10
STEP = 4  # grey level of frame i is STEP * i % 256


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)


def _film(path, frames: int, sound: np.ndarray | None = None) -> None:
    with av.open(str(path), "w") as container:
        picture = container.add_stream("libx264", rate=FPS)
        picture.width, picture.height, picture.pix_fmt = 96, 64, "yuv420p"
        picture.codec_context.gop_size = 12
        picture.options = {"crf": "0"}
        track = container.add_stream("aac", rate=RATE, layout="mono") if sound is not None else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), STEP * i % 256, np.uint8), format="rgb24")
            container.mux(picture.encode(frame))
        container.mux(picture.encode(None))
        if track is not None:
            for start in range(0, len(sound), 1024):
                chunk = av.AudioFrame.from_ndarray(sound[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = RATE
                container.mux(track.encode(chunk))
            container.mux(track.encode(None))


def _grey_index(view: torch.Tensor) -> int:
    grey = view * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)
    return round(float(grey.mean()) * 255 / STEP)


def _segments(path, kind, reading, spec, options=MediaOptions()):
    return list(read_segments(path, kind, reading, Window.parse(spec), options))


def test_a_wav_gives_one_clip_per_window_equal_to_the_clip_loaded_alone(tmp_path):
    sound = _noise(11)
    soundfile.write(tmp_path / "long.wav", sound, RATE, subtype="FLOAT")
    found = _segments(tmp_path / "long.wav", Kind.AUDIO, Reading.SOUND, "2s:1s")
    assert [(s.start, s.end) for s in found] == [(k, k + 2) for k in range(10)]
    assert found[0].tensor.shape == (1, 1, 128, 204)
    soundfile.write(tmp_path / "third.wav", sound[3 * RATE : 5 * RATE], RATE, subtype="FLOAT")
    alone = load(tmp_path / "third.wav", Kind.AUDIO, MediaOptions(audio_clips=1))
    torch.testing.assert_close(found[3].tensor, alone)


def test_a_long_window_is_read_as_clips_spread_over_it(tmp_path):
    soundfile.write(tmp_path / "long.wav", _noise(12), RATE)
    found = _segments(tmp_path / "long.wav", Kind.AUDIO, Reading.SOUND, "5s:2.5s")
    assert found[0].tensor.shape == (3, 1, 128, 204) and (found[-1].start, found[-1].end) == (7.0, 12.0)


def test_a_file_shorter_than_a_window_is_one_segment(tmp_path):
    soundfile.write(tmp_path / "short.wav", _noise(1.2), RATE)
    [only] = _segments(tmp_path / "short.wav", Kind.AUDIO, Reading.SOUND, "5s")
    assert (only.start, only.end) == (0.0, 1.2)


def test_a_streamed_sound_track_matches_the_seeked_one_window_for_window(tmp_path):
    sound = _noise(9)
    _film(tmp_path / "film.mp4", 90, sound)
    streamed = _segments(tmp_path / "film.mp4", Kind.VIDEO, Reading.SOUND, "2s:2s")
    assert [s.start for s in streamed][:4] == [0, 2, 4, 6]
    soundfile.write(tmp_path / "same.wav", sound, RATE)
    seeked = _segments(tmp_path / "same.wav", Kind.AUDIO, Reading.SOUND, "2s:2s")
    for a, b in zip(streamed[:4], seeked[:4]):  # AAC is lossy: the same sound, not the same bits
        assert torch.corrcoef(torch.stack([a.tensor.ravel(), b.tensor.ravel()]))[0, 1] > 0.9


def test_frames_are_each_windows_middle_frame_and_clips_its_first_and_last(tmp_path):
    _film(tmp_path / "count.mp4", 120)  # 12 s
    frames = _segments(tmp_path / "count.mp4", Kind.VIDEO, Reading.FRAMES, "2s")
    assert [s.start for s in frames] == [0, 2, 4, 6, 8, 10]
    assert [_grey_index(s.tensor) for s in frames] == [(10 + 20 * k) % 64 for k in range(6)]
    clips = _segments(tmp_path / "count.mp4", Kind.VIDEO, Reading.CLIPS, "4s:4s")
    assert clips[1].tensor.shape == (6, 3, 2, 224, 224)  # two 2 s clips, three crops each
    # window 4-8 s: clips spread as upstream spreads them over a file (a step of 2 s / 2
    # clips, `clip_spans`), 4-6 s and 5-7 s: frames 40, 59 and 50, 69
    assert [_grey_index(clips[1].tensor[v, :, t]) for v in (1, 4) for t in (0, 1)] == [40, 59, 50, 69 % 64]


def test_imu_windows(tmp_path):
    np.save(tmp_path / "walk.npy", np.random.default_rng(0).standard_normal((6, 400 * 23)).astype(np.float32))
    found = _segments(tmp_path / "walk.npy", Kind.IMU, Reading.IMU, "5s:5s")
    assert [s.start for s in found] == [0, 5, 10, 15, 18] and found[0].tensor.shape == (1, 6, 2000)
    assert _segments(tmp_path / "walk.npy", Kind.IMU, Reading.IMU, "10s")[0].tensor.shape == (2, 6, 2000)


def test_a_reading_the_kind_has_not_is_refused(tmp_path):
    soundfile.write(tmp_path / "a.wav", _noise(3), RATE)
    with pytest.raises(InputError, match="cannot be read as frames"):
        _segments(tmp_path / "a.wav", Kind.AUDIO, Reading.FRAMES, "2s")


def test_a_video_cut_short_keeps_its_segments_and_says_where_it_stopped(tmp_path):
    _film(tmp_path / "whole.mkv", 200)  # Matroska: the header is at the front, as a download's
    data = (tmp_path / "whole.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    items = [(str(tmp_path / "cut.mkv"), Kind.VIDEO, Reading.FRAMES, Window.parse("2s"), None)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(stream_segments(items))
    made = [item for _, item in got if item is not None]
    assert made and all(not isinstance(s, InputError) for s in made) and got[-1] == (0, None)
    [warning] = [w.message for w in caught if isinstance(w.message, InputWarning)]
    assert "stopped at 00:00:" in str(warning) and f"kept the {len(made)} segments" in str(warning)


def test_an_unreadable_file_is_its_error_and_the_others_go_on(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    soundfile.write(tmp_path / "good.wav", _noise(4), RATE)
    items = [(str(tmp_path / n), Kind.AUDIO, Reading.SOUND, Window.parse("2s"), None) for n in ("bad.wav", "good.wav")]
    got = list(stream_segments(items, workers=2, lookahead=1))
    assert any(n == 0 and isinstance(x, InputError) for n, x in got)
    assert [x.start for n, x in got if n == 1 and x is not None] == [0, 2]
