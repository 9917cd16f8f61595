"""Files read in segments through the Embedder: one vector per window, batched across files,
cached under the window spec and reading, and each window equal to embedding it alone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from bindcli.embed.embedder import Embedder
from bindcli.embed.identity import cache_key
from bindcli.embed.inputs import Input, gather, in_segments
from bindcli.embed.stages import Segments
from bindcli.errors import InputError, UsageError
from bindcli.model.config import load_config
from bindcli.model.placement import place
from bindcli.windows import Reading, Window
from cli_support import FIXTURES

RATE = 16_000


class Cache:
    def __init__(self):
        self.vectors = {}

    def cache_get(self, keys):
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def cache_put(self, entries):
        self.vectors.update(entries)


@pytest.fixture(scope="module")
def embedder():
    config = load_config(FIXTURES / "public_config.json")
    return Embedder(config, FIXTURES / "public.pth", place("cpu", "fp32"), batch_size=4, cache=Cache())


def _noise(path, seconds, seed):
    sound = (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)
    soundfile.write(path, sound, RATE, subtype="FLOAT")
    return sound


def test_each_window_is_the_vector_of_that_stretch_alone_and_files_batch_together(embedder, tmp_path):
    long = _noise(tmp_path / "long.wav", 9, 0)
    _noise(tmp_path / "other.wav", 5, 1)
    soundfile.write(tmp_path / "piece.wav", long[4 * RATE : 6 * RATE], RATE, subtype="FLOAT")
    items = in_segments(gather([tmp_path / "long.wav", tmp_path / "other.wav"]), Window.parse("2s"))
    first, second = embedder.embed(items)
    assert isinstance(first, Segments) and [(e.start, e.end) for e in first.parts] == [
        (0, 2), (2, 4), (4, 6), (6, 8), (7, 9)]
    assert [e.start for e in second.parts] == [0, 2, 3]
    alone = embedder.embed(in_segments(gather([tmp_path / "piece.wav"]), Window.parse("2s")))[0]
    np.testing.assert_allclose(first.raw[2], alone.raw[0], atol=1e-5)


def test_the_cache_holds_a_files_windows_under_its_spec(embedder, tmp_path):
    _noise(tmp_path / "a.wav", 6, 2)
    items = in_segments(gather([tmp_path / "a.wav"]), Window.parse("2s"))
    made = embedder.embed(items)[0]
    again = embedder.embed(items)[0]
    assert again.cached and not made.cached
    np.testing.assert_array_equal(again.raw, made.raw)
    np.testing.assert_allclose(again.times, made.times)
    other = embedder.embed(in_segments(gather([tmp_path / "a.wav"]), Window.parse("2s:1s")))[0]
    assert not other.cached and len(other.parts) == 5
    keys = {cache_key(x, "sha", "m", "fp32", None).options for x in (items[0], gather([tmp_path / "a.wav"])[0])}
    assert keys == {"|segments=2s:2s|reading=sound", ""}


def test_a_film_is_searchable_by_its_pictures_and_its_sound(embedder, media_dir):
    items = in_segments(gather([media_dir / "synthetic_0.mp4"]), Window.parse("2s"), [Reading.FRAMES, Reading.SOUND])
    assert [x.reading for x in items] == [Reading.FRAMES, Reading.SOUND]
    assert in_segments(gather([media_dir / "dog_audio.wav"]), Window.parse("2s"), [Reading.FRAMES])[0].reading is Reading.SOUND
    results = embedder.embed(items)
    assert [type(r) for r in results] == [Segments, InputError]  # the fixture film has no sound
    assert "no audio track" in results[1].reason


def test_kinds_without_time_and_short_windows(media_dir):
    image = gather([media_dir / "dog_image.jpg"], ["a dog"])
    assert in_segments(image, Window.parse("2s")) == image  # no time: embedded whole
    with pytest.raises(InputError, match="no time"):
        image[0].in_segments(Window.parse("2s"))
    with pytest.raises(UsageError, match="shorter than"):
        in_segments(gather([media_dir / "dog_audio.wav"]), Window.parse("1s"))
    assert Input.file(media_dir / "dog_audio.wav").window is None  # without --segments nothing changes
