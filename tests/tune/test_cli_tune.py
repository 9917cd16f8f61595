"""`bind tune` on a task the small random model gets near chance, and the adapter used by
the other commands: the report's figure is what `bind eval` and `bind classify` give with it,
vectors without it are unchanged, and what was made without it is not mixed with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_support import bind, jsonl, media
from stripes import CLASSES, stripes

from bindcli.embed.identity import Model
from bindcli.embed.remote import Address, connect
from bindcli.model.adapter import AdapterHeader
from bindcli.model.tuning import save_adapter

RUNS = {
    "head": ["--method", "head", "--lr", "0.1", "--epochs", "60", "--patience", "60"],
    "lora": ["--method", "lora", "--rank", "4", "--blocks", "2", "--lr", "3e-3", "--epochs", "12"],
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    return stripes(root / "train", 16, seed=1), stripes(root / "val", 8, seed=2), stripes(root / "keep", 4, seed=3)


@pytest.fixture(scope="module", params=sorted(RUNS))
def tuned(request, folders, tmp_path_factory):
    """(method, adapter path, the report printed at the end)."""
    train, val, keep = folders
    adapter = tmp_path_factory.mktemp(request.param) / "stripes.safetensors"
    result = bind("tune", train, "-o", adapter, "--val", val, "--keep", keep, "--train-batch", "8",
                  *RUNS[request.param], "-f", "json")
    assert result.exit_code == 0, result.stderr
    return request.param, adapter, json.loads(result.stdout)


def test_tuning_lifts_a_task_near_chance_to_at_least_0_9(tuned):
    method, adapter, report = tuned
    held_out = report["held_out"]
    assert report["method"] == method and report["tower"] == "vision" and held_out["n"] == 16
    assert held_out["before"] == 0.5  # every image in one class
    assert held_out["after"] >= 0.9


def test_eval_and_classify_with_the_adapter_reproduce_the_report(tuned, folders):
    _, adapter, report = tuned
    val = folders[1]
    after = json.loads(bind("eval", val, "--adapter", adapter, "-f", "json").stdout)
    before = json.loads(bind("eval", val, "-f", "json").stdout)
    assert (before["top1"], after["top1"]) == (report["held_out"]["before"], report["held_out"]["after"])
    files = sorted(str(p) for c in CLASSES for p in (val / c).iterdir())
    ranked = jsonl(bind("classify", *files, "-l", ",".join(CLASSES), "-f", "jsonl", "--adapter", adapter).stdout)
    right = [r["labels"][0]["label"] == r["input"].split("/")[-2] for r in ranked]
    assert np.mean(right) == report["held_out"]["after"]
    through_env = json.loads(bind("eval", val, "-f", "json", env={"BIND_ADAPTER": str(adapter)}).stdout)
    assert through_env["top1"] == after["top1"]


def test_keep_measures_the_second_data_set_before_and_after(tuned, folders):
    _, adapter, report = tuned
    keep = folders[2]
    assert report["keep"]["n"] == 8
    assert report["keep"]["before"] == json.loads(bind("eval", keep, "-f", "json").stdout)["top1"]
    assert report["keep"]["after"] == json.loads(bind("eval", keep, "--adapter", adapter, "-f", "json").stdout)["top1"]


def test_report_of_an_adapter_prints_the_same_figures(tuned, folders):
    _, adapter, report = tuned
    again = bind("tune", "--report", adapter, folders[1], "--keep", folders[2], "-f", "json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout) == report
    table = bind("tune", "--report", adapter, folders[1], "-f", "table").stdout
    assert "held out" in table and "before %" in table


def test_report_finds_the_held_out_split_of_the_data_tuned_on(folders, tmp_path):
    adapter = tmp_path / "a.safetensors"
    first = bind("tune", folders[0], "-o", adapter, "--val", "0.25", "--epochs", "2", "-f", "json")
    assert first.exit_code == 0, first.stderr
    figure = json.loads(first.stdout)["held_out"]
    assert figure["n"] == 8
    assert json.loads(bind("tune", "--report", adapter, folders[0], "-f", "json").stdout)["held_out"] == figure


def test_vectors_without_the_adapter_are_unchanged(tuned):
    from bindcli.embed.embedder import open_embedder

    _, adapter, _ = tuned
    inputs = [media("dog_image.jpg"), media("dog_audio.wav")]

    def raw(**kw):
        with open_embedder(*_small(), device="cpu", precision="fp32", cache=False, **kw) as e:
            return [r.raw for r in e.embed(inputs, texts=["a dog"])]

    plain, with_it, again = raw(), raw(adapter=adapter), raw()
    assert all(np.array_equal(a, b) for a, b in zip(plain, again))
    assert not np.allclose(with_it[0], plain[0])  # the image goes through the tuned tower
    assert all(np.array_equal(a, b) for a, b in zip(plain[1:], with_it[1:]))  # audio, text: untouched


def test_a_collection_built_without_the_adapter_refuses_its_vectors(tuned, folders, tmp_path):
    _, adapter, _ = tuned
    db = tmp_path / "c.sqlite3"
    assert bind("index", folders[2], "--db", db).exit_code == 0
    mixed = bind("index", folders[1], "--db", db, "--adapter", adapter)
    assert mixed.exit_code == 1
    assert "+adapter=" in mixed.stderr and "--adapter" in mixed.stderr
    vectors = tmp_path / "v.npy"
    assert bind("embed", media("dog_image.jpg"), "--adapter", adapter, "-o", vectors).exit_code == 0
    imported = bind("collections", "import", "default", vectors, "--db", db)
    assert imported.exit_code == 1 and "+adapter=" in imported.stderr


def test_an_adapter_of_another_model_is_refused_with_both_ids(tmp_path):
    import torch

    other = tmp_path / "other.safetensors"
    save_adapter(other, {"head.map": torch.eye(32)}, AdapterHeader(base="imagebind_huge:0000:abc", tower="vision", method="head"))
    result = bind("embed", media("dog_image.jpg"), "--adapter", other)
    assert result.exit_code == 2
    ours = Model.resolve(*_small()).id
    assert "imagebind_huge:0000:abc" in result.stderr and ours in result.stderr


def test_a_file_that_is_no_adapter_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    result = bind("embed", media("dog_image.jpg"), "--adapter", bad)
    assert result.exit_code == 2 and "not a bind adapter" in result.stderr


def test_a_server_with_another_adapter_is_not_used(tuned):
    _, adapter, _ = tuned
    plain = Model.resolve(*_small())
    tuned_model = plain.adapted(adapter)
    info = {"id": plain.id, "vectors_id": plain.vectors_id(), "precision": "fp32", "device": "cpu"}
    embedder, why = connect(Address(unix="/nonexistent"), tuned_model, precision="auto", device="auto", info=info)
    assert embedder is None and "serves no adapter, not adapter=" in why
    info["vectors_id"] = tuned_model.vectors_id()
    embedder, why = connect(Address(unix="/nonexistent"), plain, precision="auto", device="auto", info=info)
    assert embedder is None and f"serves adapter={tuned_model.adapter.id}, not no adapter" in why
    embedder, _ = connect(Address(unix="/nonexistent"), tuned_model, precision="auto", device="auto", info=info)
    assert embedder is not None and embedder.adapter.id == tuned_model.adapter.id


def test_one_class_and_bad_options_are_refused_before_loading(tmp_path, folders):
    import shutil

    shutil.copytree(folders[0] / "columns", tmp_path / "one" / "columns")
    result = bind("tune", tmp_path / "one", "-o", tmp_path / "a.safetensors")
    assert result.exit_code == 2 and "one: 1 class; tuning needs at least two" in result.stderr
    assert bind("tune", folders[0]).exit_code == 2  # neither -o nor --report
    result = bind("tune", folders[0], "-o", tmp_path / "a.safetensors", "--val", "1.5")
    assert result.exit_code == 2 and "--val 1.5" in result.stderr


def _small():
    from cli_support import SMALL

    return SMALL["BIND_MODEL_CONFIG"], SMALL["BIND_WEIGHTS"]


def test_unreadable_files_are_named_once_skipped_and_counted(tmp_path):
    data, val = stripes(tmp_path / "data", 6, seed=4), stripes(tmp_path / "val", 2, seed=5)
    (val / "rows" / "broken.png").write_bytes(b"not a png")  # met in training and in the report
    result = bind("tune", data, "-o", tmp_path / "a.safetensors", "--val", val, "--epochs", "1", "-f", "json")
    assert result.exit_code == 1  # some input failed; the rest trained
    assert [line for line in result.stderr.splitlines() if "broken.png" in line] == [
        f"bind: {val / 'rows' / 'broken.png'}: cannot read image: cannot identify image file "
        f"'{val / 'rows' / 'broken.png'}'"]
    assert json.loads(result.stdout)["held_out"]["n"] == 4
