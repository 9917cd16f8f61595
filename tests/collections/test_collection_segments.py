"""Collections of segments: items keyed by path, reading and window; the v5 migration; hits
with times, grouped by file; a changed window spec re-embeds; export and import keep times."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from bindcli.collections import store
from bindcli.collections.store import Hit, Item, Store
from bindcli.collections.timed import by_file
from cli_support import integrity_ok, sql


def _segment(path, start, vector, reading="sound"):
    return Item(path, "audio", 1, 1, "sha", vector, reading, start, start + 2)


def test_a_v4_file_is_rebuilt_keeping_ids_and_whole_files_stay_one_row_per_path(tmp_path):
    path = tmp_path / "v4.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    store.migrate(con, target=4)
    con.execute("INSERT INTO collections (name, model_id, model, dtype, created_at) VALUES ('c', 'm', 'x', 'float32', 0)")
    con.execute("INSERT INTO items (id, collection_id, path, kind, size, mtime_ns, sha256, dims, vector, indexed_at) "
                "VALUES (7, 1, 'a.jpg', 'image', 1, 1, 's', 2, ?, 0)", (np.ones(2, '<f4').tobytes(),))
    con.close()
    with Store(path) as db:
        coll = db.require("c")
        assert sql(db.path, "SELECT id, path, reading, start_s, end_s FROM items") == [(7, "a.jpg", "", 0.0, None)]
        db.put_items(coll, [Item("a.jpg", "image", 2, 2, "t", np.ones(2))])
        assert sql(db.path, "SELECT id, sha256 FROM items") == [(7, "t")]
        before = db.generation(coll)
        db.put_items(coll, [Item("b.jpg", "image", 2, 2, "u", np.ones(2))])
        assert db.generation(coll) > before  # the triggers came back
        assert integrity_ok(db.path)


def test_a_files_segments_replace_the_ones_it_had(tmp_path):
    with Store(tmp_path / "s.sqlite3") as db:
        coll = db.create_collection("m", "model", "x")
        rng = np.random.default_rng(0)
        db.replace_segments(coll, [_segment("long.wav", s, rng.standard_normal(4)) for s in (0, 2, 4)])
        db.replace_segments(coll, [_segment("long.wav", s, rng.standard_normal(4)) for s in (0, 2)])
        assert sql(db.path, "SELECT start_s, deleted FROM items ORDER BY start_s") == [(0, 0), (2, 0), (4, 1)]
        ids = [i for (i,) in sql(db.path, "SELECT id FROM items WHERE deleted=0")]
        assert db.times(coll, ids) == {ids[0]: (0.0, 2.0), ids[1]: (2.0, 4.0)}
        assert db.file_states(coll)["long.wav"].deleted is False


def test_by_file_keeps_the_best_window_widened_over_its_neighbours():
    hits = [Hit("a.wav", "audio", 0.9, 10, 12), Hit("b.wav", "audio", 0.8, 0, 2), Hit("a.wav", "audio", 0.7, 11, 13),
            Hit("a.wav", "audio", 0.6, 40, 42), Hit("a.wav", "audio", 0.5, 12.5, 14.5), Hit("c.jpg", "image", 0.4)]
    assert [(h.path, h.start, h.end, h.score) for h in by_file(hits)] == [
        ("a.wav", 10, 14.5, 0.9), ("b.wav", 0, 2, 0.8), ("c.jpg", None, None, 0.4)]
    assert by_file(hits, near=3)[0].end == 13  # only the first hits merge


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_exact_and_approximate_search_answer_with_times(tmp_path, dtype):
    from bindcli.collections.collection import Collection

    with Store(tmp_path / "s.sqlite3") as db:
        coll = db.create_collection("m", "model", "x", dtype)
        rng = np.random.default_rng(1)
        vectors = rng.standard_normal((300, 8)).astype(np.float32)
        db.replace_segments(coll, [_segment("long.wav", float(s), v) for s, v in enumerate(vectors)])
        found = Collection(db, coll)
        for mode in ("exact", "approximate"):
            [best] = found.search_vector(vectors[123], 1, mode=mode)
            assert (best.path, best.start, best.end) == ("long.wav", 123.0, 125.0)
