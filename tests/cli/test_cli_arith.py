"""`bind arith`: the expression syntax, the paper's combination, gallery ranking."""

from __future__ import annotations

import json

import numpy as np

from cli_support import MEDIA, bind, jsonl, media, reference


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
