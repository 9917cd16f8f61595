"""`bind compare`: all-vs-all and rows x columns, cosine and softmax, every format."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from cli_support import bind, media, reference


def test_all_against_all_json_is_the_cosine_matrix():
    result = bind("compare", media("dog_image.jpg"), media("car_image.jpg"), "-t", "a dog", "-f", "json")
    assert result.exit_code == 0, result.stderr
    table = json.loads(result.stdout)
    assert table["rows"] == table["columns"] == [media("dog_image.jpg"), media("car_image.jpg"), "a dog"]
    scores = np.array(table["scores"])
    np.testing.assert_allclose(np.diag(scores), 1, atol=1e-5)
    np.testing.assert_allclose(scores, scores.T, atol=1e-6)
    expected = reference("vision/dog_image.jpg") @ reference("vision/car_image.jpg")
    assert abs(scores[0, 1] - expected) < 1e-5


def test_softmax_is_upstreams_per_row_softmax_of_raw_outputs():
    args = [media("dog_image.jpg"), media("car_image.jpg"), "-T", "dog", "-T", "car", "-T", "bird"]
    probs = np.array(json.loads(bind("compare", *args, "--softmax", "-f", "json").stdout)["scores"])
    raw_rows = json.loads(bind("embed", *args[:2], "--raw", "-f", "json").stdout)
    raw_cols = json.loads(bind("embed", "-t", "dog", "-t", "car", "-t", "bird", "--raw", "-f", "json").stdout)
    logits = np.array([r["embedding"] for r in raw_rows]) @ np.array([c["embedding"] for c in raw_cols]).T
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)


def test_square_softmax_leaves_each_input_out_of_its_own_row():
    result = bind("compare", media("dog_image.jpg"), media("car_image.jpg"), media("bird_image.jpg"),
                  "--softmax", "-f", "json")
    scores = json.loads(result.stdout)["scores"]
    assert [scores[i][i] for i in range(3)] == [None, None, None]
    for i, row in enumerate(scores):
        assert abs(sum(v for v in row if v is not None) - 1) < 1e-5


def test_table_marks_the_best_match_of_each_row_but_never_the_input_itself():
    result = bind("compare", media("dog_image.jpg"), media("car_image.jpg"), "-t", "a dog", "-f", "table")
    lines = [line for line in result.stdout.splitlines() if line.startswith("│ dog_image.jpg")]
    assert lines and "1.000*" not in lines[0] and lines[0].count("*") == 1
    assert "best match" in result.stdout


def test_csv_matrix():
    result = bind("compare", media("dog_image.jpg"), "-a", media("dog_audio.wav"), "-T", "a dog", "-f", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["", media("dog_audio.wav"), "a dog"]
    assert rows[1][0] == media("dog_image.jpg") and len(rows[1]) == 3


def test_a_failed_input_drops_out_and_exits_1():
    result = bind("compare", media("dog_image.jpg"), "nope.png", media("car_image.jpg"), "-f", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rows"] == [media("dog_image.jpg"), media("car_image.jpg")]
    assert "bind: nope.png: no such file" in result.stderr


def test_one_input_is_a_usage_error():
    assert bind("compare", media("dog_image.jpg")).exit_code == 2
