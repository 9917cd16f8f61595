"""`bind embed`: every output format, files and stdin, partial failure, parity with upstream."""

from __future__ import annotations

import csv
import io
import json
import stat
import warnings

import numpy as np
import pytest

from bindcli.errors import InputWarning
from bindcli.media import load
from cli_support import CUT_SHORT, FIXTURES, bind, cut_short_wav, jsonl, media, reference


def test_jsonl_matches_upstream_and_is_unit_length():
    result = bind("embed", media("dog_image.jpg"), media("dog_audio.wav"), "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    records = jsonl(result.stdout)
    assert [(r["input"], r["modality"]) for r in records] == [
        (media("dog_image.jpg"), "image"), (media("dog_audio.wav"), "audio"),
    ]
    for record, key in zip(records, ["vision/dog_image.jpg", "audio/dog_audio.wav"]):
        vector = np.array(record["embedding"], dtype=np.float32)
        assert abs(np.linalg.norm(vector) - 1) < 1e-5
        assert float(vector @ reference(key)) > 0.99999


def test_video_and_text_in_one_run_and_raw_keeps_upstream_scale():
    result = bind("embed", media("synthetic_0.mp4"), "--text", "a dog", "--raw", "-f", "json")
    assert result.exit_code == 0, result.stderr
    video, text = json.loads(result.stdout)
    assert (video["modality"], text["modality"], text["input"]) == ("video", "text", "a dog")
    raw = np.array(video["embedding"])
    upstream = np.load(FIXTURES / "end_to_end.npz")["video/synthetic_0.mp4"]
    np.testing.assert_allclose(raw, upstream, atol=1e-5)
    assert np.linalg.norm(text["embedding"]) > 1.5  # the text tower's logit scale, not 1


def test_csv_has_a_header_and_one_row_per_input():
    result = bind("embed", media("car_image.jpg"), "-t", "a car", "-f", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:3] == ["input", "modality", "e0"]
    assert [r[:2] for r in rows[1:]] == [[media("car_image.jpg"), "image"], ["a car", "text"]]
    assert len(rows[1]) == len(rows[0])


def test_npy_to_stdout_loads_with_numpy():
    result = bind("embed", media("car_image.jpg"), media("bird_image.jpg"), "-f", "npy")
    array = np.load(io.BytesIO(result.stdout_bytes))
    assert array.shape == (2, 32) and array.dtype == np.float32


def test_output_npy_writes_array_and_manifest(tmp_path):
    out = tmp_path / "vectors.npy"
    result = bind("embed", media("dog_image.jpg"), media("bird_audio.wav"), "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    array = np.load(out)
    manifest = json.loads((tmp_path / "vectors.npy.json").read_text())
    assert array.shape == (2, 32)
    assert float(array[0] @ reference("vision/dog_image.jpg")) > 0.99999
    assert manifest["normalised"] is True and manifest["precision"] == "fp32"
    assert manifest["model"].startswith("public_config:")
    row = manifest["rows"][0]
    assert row["modality"] == "image" and len(row["sha256"]) == 64
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


@pytest.mark.parametrize("suffix, parse", [
    (".jsonl", jsonl), (".json", json.loads),
])
def test_output_format_follows_the_suffix(tmp_path, suffix, parse):
    out = tmp_path / f"v{suffix}"
    bind("embed", "-t", "one", "-t", "two", "-o", out)
    assert [r["input"] for r in parse(out.read_text())] == ["one", "two"]


def test_out_dir_writes_one_npy_per_input(tmp_path):
    result = bind("embed", media("dog_image.jpg"), media("dog_audio.wav"), "--out-dir", tmp_path)
    assert result.exit_code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["dog_audio.wav.npy", "dog_image.jpg.npy", "manifest.json"]
    assert np.load(tmp_path / "dog_image.jpg.npy").shape == (32,)


def test_stdin_paths_and_a_bad_input_do_not_stop_the_others(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = "\n".join([media("car_image.jpg"), str(broken), "missing.wav", media("bird_image.jpg")])
    result = bind("embed", "-", "-f", "jsonl", input=paths + "\n")
    assert result.exit_code == 1
    assert [r["input"] for r in jsonl(result.stdout)] == [media("car_image.jpg"), media("bird_image.jpg")]
    errors = [line for line in result.stderr.splitlines() if line.startswith("bind: ")]
    assert f"bind: {broken}:" in "\n".join(errors)
    assert "bind: missing.wav: no such file" in errors
    assert "Traceback" not in result.stderr


def test_summary_table_on_request():
    result = bind("embed", media("dog_image.jpg"), "-t", "a dog", "-f", "table")
    assert "image" in result.stdout and '"a dog"' in result.stdout and "1.000" in result.stdout


@pytest.mark.parametrize("args, message", [
    ([], "give at least one FILE"),
    (["-t", "x", "-o", "out.txt"], "cannot tell the format"),
    (["-t", "x", "-o", "a.npy", "--out-dir", "d"], "either -o FILE or --out-dir"),
    (["-", "-"], "may be given once"),
    (["-"], "no inputs: stdin held no paths"),
])
def test_usage_errors_exit_2(args, message):
    result = bind("embed", *args, input="")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_unknown_model_config_is_one_line_and_exit_2():
    result = bind("embed", "-t", "x", "--model-config", "no-such-model")
    assert result.exit_code == 2
    assert result.stderr.startswith("bind: model config 'no-such-model'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_output_files_get_the_permissions_of_a_plain_write(tmp_path, umask):
    """Readable by a web server or a colleague sharing the folder when the umask allows it."""
    assert bind("embed", "-t", "a dog", "-o", tmp_path / "v.npy").exit_code == 0
    assert bind("embed", "-t", "a dog", "--out-dir", tmp_path / "each").exit_code == 0
    written = [tmp_path / "v.npy", tmp_path / "v.npy.json", *(tmp_path / "each").iterdir()]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: umask for p in written}


def test_an_output_folder_that_is_a_file_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "notadir").write_text("a file")
    target = tmp_path / "notadir" / "x.npy"
    result = bind("embed", media("dog_image.jpg"), "-o", target)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"bind: {target}: Not a directory"]
    assert [p.name for p in tmp_path.iterdir()] == ["notadir"]


def test_a_custom_config_without_weights_says_how_to_name_them():
    result = bind("embed", "-t", "x", env={"BIND_WEIGHTS": None, "BIND_WEIGHTS_URL": None})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "bind: no published weights are known for the model config 'public_config'; pass "
        "--weights PATH or set BIND_WEIGHTS to its checkpoint (or BIND_WEIGHTS_URL to download one, "
        'or give a JSON config a "weights": {"url": ...}).'
    ]


@pytest.fixture
def cut_wav(tmp_path):
    return cut_short_wav(tmp_path)


def test_a_wav_cut_short_is_embedded_from_what_it_holds_with_a_warning(cut_wav):
    cut, first = cut_wav
    result = bind("embed", cut, first, "-q", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [f"bind: warning: {cut}: {CUT_SHORT}"]
    got, whole = (np.array(r["embedding"]) for r in jsonl(result.stdout))
    assert float(got @ whole) > 0.99999


def test_a_library_user_is_warned_about_a_wav_cut_short(cut_wav):
    cut, first = cut_wav
    with pytest.warns(InputWarning, match="cut short") as caught:
        tensor = load(cut, "audio")
    assert caught[0].message.source == str(cut)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(first, "audio").equal(tensor)
