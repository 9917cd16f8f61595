"""Audio: upstream parity (quirks included), every container, long files, unusable files."""

from __future__ import annotations

import tracemalloc

import av
import numpy as np
import pytest
import soundfile
import torch
from cli_support import write_av
from parity import AUDIO, assert_matches

from bindcli.errors import InputError
from bindcli.media import MediaOptions, load
from bindcli.media import audio
from bindcli.media.audio import FBANK_MEAN, FBANK_STD
from bindcli.modality import Kind

REFERENCE_AUDIO = [
    "dog_audio.wav",
    "car_audio.wav",
    "bird_audio.wav",
    "synthetic_short_0.wav",
    "synthetic_stereo_0.wav",
]
CLEAN = MediaOptions(audio_upstream_quirks=False)
LOG_FLOOR = (np.log(np.finfo(np.float32).eps) - FBANK_MEAN) / FBANK_STD



@pytest.mark.parametrize("name", REFERENCE_AUDIO)
def test_matches_upstream(name, media_dir, preprocessed):
    out = load(media_dir / name, Kind.AUDIO)
    assert out.shape == (3, 1, 128, 204) and out.dtype == torch.float32
    assert_matches(out.numpy(), preprocessed[f"audio/{name}"], AUDIO)  # CPU spread: parity.py


def test_clean_variant_departs_from_upstream_on_stereo(media_dir, preprocessed):
    # bird: channels differ, so a mono mix is not upstream's "channel 0"
    clean = load(media_dir / "bird_audio.wav", Kind.AUDIO, CLEAN).numpy()
    assert np.abs(clean - preprocessed["audio/bird_audio.wav"]).max() > 1e-2


def _tone(seconds: float, rate: int, freq: float = 1000.0, channels: int = 1) -> np.ndarray:
    """A tone with a DC offset; channel c at (c + 1) / channels of full level, exact in 16 bits."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t) + 0.1
    tone = np.stack([mono * (c + 1) / channels for c in range(channels)], 1)
    return (np.round(tone * 32767) / 32768).astype(np.float32)


def test_quirks_only_matter_for_overlap_and_stereo(tmp_path):
    soundfile.write(tmp_path / "long.wav", _tone(9.0, 16000), 16000)  # clips do not overlap
    soundfile.write(tmp_path / "short.wav", _tone(3.0, 16000), 16000)  # they do
    torch.testing.assert_close(load(tmp_path / "long.wav", Kind.AUDIO), load(tmp_path / "long.wav", Kind.AUDIO, CLEAN))
    quirky, clean = load(tmp_path / "short.wav", Kind.AUDIO), load(tmp_path / "short.wav", Kind.AUDIO, CLEAN)
    torch.testing.assert_close(quirky[0], clean[0])  # the first clip sees an untouched buffer
    assert (quirky[1:] - clean[1:]).abs().max() > 1e-3


def _peak_bin(features: torch.Tensor) -> int:
    return int(features[0, 0, :, :150].mean(dim=1).argmax())


@pytest.mark.parametrize(
    ("name", "subtype"),
    [("tone.flac", "PCM_16"), ("tone.ogg", "VORBIS"), ("tone.mp3", "MPEG_LAYER_III")],
)
def test_soundfile_formats(tmp_path, name, subtype):
    tone = _tone(2.5, 44100, channels=2)
    soundfile.write(tmp_path / "tone.wav", tone, 44100, subtype="PCM_16")
    soundfile.write(tmp_path / name, tone, 44100, subtype=subtype)
    reference = load(tmp_path / "tone.wav", Kind.AUDIO)
    out = load(tmp_path / name, Kind.AUDIO)
    assert out.shape == (3, 1, 128, 204)
    if subtype == "PCM_16":
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    assert _peak_bin(out) == _peak_bin(reference)


@pytest.mark.parametrize(("name", "codec", "rate"), [("tone.m4a", "aac", 44100), ("tone.opus", "libopus", 48000)])
def test_pyav_formats(tmp_path, name, codec, rate):
    tone = _tone(2.5, rate)[:, 0]
    soundfile.write(tmp_path / "tone.wav", tone, rate)
    write_av(tmp_path / name, codec, rate, tone)
    out = load(tmp_path / name, Kind.AUDIO)
    assert out.shape == (3, 1, 128, 204)
    assert _peak_bin(out) == _peak_bin(load(tmp_path / "tone.wav", Kind.AUDIO))


def test_audio_track_of_a_video(tmp_path):
    tone = _tone(2.5, 44100)[:, 0]
    soundfile.write(tmp_path / "tone.wav", tone, 44100)
    write_av(tmp_path / "clip.mp4", "aac", 44100, tone, video=True)
    out = load(tmp_path / "clip.mp4", Kind.AUDIO)
    assert out.shape == (3, 1, 128, 204)
    assert _peak_bin(out) == _peak_bin(load(tmp_path / "tone.wav", Kind.AUDIO))


def test_video_without_sound_track(tmp_path):
    with av.open(str(tmp_path / "silent.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    with pytest.raises(InputError, match="no audio track"):
        load(tmp_path / "silent.mp4", Kind.AUDIO)


def test_silence_sits_at_the_log_floor(tmp_path):
    soundfile.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    out = load(tmp_path / "silence.wav", Kind.AUDIO)
    frames = 1 + (16000 - 400) // 160
    np.testing.assert_allclose(out[..., :frames].numpy(), LOG_FLOOR, atol=1e-5)
    np.testing.assert_allclose(out[..., frames:].numpy(), -FBANK_MEAN / FBANK_STD, atol=1e-6)


def test_bad_audio(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    soundfile.write(tmp_path / "blip.wav", np.zeros(300, np.float32), 16000)
    soundfile.write(tmp_path / "no_samples.wav", np.zeros(0, np.float32), 16000)
    for name, reason in [
        ("empty.wav", "empty"),
        ("garbage.wav", "cannot read audio"),
        ("blip.wav", "shorter than one 25 ms"),
        ("no_samples.wav", "shorter than one 25 ms"),
        ("absent.wav", "no such file"),
    ]:
        with pytest.raises(InputError, match=reason):
            load(tmp_path / name, Kind.AUDIO)


def _peak_traced_bytes(fn) -> int:
    """Peak of Python-visible allocations (numpy arrays included) while `fn` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _whole_file(monkeypatch, path, options=MediaOptions()) -> torch.Tensor:
    with monkeypatch.context() as patch:
        patch.setattr(audio, "WINDOWED_SECONDS", float("inf"))
        return load(path, Kind.AUDIO, options)


@pytest.mark.slow
@pytest.mark.parametrize("options", [MediaOptions(), CLEAN])
def test_a_long_file_is_read_only_where_the_clips_fall(tmp_path, monkeypatch, options):
    seconds, rate = 75, 44100  # over WINDOWED_SECONDS; a rate that needs resampling
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (seconds * rate, 2)).astype(np.float32)
    soundfile.write(tmp_path / "long.wav", noise, rate, subtype="PCM_16")
    decoded_bytes = noise.nbytes
    windowed = load(tmp_path / "long.wav", Kind.AUDIO, options)
    torch.testing.assert_close(windowed, _whole_file(monkeypatch, tmp_path / "long.wav", options),
                               atol=1e-5, rtol=0)
    assert _peak_traced_bytes(lambda: load(tmp_path / "long.wav", Kind.AUDIO, options)) < decoded_bytes / 10
    assert _peak_traced_bytes(lambda: _whole_file(monkeypatch, tmp_path / "long.wav", options)) > decoded_bytes


@pytest.mark.slow
def test_a_long_video_sound_track_is_read_only_where_the_clips_fall(tmp_path, monkeypatch):
    seconds, rate = 75, 22050
    tone = _tone(seconds, rate)[:, 0] * np.linspace(0.2, 1.0, seconds * rate, dtype=np.float32)
    write_av(tmp_path / "film.mp4", "aac", rate, tone, video=True)
    windowed = load(tmp_path / "film.mp4", Kind.AUDIO)
    torch.testing.assert_close(windowed, _whole_file(monkeypatch, tmp_path / "film.mp4"),
                               atol=1e-5, rtol=0)
    decoded_bytes = seconds * rate * 4
    assert _peak_traced_bytes(lambda: load(tmp_path / "film.mp4", Kind.AUDIO)) < decoded_bytes / 10
    assert _peak_traced_bytes(lambda: _whole_file(monkeypatch, tmp_path / "film.mp4")) > decoded_bytes
