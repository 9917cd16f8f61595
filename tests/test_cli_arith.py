"""`bind arith`: the expression syntax, the paper's combination, gallery ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer

from bindcli.cli.arith import Term, combine, parse_expression
from cli_support import MEDIA, bind, jsonl, media, reference


def test_parse_operators_weights_and_text_terms():
    terms = parse_expression(["a.jpg", "-", "0.5:b.wav", "+", "c.png", "d.png"], ["-0.3:snow", "sky"])
    assert terms == [
        Term("a.jpg", 1.0), Term("b.wav", -0.5), Term("c.png", 1.0), Term("d.png", 1.0),
        Term("snow", -0.3, literal=True), Term("sky", 1.0, literal=True),
    ]


def test_parse_keeps_an_existing_file_whose_name_looks_weighted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "2:odd.jpg").write_bytes(b"")
    assert parse_expression(["2:odd.jpg"]) == [Term("2:odd.jpg", 1.0)]


@pytest.mark.parametrize("tokens", [["a.jpg", "-"], ["a.jpg", "+", "-", "b.jpg"], []])
def test_parse_rejects_dangling_operators(tokens):
    with pytest.raises(typer.BadParameter):
        parse_expression(tokens)


def test_combine_normalises_weights_and_renormalises():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 10.0])
    np.testing.assert_allclose(combine([a, b], [1.0, -1.0]), [2 ** -0.5, -(2 ** -0.5)])


def test_gallery_ranking_excludes_the_query_and_is_sorted():
    result = bind("arith", media("dog_image.jpg"), "-", media("dog_audio.wav"), "-t", "0.5:a car",
                  "--gallery", MEDIA, "-k", "3", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    hits = jsonl(result.stdout)
    assert len(hits) == 3
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert not any(h["path"].endswith(("dog_image.jpg", "dog_audio.wav")) for h in hits)
    assert {"path", "modality", "score"} == set(hits[0])


def test_single_term_ranks_its_nearest_image_by_cosine():
    hits = jsonl(bind("arith", media("car_image.jpg"), "-g", media("dog_image.jpg"),
                      "-g", media("bird_image.jpg"), "-f", "jsonl").stdout)
    car = reference("vision/car_image.jpg")
    expected = {"dog_image.jpg": car @ reference("vision/dog_image.jpg"),
                "bird_image.jpg": car @ reference("vision/bird_image.jpg")}
    for hit in hits:
        assert abs(hit["score"] - expected[hit["path"].rsplit("/", 1)[-1]]) < 1e-5


def test_paths_format_prints_bare_paths():
    result = bind("arith", media("car_image.jpg"), "-g", MEDIA, "-k", "2", "-f", "paths")
    assert len(result.stdout.splitlines()) == 2 and "{" not in result.stdout


def test_without_gallery_the_vector_is_written_or_printed(tmp_path):
    out = tmp_path / "q.npy"
    args = [media("dog_image.jpg"), "+", media("car_image.jpg")]
    assert bind("arith", *args, "-o", out).stdout == ""
    printed = json.loads(bind("arith", *args).stdout)
    expected = reference("vision/dog_image.jpg") + reference("vision/car_image.jpg")
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
    np.testing.assert_allclose(printed["embedding"], expected, atol=1e-5)


def test_cancelling_terms_and_missing_terms_fail_cleanly():
    cancel = bind("arith", media("dog_image.jpg"), "-", media("dog_image.jpg"))
    assert cancel.exit_code == 1 and "cancel out" in cancel.stderr
    missing = bind("arith", "missing.jpg", "-g", MEDIA)
    assert missing.exit_code == 1 and missing.stdout == ""
    assert "bind: missing.jpg: no such file" in missing.stderr
