"""What real files and names do to the commands: sound off channel 0, warnings on stderr,
emoji and markup in names, compare with one usable input, stdin twice, FIFOs, empty texts."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile
from PIL import Image

from bindcli.zeroshot import read_lines
from cli_support import bind, jsonl, media


def _vectors(result) -> dict[str, np.ndarray]:
    assert result.exit_code == 0, result.stderr
    return {r["input"]: np.array(r["embedding"]) for r in jsonl(result.stdout)}


def test_audio_mix_mono_hears_the_right_channel_and_upstream_warns(tmp_path):
    t = np.arange(16000) / 16000
    right = np.zeros((16000, 2), np.float32)
    right[:, 1] = 0.5 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(tmp_path / "right.wav", right, 16000)
    soundfile.write(tmp_path / "silent.wav", np.zeros((16000, 2), np.float32), 16000)
    files = [tmp_path / "right.wav", tmp_path / "silent.wav"]
    upstream = bind("embed", *files, "-f", "jsonl", "-q")
    vectors = _vectors(upstream)
    r, s = vectors[str(files[0])], vectors[str(files[1])]
    assert r @ s > 0.9999  # upstream's channel 0: silence
    warned = [line for line in upstream.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and str(files[0]) in warned[0] and "--audio-mix mono" in warned[0]
    mono = bind("embed", *files, "-f", "jsonl", "--audio-mix", "mono")  # the cache is warm
    vectors = _vectors(mono)
    assert vectors[str(files[0])] @ vectors[str(files[1])] < 0.999
    assert "warning" not in mono.stderr
    again = _vectors(bind("embed", *files, "-f", "jsonl", "-q"))
    np.testing.assert_allclose(again[str(files[0])], r)  # the two mixes never share entries


def test_a_collection_holds_vectors_of_one_audio_mix(tmp_path):
    """A collection is pinned to its audio mix as to its model: a mono index or query of an
    upstream collection is refused (its unchanged files would keep upstream's vectors)."""
    folder = tmp_path / "sounds"
    folder.mkdir()
    shutil.copy(media("dog_audio.wav"), folder / "dog.wav")
    db = tmp_path / "c.sqlite3"
    assert bind("index", folder, "--db", db, "-q").exit_code == 0
    for args in (["index", folder], ["search", folder / "dog.wav"]):
        mixed = bind(*args, "--db", db, "--audio-mix", "mono", "-q")
        assert mixed.exit_code == 1 and "--audio-mix" in mixed.stderr, mixed.stderr
    assert bind("index", folder, "--db", db, "-c", "mono", "--audio-mix", "mono", "-q").exit_code == 0
    found = bind("search", folder / "dog.wav", "--db", db, "-c", "mono", "--audio-mix", "mono",
                 "-f", "jsonl", "-k", "0")
    assert found.exit_code == 0, found.stderr
    assert bind("search", "-t", "a dog", "--db", db, "-f", "jsonl").exit_code == 0  # upstream's


def _bind_catching_python_warnings(*args):
    """`bind ARGS`, and the warnings that reached Python's own display (pytest records them
    instead of letting them reach stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bind(*args)
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


def test_decoder_warnings_name_the_input_and_respect_quiet(tmp_path):
    np.save(tmp_path / "far.npy", np.full((32, 32), 1e300))  # overflows float32
    loud, escaped = _bind_catching_python_warnings("embed", tmp_path / "far.npy", "--as", "depth", "-f", "jsonl")
    assert escaped == []
    assert loud.exit_code == 0, loud.stderr
    assert f"bind: warning: {tmp_path / 'far.npy'}: overflow encountered in cast" in loud.stderr
    assert "RuntimeWarning" not in loud.stderr
    quiet = bind("embed", tmp_path / "far.npy", "--as", "depth", "-f", "jsonl", "-q", "--no-cache")
    assert quiet.stderr == ""


def test_a_decompression_bomb_is_one_line(tmp_path):
    Image.new("1", (9500, 9500)).save(tmp_path / "bomb.png")
    result, escaped = _bind_catching_python_warnings("embed", tmp_path / "bomb.png", "-f", "jsonl")
    assert result.exit_code == 1 and escaped == []
    assert result.stderr.splitlines() == [
        f"bind: {tmp_path / 'bomb.png'}: image is 9500x9500 = 90250000 pixels, over the "
        "89478485-pixel limit (decompression-bomb guard)"
    ]


def test_emoji_codes_and_markup_in_names_are_printed_as_they_are(tmp_path):
    fire = tmp_path / "cat:fire:.jpg"
    marked = tmp_path / "[b]x.jpg"
    for path in (fire, marked):
        shutil.copy(media("dog_image.jpg"), path)
    table = bind("compare", fire, marked, "-f", "table")
    assert table.exit_code == 0, table.stderr
    assert "cat:fire:.jpg" in table.stdout and "[b]x.jpg" in table.stdout
    assert "\N{FIRE}" not in table.stdout
    summary = bind("embed", fire, "-f", "table", "-q")
    assert "cat:fire:.jpg" in summary.stdout
    missing = bind("embed", "x:thumbsup:.jpg", "-f", "jsonl")
    assert "bind: x:thumbsup:.jpg: no such file" in missing.stderr
    device = bind("embed", "--text", "a dog", "--device", "cuda:x", env={"BIND_DEVICE": ""})
    assert device.exit_code == 2 and "cuda:x" in device.stderr


def test_collection_names_in_tables_are_not_markup(tmp_path):
    assert bind("index", media("dog_image.jpg"), "-c", "[red]pets[/red]", "-q").exit_code == 0
    listed = bind("collections", "list", "-f", "table")
    assert listed.exit_code == 0, listed.stderr
    assert "[red]pets[/red]" in listed.stdout


def test_compare_with_one_usable_input_says_there_is_nothing_to_compare():
    result = bind("compare", media("dog_image.jpg"), "missing.jpg", "-f", "table")
    assert result.exit_code == 1
    assert "1.000" not in result.stdout and result.stdout == ""
    assert "nothing to compare" in result.stderr


def test_stdin_may_not_feed_both_rows_and_columns():
    result = bind("compare", "-", "--against", "-", input=media("dog_image.jpg") + "\n")
    assert result.exit_code == 2 and "once" in result.stderr


def test_a_fifo_is_reported_as_one(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    result = bind("embed", tmp_path / "pipe.jpg", "-f", "jsonl")
    assert result.exit_code == 1 and "named pipe" in result.stderr and "no such file" not in result.stderr


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_text_is_an_input_error(text):
    result = bind("embed", "--text", text, "--text", "a dog", "-f", "jsonl")
    assert result.exit_code == 1
    assert [r["input"] for r in jsonl(result.stdout)] == ["a dog"]
    assert f'bind: "{text}": empty text' in result.stderr


def test_a_text_that_is_not_utf8_fails_alone_in_one_line():
    """`--text "$(printf 'caf\\xe9')"` from a Latin-1 shell: Python holds the byte as a lone
    surrogate, which the tokenizer would read as U+FFFD; refused, named as a shell re-types it."""
    result = bind("embed", "--text", os.fsdecode(b"caf\xe9"), "--text", "a dog", "-f", "jsonl", "--no-cache")
    assert result.exit_code == 1
    assert [r["input"] for r in jsonl(result.stdout)] == ["a dog"]
    assert result.stderr.splitlines() == ["bind: $'caf\\xe9': not valid UTF-8 (byte 0xe9 at character 4); give the text in UTF-8"]


def test_a_hash_inside_a_word_is_part_of_the_label(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("# languages\nC#\nF#  # functional\n  # indented comment\nGo\n", encoding="utf-8")
    assert read_lines(labels) == ("C#", "F#", "Go")
