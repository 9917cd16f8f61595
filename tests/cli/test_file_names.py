"""File names as POSIX has them: bytes that need not be UTF-8, and one file reached by
several paths (relative, absolute, through `..`). Stored losslessly, printed escaped, compared
by their canonical (resolved) path."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bindcli._util.paths import path_text
from bindcli.collections.nearest import index_for
from bindcli.collections.store import Item, Store
from cli_support import MEDIA, bind, copy_media, jsonl, sql

#: `café.png` spelt in Latin-1: not UTF-8, so Python holds it with a lone surrogate
LATIN1 = os.fsdecode(b"caf\xe9.png")
SHOWN = "$'caf\\xe9.png'"


@pytest.fixture
def latin1_folder(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    shutil.copy(MEDIA / "dog_image.jpg", root / "ok.jpg")
    try:
        shutil.copy(MEDIA / "synthetic_rgba_0.png", root / LATIN1)
    except (UnicodeEncodeError, OSError):  # pragma: no cover - a UTF-8-only file system
        pytest.skip("this file system refuses non-UTF-8 names")
    return root


def test_shell_form_escapes_only_what_is_not_utf8():
    assert path_text("/a/café b.png") == "/a/café b.png"
    assert path_text(f"/x/{LATIN1}") == "$'/x/caf\\xe9.png'"
    assert path_text(os.fsdecode(b"it's\\\xff")) == "$'it\\'s\\\\\\xff'"


def test_the_store_keeps_a_non_utf8_path_losslessly(tmp_path):
    with Store(tmp_path / "c.sqlite3") as store:
        coll = store.create_collection("c", "m", "model")
        path = str(tmp_path / LATIN1)
        store.put_items(coll, [Item(path, "image", 1, 1, "ab", np.ones(4, np.float32))])
        assert list(store.file_states(coll)) == [path]
        assert index_for(store, coll).search(np.ones(4, np.float32), k=1)[0][0].path == path
        store.mark_deleted(coll, [path])
        assert store.file_states(coll)[path].deleted


def test_index_finds_and_prints_a_non_utf8_name(tmp_path, latin1_folder):
    db = tmp_path / "c.sqlite3"
    indexed = bind("index", latin1_folder, "--db", db)
    assert indexed.exit_code == 0, indexed.stderr
    assert "2 files" in indexed.stderr
    again = bind("index", latin1_folder, "--db", db)
    assert again.exit_code == 0 and "2 unchanged" in again.stderr
    found = bind("search", latin1_folder / "ok.jpg", "--db", db, "-f", "jsonl")
    assert found.exit_code == 0, found.stderr
    found.stdout_bytes.decode("utf-8")  # valid UTF-8 through and through
    assert [r["path"] for r in jsonl(found.stdout)] == [f"$'{latin1_folder}/caf\\xe9.png'"]
    paths = bind("search", latin1_folder / "ok.jpg", "--db", db, "-f", "paths")
    assert paths.stdout_bytes == os.fsencode(latin1_folder / LATIN1) + b"\n"  # for xargs


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".npy"])
def test_embed_writes_every_format_for_a_non_utf8_name(tmp_path, latin1_folder, suffix):
    out = tmp_path / f"v{suffix}"
    result = bind("embed", latin1_folder / "ok.jpg", latin1_folder / LATIN1, "-o", out)
    assert result.exit_code == 0, result.stderr
    shown = [str(latin1_folder / "ok.jpg"), f"$'{latin1_folder}/caf\\xe9.png'"]
    if suffix == ".jsonl":
        assert [r["input"] for r in jsonl(out.read_text(encoding="utf-8"))] == shown
    elif suffix == ".csv":
        rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
        assert [r[0] for r in rows[1:]] == shown
    else:
        manifest = json.loads(out.with_name("v.npy.json").read_text(encoding="utf-8"))
        assert [r["input"] for r in manifest["rows"]] == shown
        assert np.load(out).shape[0] == 2


def test_a_path_list_on_stdin_may_hold_non_utf8_names(latin1_folder):
    listed = b"".join(os.fsencode(latin1_folder / n) + b"\0" for n in ("ok.jpg", LATIN1))
    result = bind("embed", "-", "-f", "jsonl", input=listed)
    assert result.exit_code == 0, result.stderr
    assert [r["input"] for r in jsonl(result.stdout)] == [
        str(latin1_folder / "ok.jpg"), f"$'{latin1_folder}/caf\\xe9.png'",
    ]


def test_embed_to_stdout_and_out_dir_with_a_non_utf8_name(tmp_path, latin1_folder):
    result = bind("embed", latin1_folder / LATIN1, "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout_bytes.decode("utf-8"))[0]["input"].endswith("caf\\xe9.png'")
    folder = tmp_path / "vectors"
    result = bind("embed", latin1_folder / LATIN1, "--out-dir", folder)
    assert result.exit_code == 0, result.stderr
    assert (folder / (LATIN1 + ".npy")).is_file()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rows"][0]["file"] == "$'caf\\xe9.png.npy'"


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """A folder of three images, and a working folder beside it (so `../photos` reaches it)."""
    root = copy_media(tmp_path / "photos", ["dog_image.jpg", "car_image.jpg", "bird_image.jpg"])
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return root


def test_one_file_reached_by_two_paths_is_indexed_once_and_never_its_own_hit(tmp_path, photos):
    db = tmp_path / "c.sqlite3"
    assert bind("index", "../photos", "--db", db).exit_code == 0
    again = bind("index", photos, "--db", db)
    assert again.exit_code == 0 and "3 unchanged" in again.stderr, again.stderr
    with Store(db) as store:
        assert sorted(store.file_states(store.require("default"))) == sorted(
            str(p) for p in photos.iterdir()
        )
    found = bind("search", "../photos/dog_image.jpg", "--db", db, "-f", "jsonl")
    assert found.exit_code == 0, found.stderr
    assert sorted(r["path"] for r in jsonl(found.stdout)) == [
        str(photos / "bird_image.jpg"), str(photos / "car_image.jpg"),
    ]


def test_arith_prints_canonical_paths_and_leaves_out_the_query_however_named(photos):
    result = bind("arith", str(photos / "dog_image.jpg"), "-g", "../photos", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert sorted(r["path"] for r in jsonl(result.stdout)) == [
        str(photos / "bird_image.jpg"), str(photos / "car_image.jpg"),
    ]


def test_out_dir_writes_one_file_per_input_even_for_same_names_and_content(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(MEDIA / "dog_image.jpg", tmp_path / sub / "x.jpg")  # same name, same bytes
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a" / "x.jpg"]
    folder = tmp_path / "out"
    result = bind("embed", *inputs, "--out-dir", folder)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    files = [row["file"] for row in manifest["rows"]]
    assert len(set(files)) == 3 and sorted(files) == sorted(
        p.name for p in folder.iterdir() if p.suffix == ".npy"
    )
    assert "wrote 3 vectors" in result.stderr


def test_errors_name_a_non_utf8_path_in_the_shell_form(tmp_path):
    missing = tmp_path / LATIN1
    result = bind("embed", missing, "-f", "jsonl")
    assert result.exit_code == 1
    assert result.stderr == f"bind: $'{tmp_path}/caf\\xe9.png': no such file\n"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = bind("embed", "-t", "x", "-o", blocker / "v.jsonl")
    assert result.exit_code == 1 and result.stderr == f"bind: {blocker}/v.jsonl: Not a directory\n"
    out = tmp_path / (LATIN1 + ".d") / "v.jsonl"
    (tmp_path / (LATIN1 + ".d")).write_text("a file where the folder should be")
    result = bind("embed", "-t", "x", "-o", out)
    assert result.stderr == f"bind: $'{tmp_path}/caf\\xe9.png.d/v.jsonl': Not a directory\n"


def test_a_collection_file_with_a_non_utf8_name_is_named_in_the_shell_form(tmp_path):
    bad = tmp_path / (LATIN1 + ".sqlite3")
    bad.write_bytes(b"not a database at all, " * 100)
    result = bind("search", "--text", "x", "--db", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"bind: $'{tmp_path}/caf\\xe9.png.sqlite3': not a bind collection file")
    missing = tmp_path / (LATIN1 + ".none")
    result = bind("collections", "info", "c", "--db", missing)
    assert result.exit_code == 1
    assert result.stderr == f"bind: $'{tmp_path}/caf\\xe9.png.none': no such collection file (`bind index` creates it)\n"


def test_paths_stored_before_they_were_canonical_are_replaced_on_reindex(tmp_path, photos):
    db = tmp_path / "c.sqlite3"
    assert bind("index", photos, "--db", db).exit_code == 0
    with Store(db) as store:  # rewritten as an older bind stored `bind index ../photos`: `..`
        coll = store.require("default")
        states = store.file_states(coll)
        old = [(str(tmp_path / "work" / ".." / "photos" / Path(p).name), s) for p, s in states.items()]
        sql(db, "DELETE FROM items")
        store.put_items(coll, [
            Item(p, "image", s.size, s.mtime_ns, s.sha256, np.ones(32, np.float32)) for p, s in old
        ])
    again = bind("index", photos, "--db", db)
    assert again.exit_code == 0 and "3 reused" in again.stderr and "3 removed" in again.stderr
    with Store(db) as store:
        live = [p for p, s in store.file_states(store.require("default")).items() if not s.deleted]
    assert sorted(live) == sorted(str(p) for p in photos.iterdir())
