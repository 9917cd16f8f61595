"""`--segments` on the commands: rows with their windows, usage errors, and without the option
nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

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


PLACED_AT = 371  # seconds: where the distinctive sound sits in the long recording


@pytest.fixture(scope="module")
def field_recording(tmp_path_factory):
    """A 10-minute 16 kHz recording of noise with a 2 s chirp placed at `PLACED_AT`, and the
    chirp alone (the query), as 16-bit WAVs."""
    folder = tmp_path_factory.mktemp("field")
    rng = np.random.default_rng(7)
    sound = rng.standard_normal(600 * RATE).astype(np.float32) * 0.05
    t = np.arange(2 * RATE) / RATE
    chirp = (0.5 * np.sin(2 * np.pi * (400 + 300 * t) * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    sound[PLACED_AT * RATE : (PLACED_AT + 2) * RATE] = chirp
    (folder / "walks").mkdir()
    soundfile.write(folder / "walks" / "field.wav", sound, RATE, subtype="PCM_16")
    soundfile.write(folder / "walks" / "other.wav", sound[: 20 * RATE], RATE, subtype="PCM_16")
    soundfile.write(folder / "chirp.wav", chirp, RATE, subtype="PCM_16")
    return folder


@pytest.mark.slow
def test_a_sound_placed_in_a_10_minute_recording_is_found_at_its_time(field_recording, tmp_path):
    db = ["--db", tmp_path / "bind.sqlite3"]
    made = bind("index", field_recording / "walks", "--segments", "2s:1s", "-c", "moments", *db)
    assert made.exit_code == 0, made.stderr
    assert bind("index", field_recording / "walks", "-c", "files", *db).exit_code == 0  # beside it
    found = jsonl(bind("search", field_recording / "chirp.wav", "-c", "moments", "-k", "3", "-f", "jsonl", *db).stdout)
    assert (found[0]["path"].endswith("field.wav"), found[0]["start"], found[0]["end"]) == (True, PLACED_AT, PLACED_AT + 2)
    grouped = jsonl(bind("search", field_recording / "chirp.wav", "-c", "moments", "--group-by", "file",
                         "-f", "jsonl", *db).stdout)
    assert [Path(h["path"]).name for h in grouped] == ["field.wav", "other.wav"]
    assert grouped[0]["start"] <= PLACED_AT and grouped[0]["end"] >= PLACED_AT + 2
    table = bind("search", field_recording / "chirp.wav", "-c", "moments", "-k", "1", "-f", "table", *db).stdout
    assert "field.wav  00:06:11-00:06:13" in table
    whole = jsonl(bind("search", field_recording / "chirp.wav", "-c", "files", "-f", "jsonl", *db).stdout)
    assert all("start" not in h for h in whole) and len(whole) == 2
    again = bind("index", field_recording / "walks", "--segments", "2s:1s", "-c", "moments", *db)
    assert "2 unchanged" in again.stderr
    bind("collections", "export", "moments", tmp_path / "moments.npy", *db)
    rows = json.loads((tmp_path / "moments.npy.json").read_text())["rows"]
    assert len(rows) == 599 + 19 and {"start", "end", "reading"} <= set(rows[0])


def test_another_window_spec_makes_the_collection_anew(field_recording, tmp_path):
    db = ["--db", tmp_path / "bind.sqlite3"]
    walks = field_recording / "walks"
    bind("index", walks / "other.wav", "--segments", "2s", "-c", "m", *db)
    again = bind("index", walks / "other.wav", "--segments", "4s", "-c", "m", *db)
    assert "1 embedded" in again.stderr
    bind("collections", "export", "m", tmp_path / "m.npy", *db)
    rows = json.loads((tmp_path / "m.npy.json").read_text())["rows"]
    assert [(r["start"], r["end"]) for r in rows] == [(s, s + 4) for s in range(0, 17, 4)]  # no 2 s window left


@pytest.mark.slow
def test_locate_in_finds_the_placed_sound_and_draws_the_timeline(field_recording, tmp_path):
    result = bind("locate", "--query", field_recording / "chirp.wav", "--in", field_recording / "walks" / "field.wav",
                  "-k", "3", "-f", "jsonl", "-o", tmp_path / "timeline.png")
    assert result.exit_code == 0, result.stderr
    [timeline] = jsonl(result.stdout)
    best = timeline["moments"][0]
    assert abs(best["start"] - PLACED_AT) <= 0.5 and abs(best["end"] - (PLACED_AT + 2)) <= 0.5
    assert len(timeline["moments"]) == 3 and timeline["reading"] == "sound"
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_frame_placed_in_a_long_video_is_found_by_an_image_query(tmp_path):
    import av
    from PIL import Image

    fps, seconds, placed = 2, 180, 97  # three minutes; the picture shows from 97 s for 1 s
    rng = np.random.default_rng(5)
    picture = np.zeros((64, 96, 3), np.uint8)
    picture[:, :48] = (250, 30, 30)
    picture[20:44, 48:] = (30, 30, 250)
    with av.open(str(tmp_path / "dashcam.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv444p"
        stream.options = {"crf": "0"}
        for i in range(seconds * fps):
            shown = picture if placed * fps <= i < (placed + 1) * fps else rng.integers(0, 80, (64, 96, 3), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(shown, format="rgb24")))
        container.mux(stream.encode(None))
    Image.fromarray(picture).save(tmp_path / "frame.png")
    located = bind("locate", "--query", tmp_path / "frame.png", "--in", tmp_path / "dashcam.mp4",
                   "--reading", "frames", "-k", "1", "-f", "jsonl")
    assert located.exit_code == 0, located.stderr
    [best] = jsonl(located.stdout)[0]["moments"]
    assert placed - 1 <= best["start"] and best["end"] <= placed + 2
    db = ["--db", tmp_path / "bind.sqlite3"]
    bind("index", tmp_path / "dashcam.mp4", "--segments", "1s", "--reading", "frames", "-c", "frames", *db)
    [hit] = jsonl(bind("search", tmp_path / "frame.png", "-c", "frames", "-k", "1", "-f", "jsonl", *db).stdout)
    assert (hit["start"], hit["end"]) == (placed, placed + 1)


def test_a_moment_of_a_file_is_a_query(recording, tmp_path):
    db = ["--db", tmp_path / "bind.sqlite3"]
    assert bind("index", recording, "--segments", "2s:1s", "-c", "m", *db).exit_code == 0
    hits = jsonl(bind("search", f"{recording}@4-6", "-c", "m", "-k", "2", "-f", "jsonl", *db).stdout)
    assert (hits[0]["start"], hits[0]["end"], hits[0]["score"]) == (4, 6, pytest.approx(1, abs=1e-5))
    assert hits[1]["start"] in (3, 5)  # the moment's own file is searched: its neighbours come next
    each = jsonl(bind("search", f"{recording}@0:02-0:04", f"0.5:{recording}@6-8", "--each", "-c", "m", "-k", "1",
                      "-f", "jsonl", *db).stdout)
    assert [(h["query"], h["start"]) for h in each] == [(0, 2), (1, 6)]
    [terms] = [json.loads(bind("arith", f"{recording}@4-6").stdout)["terms"]]
    assert (terms[0]["start"], terms[0]["end"]) == (4, 6)
    assert bind("search", f"{recording}@6-4", "-c", "m", *db).exit_code == 2


def test_compare_and_classify_give_a_row_per_window(recording):
    compared = json.loads(bind("compare", "--segments", "4s", recording, "-f", "json").stdout)
    assert [r.rsplit("@", 1)[1] for r in compared["rows"]] == ["00:00:00-00:00:04", "00:00:04-00:00:08", "00:00:05-00:00:09"]
    assert compared["scores"][0][0] == pytest.approx(1, abs=1e-5) and len(compared["scores"][0]) == 3
    rows = jsonl(bind("classify", "--segments", "4s", recording, "--labels", "rain,wind", "-f", "jsonl").stdout)
    assert [(r["start"], r["end"]) for r in rows] == [(0, 4), (4, 8), (5, 9)]


def test_a_collection_holds_segments_or_whole_files(recording, tmp_path):
    db = ["--db", tmp_path / "bind.sqlite3"]
    assert bind("index", recording, "-c", "files", *db).exit_code == 0
    refused = bind("index", recording, "--segments", "2s", "-c", "files", *db)
    assert refused.exit_code == 2 and "holds whole files" in refused.stderr
    assert bind("index", recording, "--segments", "2s", "-c", "moments", *db).exit_code == 0
    refused = bind("index", recording, "-c", "moments", *db)
    assert refused.exit_code == 2 and "add --segments 2s:2s" in refused.stderr
