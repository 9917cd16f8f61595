"""`bind search` over the index files (--vector, batches, filters, --exact/--approximate) and
`bind collections import/export/info`, end to end with the small fixture model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bindcli.collections import _ivf
from bindcli.collections.store import Item, Store
from cli_support import MEDIA, bind, jsonl, sqlite_search

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ["dog_image.jpg", "car_image.jpg", "bird_image.jpg"]
SOUNDS = ["dog_audio.wav", "bird_audio.wav"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """`bind embed -o` of five files (the pair other machines would send), and a collection
    indexed from a folder of the same files."""
    tmp = tmp_path_factory.mktemp("vectors")
    with pytest.MonkeyPatch.context() as env:  # conftest's private data dir is per test, set after this
        env.setenv("BIND_DATA_DIR", str(tmp / "bind-data"))
        return _embed_and_index(tmp)


def _embed_and_index(tmp: Path) -> tuple[Path, Path, Path, Path]:
    folder = tmp / "media"
    (folder / "photos").mkdir(parents=True)
    (folder / "sounds").mkdir()
    for name in IMAGES:
        shutil.copy(MEDIA / name, folder / "photos" / name)
    for name in SOUNDS:
        shutil.copy(MEDIA / name, folder / "sounds" / name)
    npy = tmp / "e.npy"
    done = bind("embed", *sorted(folder.rglob("*.*")), "-o", npy)
    assert done.exit_code == 0, done.stderr
    db = tmp / "c.sqlite3"
    done = bind("index", folder, "--db", db)
    assert done.exit_code == 0, done.stderr
    return tmp, folder, npy, db


def test_search_by_vector_matches_search_by_file_without_a_model(embedded, tmp_path):
    _, folder, npy, db = embedded
    query = tmp_path / "q.npy"
    np.save(query, np.load(npy)[0])  # one row, no manifest: taken as is
    by_vector = jsonl(bind("search", "--vector", query, "--db", db, "-f", "jsonl").stdout)
    first = json.loads(npy.with_name("e.npy.json").read_text())["rows"][0]["input"]
    by_file = jsonl(bind("search", first, "--db", db, "-f", "jsonl", "-k", "4").stdout)
    assert by_vector[0]["path"] == str(Path(first).absolute())  # the file itself, score 1
    assert by_vector[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert by_vector[1:5] == by_file  # the query's own file left out of the file search only
    assert all("query" not in hit for hit in by_vector)


@pytest.mark.slow
def test_search_by_vector_does_not_import_torch(embedded, tmp_path):
    _, _, npy, db = embedded
    probe = (
        "import sys\nsys.argv = ['bind', *sys.argv[1:]]\nfrom bindcli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "search", "--vector", str(npy), "--db", str(db), "-k", "2"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BIND_WEIGHTS": str(tmp_path / "absent.pth")},
    )
    assert done.stderr.strip().endswith("NO-TORCH 0"), done.stderr
    assert len(jsonl(done.stdout)) == 2 * 5  # five query rows, two hits each


def test_several_query_rows_each_carry_their_row(embedded):
    _, _, npy, db = embedded
    hits = jsonl(bind("search", "--vector", npy, "--db", db, "-k", "3").stdout)
    assert [h["query"] for h in hits] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    rows = json.loads(npy.with_name("e.npy.json").read_text())["rows"]
    for row, n in zip(rows, range(5)):  # each row's own file (its manifest names it) left out,
        mine = [{k: v for k, v in h.items() if k != "query"} for h in hits[3 * n : 3 * n + 3]]
        assert mine == jsonl(bind("search", row["input"], "--db", db, "-k", "3").stdout)  # as by file
    table = bind("search", "--vector", npy, "--db", db, "-k", "1", "-f", "table").stdout
    assert table.splitlines()[1].split("┃")[1:3] == [" query ", " # "]


def test_each_term_is_its_own_query(embedded):
    _, folder, _, db = embedded
    dog = folder / "photos" / "dog_image.jpg"
    alone = jsonl(bind("search", dog, "--db", db, "-k", "2").stdout)
    text = jsonl(bind("search", "--text", "a car", "--db", db, "-k", "2").stdout)
    both = jsonl(bind("search", dog, "--text", "a car", "--each", "--db", db, "-k", "2").stdout)
    assert both == [{"query": 0, **h} for h in alone] + [{"query": 1, **h} for h in text]


def test_filters_by_folder_glob_modality_and_score(embedded, tmp_path):
    _, folder, npy, db = embedded
    q = ["--vector", npy, "--db", db, "-k", "10", "-f", "paths"]
    photos = bind("search", *q, "--under", folder / "photos").stdout.split()
    assert photos and all(p.startswith(str(folder / "photos") + os.sep) for p in photos)
    assert set(bind("search", *q, "--glob", "*_audio.wav").stdout.split()) == {
        str(folder / "sounds" / n) for n in SOUNDS
    }
    assert set(bind("search", *q, "--glob", f"{folder}/photos/b*").stdout.split()) == {
        str(folder / "photos" / "bird_image.jpg")
    }
    assert set(bind("search", *q, "--modality", "audio").stdout.split()) == {
        str(folder / "sounds" / n) for n in SOUNDS
    }
    bare = tmp_path / "bare.npy"  # no manifest: no row's own file to leave out
    shutil.copy(npy, bare)
    strong = jsonl(bind("search", "--vector", bare, "--db", db, "--min-score", "0.99").stdout)
    assert [h["score"] for h in strong] == pytest.approx([1.0] * 5, abs=1e-5)


def test_import_export_round_trip_and_another_model_refused(embedded, tmp_path):
    _, folder, npy, _ = embedded
    db = tmp_path / "imported.sqlite3"
    done = bind("collections", "import", "remote", npy, "--db", db, "--vectors", "float16")
    assert done.exit_code == 0, done.stderr
    assert "imported 5 vectors" in done.stderr
    manifest = json.loads(npy.with_name("e.npy.json").read_text())
    info = json.loads(bind("collections", "info", "remote", "--db", db, "-f", "json").stdout)
    assert (info["files"], info["model_id"], info["vectors"]) == (5, manifest["model"], f"{manifest['dim']} x float16")
    assert info["search"].startswith("exact") and info["index"] == "fresh"
    # searching it needs no files on this machine, and the model check holds
    hits = jsonl(bind("search", "--text", "a dog", "-c", "remote", "--db", db).stdout)
    assert {h["path"] for h in hits} == {r["input"] for r in manifest["rows"]}
    out = tmp_path / "out" / "back.npy"
    done = bind("collections", "export", "remote", out, "--db", db)
    assert done.exit_code == 0, done.stderr
    back = json.loads(out.with_name("back.npy.json").read_text())
    assert back["model"] == manifest["model"]
    made_with = {key: manifest[key] for key in ("precision", "preprocessing")}
    assert made_with == {key: back[key] for key in made_with}  # what the import read, written back
    assert [(r["input"], r["modality"], r["sha256"]) for r in back["rows"]] == [
        (r["input"], r["modality"], r["sha256"]) for r in manifest["rows"]
    ]
    np.testing.assert_allclose(np.load(out), np.load(npy), atol=1e-3)  # float16 in between
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left
    # a collection of another model refuses the pair and stays as it was
    with Store(db) as store:
        other = store.create_collection("other", "another-model-id", "another model")
        store.put_items(other, [Item("/x.jpg", "image", 1, 1, "s", np.ones(manifest["dim"], np.float32))])
    done = bind("collections", "import", "other", npy, "--db", db)
    assert done.exit_code == 1
    assert "another-model-id" in done.stderr and manifest["model"] in done.stderr
    assert "collection 'other'" in done.stderr
    listed = jsonl(bind("collections", "list", "--db", db).stdout)
    assert {c["name"]: c["files"] for c in listed} == {"other": 1, "remote": 5}


def test_import_stores_the_bytes_of_a_quoted_non_utf8_name(tmp_path):
    """`bind embed -o` prints a name that is not UTF-8 as `$'...\\xHH'`; import stores its
    bytes, so export prints the same text and `--format paths` the raw name, while a UTF-8
    name that only looks quoted stays as written."""
    npy, db = tmp_path / "odd.npy", tmp_path / "c.sqlite3"
    np.save(npy, np.eye(4, 8, dtype=np.float32))
    inputs = ["$'/m/caf\\xe9.jpg'", "$'/m/looks quoted.jpg'", "/m/plain.jpg", "$'/m/\\ud800.jpg'"]
    npy.with_name("odd.npy.json").write_text(json.dumps({
        "model": "m", "rows": [{"input": i, "modality": "image", "sha256": "s"} for i in inputs],
    }))
    assert bind("collections", "import", "c", npy, "--db", db).exit_code == 0
    paths = {os.fsencode(h.path) for h in sqlite_search(db, "c", np.ones(8, np.float32), k=4)}
    assert paths == {b"/m/caf\xe9.jpg", b"$'/m/looks quoted.jpg'", b"/m/plain.jpg", b"$'/m/\\ud800.jpg'"}
    out = tmp_path / "back.npy"
    assert bind("collections", "export", "c", out, "--db", db).exit_code == 0
    back = json.loads(out.with_name("back.npy.json").read_text())
    assert [r["input"] for r in back["rows"]] == inputs


def test_import_names_a_missing_or_mismatched_manifest(embedded, tmp_path):
    _, _, npy, _ = embedded
    db = tmp_path / "c.sqlite3"
    bare = tmp_path / "bare.npy"
    np.save(bare, np.ones((2, 4), np.float32))
    done = bind("collections", "import", "c", bare, "--db", db)
    assert done.exit_code == 1 and f"{bare}.json: no manifest" in done.stderr
    short = tmp_path / "short.npy"
    np.save(short, np.load(npy)[:2])
    shutil.copy(npy.with_name("e.npy.json"), tmp_path / "short.npy.json")
    done = bind("collections", "import", "c", short, "--db", db)
    assert done.exit_code == 1 and "lists 5 rows for the 2 of short.npy" in done.stderr


def test_a_vector_query_of_another_model_or_shape_is_refused(embedded, tmp_path):
    _, _, npy, db = embedded
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.ones(8, np.float32))
    done = bind("search", "--vector", wrong, "--db", db)
    assert done.exit_code == 2 and f"have {np.load(npy).shape[1]} dims" in done.stderr
    other = tmp_path / "o.npy"
    shutil.copy(npy, other)
    manifest = json.loads(npy.with_name("e.npy.json").read_text())
    (tmp_path / "o.npy.json").write_text(json.dumps({**manifest, "model": "elsewhere"}))
    done = bind("search", "--vector", other, "--db", db)
    assert done.exit_code == 1 and "elsewhere" in done.stderr
    done = bind("search", "--vector", npy, "--text", "x", "--db", db)
    assert done.exit_code == 2 and "--vector replaces" in done.stderr


def test_exact_or_approximate_and_the_missing_library(embedded, monkeypatch):
    _, _, npy, db = embedded
    exact = jsonl(bind("search", "--vector", npy, "--db", db, "--exact").stdout)
    approx = jsonl(bind("search", "--vector", npy, "--db", db, "--approximate").stdout)
    assert [h["path"] for h in approx] == [h["path"] for h in exact]  # five items: all found
    monkeypatch.setattr(_ivf, "_faiss", lambda: None)
    for lists in Path(str(db) + ".vectors").glob("*.lists"):  # none to search, none to train
        lists.unlink()
    done = bind("search", "--vector", npy, "--db", db, "--approximate")
    assert done.exit_code == 2 and "pip install 'bindcli[index]'" in done.stderr
    assert jsonl(bind("search", "--vector", npy, "--db", db).stdout) == exact
    done = bind("search", "--vector", npy, "--db", db, "--approximate", "--exact")
    assert done.exit_code == 2


def test_removing_a_collection_removes_its_index_files(embedded, tmp_path):
    _, folder, _, _ = embedded
    db = tmp_path / "r.sqlite3"
    assert bind("index", folder / "photos", "--db", db).exit_code == 0
    index_dir = db.with_name(db.name + ".vectors")
    assert (index_dir / "c1.matrix").exists()
    assert bind("collections", "remove", "default", "--db", db).exit_code == 0
    assert not [p for p in index_dir.iterdir() if p.name.startswith("c1")]


def _pair(folder: Path, name: str, vectors: np.ndarray, **about) -> Path:
    """A `.npy` + manifest pair of `vectors`, rows /m/0.jpg, /m/1.jpg, ..."""
    npy = folder / name
    np.save(npy, vectors)
    npy.with_name(name + ".json").write_text(json.dumps({"model": "cfg:1234abcd:5678", **about, "rows": [
        {"input": f"/m/{i}.jpg", "modality": "image", "sha256": "s"} for i in range(len(vectors))
    ]}))
    return npy


def test_import_refuses_a_file_with_rows_without_a_direction_naming_them(tmp_path):
    db = tmp_path / "c.sqlite3"
    rows = np.eye(4, 8, dtype=np.float32)
    rows[1, 0], rows[2] = np.nan, 0
    bad = _pair(tmp_path, "bad.npy", rows)
    done = bind("collections", "import", "c", bad, "--db", db)
    assert done.exit_code == 1
    assert f"{bad}: row 1: not finite; row 2: all zero; nothing imported" in done.stderr
    assert jsonl(bind("collections", "list", "--db", db).stdout) == []  # not even the collection
    wide = _pair(tmp_path, "wide.npy", np.eye(2, 8, dtype=np.float32), dim=16)
    done = bind("collections", "import", "c", wide, "--db", db)
    assert done.exit_code == 1 and "8-d vectors; its manifest says 16-d" in done.stderr
    done = bind("collections", "import", "", _pair(tmp_path, "ok.npy", np.eye(2, 8, dtype=np.float32)), "--db", db)
    assert done.exit_code == 2 and "a collection needs a name" in done.stderr
    assert jsonl(bind("collections", "list", "--db", db).stdout) == []


def test_bad_query_rows_are_named_and_the_others_searched(tmp_path):
    db = tmp_path / "c.sqlite3"
    assert bind("collections", "import", "c", _pair(tmp_path, "ok.npy", np.eye(3, 8, dtype=np.float32)), "--db", db).exit_code == 0
    queries = np.eye(4, 8, dtype=np.float32)
    queries[1, 2], queries[3] = np.inf, 0
    q = tmp_path / "q.npy"
    np.save(q, queries)
    done = bind("search", "-c", "c", "--vector", q, "--db", db, "-k", "1", "-f", "jsonl")
    assert done.exit_code == 1
    assert f"{q}: row 1: not finite" in done.stderr and f"{q}: row 3: all zero" in done.stderr
    assert [(h["query"], h["path"]) for h in jsonl(done.stdout)] == [(0, "/m/0.jpg"), (2, "/m/2.jpg")]
    np.save(q, np.ones((2, 4), np.float32))
    done = bind("search", "-c", "c", "--vector", q, "--db", db)
    assert done.exit_code == 2 and f"{q}: query vectors of 4 dims; this collection's have 8 dims" in done.stderr


def test_export_names_and_the_imported_model_description(tmp_path):
    db = tmp_path / "c.sqlite3"
    assert bind("collections", "import", "c", _pair(tmp_path, "ok.npy", np.eye(3, 8, dtype=np.float32)), "--db", db).exit_code == 0
    listed = jsonl(bind("collections", "list", "--db", db).stdout)
    assert [c["model"] for c in listed] == ["cfg (imported)"]  # the model id's config name
    done = bind("collections", "export", "c", tmp_path / "x.jsonl", "--db", db)
    assert done.exit_code == 2 and "name it FILE.npy" in done.stderr
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.jsonl.json").exists()
    back = tmp_path / "back.npy"
    assert bind("collections", "export", "c", back, "--db", db).exit_code == 0
    described = _pair(tmp_path, "d.npy", np.eye(2, 8, dtype=np.float32), model_description="my model (w.pth)")
    assert bind("collections", "import", "d", described, "--db", db).exit_code == 0
    listed = jsonl(bind("collections", "list", "--db", db).stdout)
    assert {c["name"]: c["model"] for c in listed} == {"c": "cfg (imported)", "d": "my model (w.pth)"}
