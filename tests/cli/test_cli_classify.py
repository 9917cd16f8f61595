"""`bind classify`: prompt ensembles per modality, top-k, label files, formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bindcli.cli.classify import read_labels
from bindcli.modality import Kind
from cli_support import bind, jsonl, media


def test_jsonl_probabilities_match_the_prompt_ensemble():
    result = bind("classify", media("dog_image.jpg"), "--labels", "dog,car", "--labels", "bird", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    [record] = jsonl(result.stdout)
    assert (record["input"], record["modality"]) == (media("dog_image.jpg"), "image")
    probs = [item["probability"] for item in record["labels"]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    assert {item["label"] for item in record["labels"]} == {"dog", "car", "bird"}
    # the "dog" score is the cosine to the normalised mean of the image prompts
    prompts = [t.replace("{}", "dog") for t in Kind.IMAGE.modality.templates]
    texts = json.loads(bind("embed", *sum((["-t", p] for p in prompts), []), "-f", "json").stdout)
    direction = np.mean([t["embedding"] for t in texts], axis=0)
    image = np.array(jsonl(bind("embed", media("dog_image.jpg"), "-f", "jsonl").stdout)[0]["embedding"])
    dog = next(item for item in record["labels"] if item["label"] == "dog")
    assert abs(dog["score"] - image @ direction / np.linalg.norm(direction)) < 1e-5


def test_top_k_labels_file_and_audio_prompts(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("# animals\ndog\nbird\n\ncar  # vehicles\n")
    result = bind("classify", media("bird_audio.wav"), media("car_image.jpg"), "-L", labels, "-k", "2", "-f", "jsonl")
    records = jsonl(result.stdout)
    assert [r["modality"] for r in records] == ["audio", "image"]
    assert all(len(r["labels"]) == 2 for r in records)


def test_template_override_changes_the_scores():
    base = jsonl(bind("classify", media("dog_image.jpg"), "-l", "dog,car", "-f", "jsonl").stdout)[0]
    custom = jsonl(bind("classify", media("dog_image.jpg"), "-l", "dog,car", "--template", "{}",
                        "-f", "jsonl").stdout)[0]
    assert base["labels"] != custom["labels"]


def test_table_groups_labels_under_each_input():
    result = bind("classify", media("dog_image.jpg"), media("dog_audio.wav"), "-l", "dog,car", "-f", "table")
    assert result.exit_code == 0
    assert "probability" in result.stdout and result.stdout.count("dog_") == 2


@pytest.mark.parametrize("args, message", [
    (["-l", "dog"], "give at least one FILE"),
    ([media("dog_image.jpg")], "give the candidate labels"),
    ([media("dog_image.jpg"), "-l", "dog", "--template", "a photo"], "has no {} for the label"),
])
def test_usage_errors(args, message):
    result = bind("classify", *args)
    assert result.exit_code == 2 and message in " ".join(result.stderr.split())


def test_read_labels_splits_strips_and_dedupes():
    assert read_labels(["dog, car", "dog,,bird"], None) == ["dog", "car", "bird"]


def test_a_labels_file_that_is_not_utf8_is_a_usage_error(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("caf\xe9\n".encode("latin-1"))
    result = bind("classify", media("dog_image.jpg"), "-L", labels)
    assert result.exit_code == 2 and str(labels) in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_bad_template_is_refused_on_its_option():
    result = bind("classify", media("dog_image.jpg"), "-l", "dog", "--template", "a photo")
    assert result.exit_code == 2 and "--template" in result.stderr and "has no {}" in result.stderr
