"""`--segments` on the commands: rows with their windows, usage errors, and without the option
nothing changes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from cli_support import bind, jsonl, media

RATE = 16_000


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    sound = (np.random.default_rng(3).standard_normal(9 * RATE) * 0.05).astype(np.float32)
    soundfile.write(folder / "walk.wav", sound, RATE, subtype="PCM_16")
    return folder / "walk.wav"


def test_embed_writes_one_row_per_window_with_its_times(recording, tmp_path):
    rows = jsonl(bind("embed", "--segments", "2s", recording, "-f", "jsonl").stdout)
    assert [(r["start"], r["end"], r["reading"]) for r in rows] == [
        (0, 2, "sound"), (2, 4, "sound"), (4, 6, "sound"), (6, 8, "sound"), (7, 9, "sound")]
    result = bind("embed", "--segments", "2s:1s", recording, "-o", tmp_path / "walk.npy")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "walk.npy.json").read_text())
    assert np.load(tmp_path / "walk.npy").shape == (8, 32)
    assert [(r["start"], r["end"]) for r in manifest["rows"]][:2] == [(0, 2), (1, 3)]


def test_without_segments_rows_are_as_before(recording):
    [row] = jsonl(bind("embed", recording, "-f", "jsonl").stdout)
    assert set(row) == {"input", "modality", "embedding"}


def test_images_and_texts_stay_whole_beside_segments(recording):
    rows = jsonl(bind("embed", "--segments", "5s", recording, media("dog_image.jpg"), "-t", "a dog", "-f", "jsonl").stdout)
    assert [r.get("start") for r in rows if r["modality"] == "audio"] == [0, 4]
    assert {r["modality"] for r in rows if "start" not in r} == {"image", "text"}


@pytest.mark.parametrize(("spec", "message"), [
    ("1s", "shorter than the 2 s"), ("2s:0", "hop must be longer"), ("soon", "the form is LEN[:HOP]"),
])
def test_bad_windows_are_usage_errors(recording, spec, message):
    result = bind("embed", "--segments", spec, recording)
    assert result.exit_code == 2 and message in result.stderr


def test_a_reading_without_segments_is_a_usage_error(recording):
    assert bind("embed", "--reading", "frames", recording).exit_code == 2
