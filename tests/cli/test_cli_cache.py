"""`bind cache info|clear` and the compaction after `bind collections remove`, end to end: the
cache is filled by a real `bind compare` with the small fixture model, or with random vectors
through the store where a test needs it large."""

from __future__ import annotations

import datetime
import json
import sqlite3
import subprocess
import time

import numpy as np
import pytest
from rich.filesize import decimal

from bindcli._util.folders import default_db_path
from bindcli.collections.store import Item, Store
from bindcli.embed.identity import CacheKey
from cli_support import MEDIA, bind, sql
from test_cli_app import BIND, probe

INFO_KEYS = {"entries", "vector_bytes", "models", "oldest", "newest", "file", "file_bytes"}
DIMS = 32  # the fixture model's embedding width


def _info(*args) -> dict:
    result = bind("cache", "info", "-f", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _compare_two() -> None:
    """Two files through `bind compare`: two entries in the default file's cache."""
    result = bind("compare", MEDIA / "dog_image.jpg", MEDIA / "dog_audio.wav", "-f", "json")
    assert result.exit_code == 0, result.stderr


def _vectors(n: int, dims: int = 256) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, dims)).astype(np.float32)


def test_info_on_an_empty_cache():
    info = _info()
    assert set(info) == INFO_KEYS
    assert (info["entries"], info["vector_bytes"], info["models"]) == (0, 0, [])
    assert info["oldest"] is None and info["newest"] is None
    assert info["file"] == str(default_db_path())
    assert info["file_bytes"] == 0 and not default_db_path().exists()  # looking made no file
    Store(default_db_path()).close()
    # measured while open: the file plus its WAL, which SQLite folds in when the last user exits
    assert _info()["file_bytes"] >= default_db_path().stat().st_size > 0


def test_info_after_compare_counts_what_it_cached():
    start = datetime.datetime.now().replace(microsecond=0)
    _compare_two()
    info = _info()
    assert set(info) == INFO_KEYS
    assert info["entries"] == 2 and info["vector_bytes"] == 2 * DIMS * 4
    [group] = info["models"]
    assert set(group) == {"model_id", "precision", "entries", "vector_bytes"}
    assert group["model_id"].startswith("public_config:") and group["precision"] == "fp32"
    assert (group["entries"], group["vector_bytes"]) == (2, 2 * DIMS * 4)
    oldest = datetime.datetime.fromisoformat(info["oldest"])
    newest = datetime.datetime.fromisoformat(info["newest"])
    assert start <= oldest <= newest <= datetime.datetime.now()

    table = bind("cache", "info", "--format", "table")
    assert table.exit_code == 0 and not table.stdout.lstrip().startswith("{")
    assert f"{group['model_id']} fp32: 2" in table.stdout
    assert any(line.split() == ["entries", "2"] for line in table.stdout.splitlines())


def test_info_reads_the_file_named_by_db(tmp_path):
    _compare_two()
    other = tmp_path / "other.sqlite3"
    with Store(other) as store:
        store.cache_put([(CacheKey("x", "m", "p", "bf16", "text"), np.ones(4, np.float32))])
    info = _info("--db", other)
    assert info["file"] == str(other) and info["entries"] == 1
    assert info["models"] == [{"model_id": "m", "precision": "bf16", "entries": 1,
                               "vector_bytes": 16}]


def test_clear_removes_everything_and_says_how_much_the_file_shrank():
    _compare_two()
    with Store(default_db_path()) as store:  # enough to see the file shrink
        store.cache_put((CacheKey(f"h{i}", "m", "p", "fp32", "image"), v)
                        for i, v in enumerate(_vectors(3000)))
    result = bind("cache", "clear")
    assert result.exit_code == 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    size = default_db_path().stat().st_size
    assert line.startswith(f"bind: removed 3002 cached vectors from {default_db_path()}; ")
    assert f" to {decimal(size)} (" in line and line.endswith(" MB reclaimed)")
    assert size < 1_000_000  # 3 MB of vectors are gone from the disk, not only from the table
    assert _info()["entries"] == 0

    _compare_two()  # the cache fills again as commands run
    assert _info()["entries"] == 2


def test_clear_older_than_keeps_recent_vectors():
    _compare_two()
    ten_days_ago = time.time() - 10 * 86400
    con = sqlite3.connect(default_db_path())
    with con:
        con.execute("UPDATE embedding_cache SET created_at=? WHERE kind='audio'", (ten_days_ago,))
    con.close()

    kept = bind("cache", "clear", "--older-than", "30")
    assert kept.exit_code == 0
    assert kept.stderr.startswith("bind: removed 0 cached vectors older than 30 days from ")
    assert "compacted" not in kept.stderr  # nothing removed: the file is not rewritten
    assert _info()["entries"] == 2

    cleared = bind("cache", "clear", "--older-than", "7.5")
    assert cleared.exit_code == 0
    assert cleared.stderr.startswith("bind: removed 1 cached vector older than 7.5 days from ")
    assert [k for (k,) in sql(default_db_path(), "SELECT kind FROM embedding_cache")] == ["image"]


def test_older_than_must_not_be_negative():
    result = bind("cache", "clear", "--older-than", "-1")
    assert result.exit_code == 2 and "--older-than" in result.output


def test_collections_remove_compacts_the_file(tmp_path):
    db = tmp_path / "c.sqlite3"
    with Store(db) as store:
        for name, n in (("big", 3000), ("small", 3)):
            coll = store.create_collection(name, "m", "test model")
            store.put_items(coll, [Item(f"/{name}/{i}.jpg", "image", 1, 1, f"h{i}", v)
                                   for i, v in enumerate(_vectors(n))])
        before = store.file_bytes()
    assert before > 3_000_000

    result = bind("collections", "remove", "big", "--db", db)
    assert result.exit_code == 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    size = db.stat().st_size
    assert line.startswith(f"bind: removed collection 'big' from {db}; compacted the file from ")
    assert f" to {decimal(size)} (" in line and line.endswith(" reclaimed)")
    assert size < 1_000_000
    listed = bind("collections", "list", "--db", db, "-f", "jsonl").stdout
    assert [json.loads(row)["name"] for row in listed.splitlines()] == ["small"]
    [array] = bind("collections", "list", "--db", db, "-f", "json").stdout.splitlines()
    assert [c["name"] for c in json.loads(array)] == ["small"]


@pytest.mark.slow
def test_cache_commands_never_import_torch(tmp_path):
    done = probe("cache", "info", "--db", str(tmp_path / "c.sqlite3"), "-f", "json")
    assert done.stderr.strip().endswith("\nNO-TORCH") and json.loads(done.stdout)["entries"] == 0
    done = probe("cache", "clear", "--db", str(tmp_path / "c.sqlite3"))
    assert done.stderr.strip().endswith("NO-TORCH") and "removed 0 cached vectors" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [["info"], ["clear"]])
def test_a_file_that_is_not_a_collection_file_is_one_line_and_exit_1(tmp_path, command):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8 not a database" * 100)
    done = subprocess.run([str(BIND), "cache", *command, "--db", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"bind: {bad}: not a bind collection file")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert bad.read_bytes() == b"\xff\xd8 not a database" * 100
