"""`bind index`, `bind search`, `bind collections` and the shared embedding cache, end to end
with the small fixture model. Encoder calls are counted by wrapping the loaded model."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

import bindcli.model.factory as factory
from bindcli._util.folders import default_db_path
from bindcli.collections.store import Store
from cli_support import MEDIA, SMALL, bind, copy_media, integrity_ok, jsonl, killed_after_commits, sql, write_notes
from cli_support import index_summary as _summary

MIXED = ["dog_image.jpg", "car_image.jpg", "bird_image.jpg", "dog_audio.wav", "bird_audio.wav",
         "synthetic_0.mp4"]


@pytest.fixture
def encoded(monkeypatch):
    """How many inputs each tower encoded, summed over every model built during the test."""
    counts: dict[str, int] = {}
    real = factory.load_model

    def counting(*args, **kwargs):
        model = real(*args, **kwargs)

        def forward(inputs):
            for tower, x in inputs.items():
                counts[tower] = counts.get(tower, 0) + x.shape[0]
            return model(inputs)

        return forward

    monkeypatch.setattr(factory, "load_model", counting)
    return counts


@pytest.fixture
def folder(tmp_path):
    root = copy_media(tmp_path / "media", MIXED)
    (root / "note.txt").write_text("a dog barking in the park", encoding="utf-8")
    (root / ".hidden.jpg").write_bytes((MEDIA / "dog_image.jpg").read_bytes())
    (root / "readme.md").write_text("not media", encoding="utf-8")
    return root


def test_index_reindex_and_search_across_modalities(tmp_path, folder, encoded):
    db = tmp_path / "c.sqlite3"
    first = bind("index", folder, "--db", db, "--no-cache")
    assert first.exit_code == 0, first.stderr
    assert _summary(first) == {"embedded": 7, "reused": 0, "unchanged": 0, "removed": 0,
                               "failed": 0}
    assert encoded == {"vision": 4, "audio": 2, "text": 1}  # .hidden.jpg and readme.md skipped

    # change one file, rename one, delete one, duplicate one; only the change is embedded
    with open(folder / "dog_image.jpg", "ab") as fh:
        fh.write(b"\0edited")  # trailing bytes: same picture to a decoder, new content hash
    (folder / "bird_audio.wav").rename(folder / "renamed.wav")
    (folder / "synthetic_0.mp4").unlink()
    shutil.copy(folder / "car_image.jpg", folder / "car_copy.jpg")
    encoded.clear()
    second = bind("index", folder, "--db", db, "--no-cache")
    assert second.exit_code == 0, second.stderr
    assert encoded == {"vision": 1}
    assert _summary(second) == {"embedded": 1, "reused": 2, "unchanged": 4, "removed": 2,
                                "failed": 0}
    con = sqlite3.connect(db)
    live = dict(con.execute("SELECT path, deleted FROM items"))
    assert live[str(folder / "synthetic_0.mp4")] == 1 and live[str(folder / "bird_audio.wav")] == 1
    assert live[str(folder / "renamed.wav")] == 0
    con.close()

    # text query; JSON lines parsed
    hits = jsonl(bind("search", "--text", "a dog", "--db", db, "-f", "jsonl", "-k", "20").stdout)
    assert {h["path"] for h in hits} == {str(folder / n) for n in (
        "dog_image.jpg", "car_image.jpg", "car_copy.jpg", "bird_image.jpg", "dog_audio.wav",
        "renamed.wav", "note.txt")}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["path"] == str(folder / "note.txt")  # text is closest to text

    # an audio file as the query, images only; the query file itself is not a result
    images = jsonl(bind("search", folder / "dog_audio.wav", "--db", db, "-m", "image",
                        "-f", "jsonl").stdout)
    assert len(images) == 4 and {h["modality"] for h in images} == {"image"}
    audio = jsonl(bind("search", folder / "dog_audio.wav", "--db", db, "-m", "audio",
                       "-f", "jsonl").stdout)
    assert [h["path"] for h in audio] == [str(folder / "renamed.wav")]

    # an expression, bare paths, min-score
    paths = bind("search", folder / "dog_image.jpg", "+", f"0.5:{folder / 'renamed.wav'}",
                 "--db", db, "-f", "paths", "-k", "2")
    assert paths.exit_code == 0, paths.stderr
    assert paths.stdout.splitlines() == [h["path"] for h in jsonl(bind(
        "search", folder / "dog_image.jpg", "+", f"0.5:{folder / 'renamed.wav'}", "--db", db,
        "-f", "jsonl", "-k", "2").stdout)]
    strong = jsonl(bind("search", "--text", "a dog", "--db", db, "-f", "jsonl",
                        "--min-score", str(hits[2]["score"])).stdout)
    assert strong == hits[:3]

    # the collection commands read the same file
    listed = jsonl(bind("collections", "list", "--db", db, "-f", "jsonl").stdout)
    assert [(c["name"], c["files"]) for c in listed] == [("default", 7)]
    info = json.loads(bind("collections", "info", "default", "--db", db, "-f", "json").stdout)
    assert info["per_modality"] == {"audio": 2, "image": 4, "text": 1}
    assert info["deleted"] == 2 and info["vectors"] == "32 x float32" and info["file"] == str(db)
    assert bind("collections", "remove", "default", "--db", db).exit_code == 0
    assert bind("collections", "list", "--db", db, "-f", "jsonl").stdout == ""


def test_a_bad_file_is_reported_and_the_rest_indexed(tmp_path, folder):
    (folder / "broken.wav").write_bytes(b"RIFF, but not really")
    result = bind("index", folder, "--db", tmp_path / "c.sqlite3", "--exclude", "*.mp4")
    assert result.exit_code == 1
    assert f"{folder / 'broken.wav'}:" in result.stderr
    assert _summary(result)["failed"] == 1 and _summary(result)["embedded"] == 6


def test_compare_reuses_cached_embeddings(encoded):
    files = [MEDIA / "dog_image.jpg", MEDIA / "dog_audio.wav"]
    first = bind("compare", *files, "--text", "a dog", "-f", "json")
    assert first.exit_code == 0, first.stderr
    assert encoded == {"vision": 1, "audio": 1, "text": 1}
    encoded.clear()
    again = bind("compare", *files, "--text", "a dog", "-f", "json")
    assert encoded == {} and json.loads(again.stdout) == json.loads(first.stdout)
    bind("compare", *files, "--text", "a dog", "-f", "json", "--no-cache")
    assert encoded == {"vision": 1, "audio": 1, "text": 1}


def test_index_reuses_what_other_commands_embedded(tmp_path, folder, encoded):
    assert bind("compare", folder / "dog_image.jpg", folder / "dog_audio.wav").exit_code == 0
    encoded.clear()
    result = bind("index", folder, "--db", tmp_path / "c.sqlite3")
    assert _summary(result)["reused"] == 2 and encoded == {"vision": 3, "audio": 1, "text": 1}


def test_search_names_a_missing_collection_without_loading_a_model(tmp_path, encoded):
    Store(tmp_path / "c.sqlite3").close()
    result = bind("search", "--text", "x", "--db", tmp_path / "c.sqlite3", "-c", "nope")
    assert result.exit_code == 1 and "no collection 'nope'" in result.stderr
    assert encoded == {}


def test_a_collection_refuses_another_models_vectors(tmp_path, folder):
    db = tmp_path / "c.sqlite3"
    assert bind("index", folder / "note.txt", "--db", db).exit_code == 0
    other = tmp_path / "other.pth"
    shutil.copy(MEDIA.parent / "public.pth", other)
    result = bind("index", folder / "note.txt", "--db", db, env={"BIND_WEIGHTS": str(other)})
    assert result.exit_code == 1 and "was built with model" in result.stderr
    result = bind("search", "--text", "x", "--db", db, env={"BIND_WEIGHTS": str(other)})
    assert result.exit_code == 1 and "was built with model" in result.stderr


def test_a_newer_collection_file_is_refused_in_one_line(tmp_path):
    db = tmp_path / "c.sqlite3"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    result = bind("search", "--text", "x", "--db", db)
    assert result.exit_code == 1 and "newer bind" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_killed_index_run_resumes_without_redoing_finished_work(tmp_path, encoded):
    """SIGKILL part-way (after a few committed batches), then run again: the file is intact,
    committed files are not re-embedded, and every file ends up indexed exactly once."""
    folder = tmp_path / "notes"
    total = 120
    write_notes(folder, total, "a bird sang")
    db = tmp_path / "c.sqlite3"
    killed_after_commits(["index", str(folder), "--db", str(db), "-b", "1", "-q"], db, 8)

    Store(db).close()  # opened as bind opens it
    assert integrity_ok(db)
    ((done_before,),) = sql(db, "SELECT COUNT(*) FROM items")
    assert 8 <= done_before < total
    Store(default_db_path()).close()
    ((encoded_before,),) = sql(default_db_path(), "SELECT COUNT(*) FROM embedding_cache")

    result = bind("index", folder, "--db", db, "-b", "1")
    assert result.exit_code == 0, result.stderr
    summary = _summary(result)
    assert summary["unchanged"] == done_before
    assert encoded == {"text": total - encoded_before}  # in-flight work was cached, not lost
    assert summary["embedded"] + summary["reused"] == total - done_before
    Store(db).close()
    assert integrity_ok(db)
    (rows,) = sql(db, "SELECT COUNT(*), COUNT(DISTINCT path) FROM items")
    assert rows == (total, total)


def test_arith_gallery_accepts_a_collection(folder):
    assert bind("index", folder, "-c", "trip").exit_code == 0  # the default collection file
    query = [folder / "dog_image.jpg", "-", f"0.5:{folder / 'dog_audio.wav'}"]
    from_collection = jsonl(bind("arith", *query, "--gallery", "trip", "-k", "3").stdout)
    from_folder = jsonl(bind("arith", *query, "--gallery", folder, "-k", "3").stdout)
    assert [h["path"] for h in from_collection] == [
        str(folder / os.path.basename(h["path"])) for h in from_folder
    ]
    assert [h["score"] for h in from_collection] == pytest.approx(
        [h["score"] for h in from_folder], abs=1e-5
    )
    assert str(folder / "dog_image.jpg") not in [h["path"] for h in from_collection]


def test_search_table_shows_paths_below_the_current_folder_relative(folder, monkeypatch):
    assert bind("index", folder).exit_code == 0
    monkeypatch.chdir(folder)
    table = bind("search", "--text", "a dog", "-k", "20", "--format", "table").stdout
    assert "│ dog_image.jpg " in table and str(folder) not in table
    # machine formats keep the stored absolute path
    assert str(folder / "dog_image.jpg") in bind("search", "--text", "a dog", "-k", "20").stdout
    monkeypatch.chdir(folder.parent.parent)  # above: relative paths through the folder name
    table = bind("search", "--text", "a dog", "-k", "20", "--format", "table").stdout
    assert f"{folder.parent.name}/media/dog_image.jpg" in table.replace("\n", "")


@pytest.mark.slow
def test_an_unchanged_reindex_imports_neither_torch_nor_the_model(tmp_path, folder):
    """Re-running `bind index` from cron over an unchanged folder costs the `stat` calls and
    start-up: nothing needs a model, so torch stays out of the process."""
    db = tmp_path / "c.sqlite3"
    assert bind("index", folder, "--db", db).exit_code == 0
    probe = (
        "import sys\n"
        "from bindcli.cli.app import app\n"
        f"try: app(['index', {str(folder)!r}, '--db', {str(db)!r}])\n"
        "except SystemExit as exit: code = exit.code\n"
        "heavy = sorted(m for m in ('torch', 'bindcli.model.imagebind', 'bindcli.media') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    env = {**os.environ, **SMALL, "BIND_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "0 []", done.stderr
    assert "0 embedded, 0 reused, 7 unchanged" in done.stderr
