"""The collection file on its own, with random vectors: format, search, cache, schema."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from bindcli.collections import store
from bindcli.vectors import at_least, printed
from bindcli.collections.nearest import Filters, index_for
from bindcli.collections.store import Item, Store, StoreError
from bindcli.embed.identity import CacheKey
from cli_support import integrity_ok, sql


def _unit(rng: np.random.Generator, n: int, dims: int = 16) -> np.ndarray:
    m = rng.standard_normal((n, dims)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _fill(db: Store, name: str, vectors: np.ndarray, kinds: list[str], dtype: str = "float32"):
    coll = db.create_collection(name, "model-a", "test model", dtype=dtype)
    db.put_items(
        coll,
        [
            Item(f"/m/{i}.{kinds[i % len(kinds)]}", kinds[i % len(kinds)], 10, 1, f"h{i}", v)
            for i, v in enumerate(vectors)
        ],
    )
    return coll


def test_vectors_are_documented_little_endian_unit_blobs(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.standard_normal(8).astype(np.float32) * 3
    with Store(tmp_path / "c.sqlite3") as db:
        coll = db.create_collection("c", "model-a", "test model")
        db.put_items(coll, [Item("/a.jpg", "image", 1, 2, "abc", raw)])
    # read it back the way the README tells other tools to, without bindcli
    con = sqlite3.connect(tmp_path / "c.sqlite3")
    blob, dims, dtype = con.execute(
        "SELECT vector, dims, dtype FROM items JOIN collections c ON c.id = collection_id"
    ).fetchone()
    vector = np.frombuffer(blob, dtype="<f4" if dtype == "float32" else "<f2")
    assert dims == 8 and vector.size == 8
    np.testing.assert_allclose(vector, raw / np.linalg.norm(raw), rtol=1e-6)


def _search(db: Store, coll, query: np.ndarray, k: int, **filters) -> list:
    return index_for(db, coll, "exact").search(query, k=k, filters=Filters(**filters))[0]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_search_matches_numpy_brute_force(tmp_path, dtype):
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 300)
    kinds = ["image", "audio", "text"]
    query = rng.standard_normal(16).astype(np.float32)
    with Store(tmp_path / "c.sqlite3") as db:
        coll = _fill(db, "c", vectors, kinds, dtype)
        hits = _search(db, coll, query, 5)
    scores = vectors @ (query / np.linalg.norm(query))
    expect = np.argsort(-scores)[:5]
    assert [h.path for h in hits] == [f"/m/{i}.{kinds[i % 3]}" for i in expect]
    tol = 1e-6 if dtype == "float32" else 2e-3
    np.testing.assert_allclose([h.score for h in hits], scores[expect], atol=tol)


def test_search_filters_kind_min_score_and_excluded_paths(tmp_path):
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 60)
    with Store(tmp_path / "c.sqlite3") as db:
        coll = _fill(db, "c", vectors, ["image", "audio"])
        query = vectors[1]  # an audio item
        audio = _search(db, coll, query, 100, kinds=("audio",))
        assert audio and {h.kind for h in audio} == {"audio"}
        assert len(audio) == 30 and audio[0].path == "/m/1.audio"
        assert audio[0].score == pytest.approx(1.0, abs=1e-6)
        strong = _search(db, coll, query, 100, min_score=0.3)
        assert strong and all(printed(h.score) >= 0.3 for h in strong)
        assert len(strong) == int(np.sum(at_least(vectors @ query, 0.3)))


def test_deleted_items_are_not_found_and_reindexing_revives_them(tmp_path):
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 4)
    with Store(tmp_path / "c.sqlite3") as db:
        coll = _fill(db, "c", vectors, ["image"])
        db.mark_deleted(coll, ["/m/0.image"])
        assert "/m/0.image" not in [h.path for h in _search(db, coll, vectors[0], 4)]
        assert db.file_states(coll)["/m/0.image"].deleted
        assert db.counts(coll) == {"image": 3}
        db.put_items(coll, [Item("/m/0.image", "image", 10, 2, "h0", vectors[0])])
        assert _search(db, coll, vectors[0], 1)[0].path == "/m/0.image"
        assert db.stats(coll)["deleted"] == 0


def test_content_hash_finds_vectors_of_renamed_or_duplicated_files(tmp_path):
    rng = np.random.default_rng(4)
    vectors = _unit(rng, 3)
    with Store(tmp_path / "c.sqlite3") as db:
        coll = _fill(db, "c", vectors, ["image"])
        found = db.vectors_by_content(
            coll, [("h1", "image"), ("h2", "image"), ("h9", "image"), ("h1", "depth")]
        )
        assert set(found) == {("h1", "image"), ("h2", "image")}
        np.testing.assert_allclose(found[("h1", "image")], vectors[1], rtol=1e-6)


def test_collections_are_separate_and_removable(tmp_path):
    rng = np.random.default_rng(5)
    with Store(tmp_path / "c.sqlite3") as db:
        a = _fill(db, "a", _unit(rng, 3), ["image"])
        _fill(db, "b", _unit(rng, 5), ["audio"])
        assert [c.name for c in db.collections()] == ["a", "b"]
        assert db.counts(a) == {"image": 3}
        db.remove_collection("b")
        assert [c.name for c in db.collections()] == ["a"]
        assert sql(db.path, "SELECT COUNT(*) FROM items") == [(3,)]
        with pytest.raises(StoreError, match="no collection 'b'.*collections: a"):
            db.require("b")


def test_cache_round_trip_keyed_by_model_preprocessing_and_precision(tmp_path):
    vector = np.arange(6, dtype=np.float32)
    key = CacheKey("sha", "model-a", "pre-1", "fp32", "image")
    with Store(tmp_path / "c.sqlite3") as db:
        db.cache_put([(key, vector)])
        assert set(db.cache_get([key])) == {key}
        np.testing.assert_array_equal(db.cache_get([key])[key], vector)
        for other in (
            key._replace(model_id="model-b"),
            key._replace(preprocessing="pre-2"),
            key._replace(precision="bf16"),
            key._replace(options="raw"),
        ):
            assert db.cache_get([other]) == {}


def test_old_schema_is_migrated_keeping_its_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    store.migrate(con, target=1)  # what the first release wrote
    con.execute(
        "INSERT INTO collections (name, model_id, model, dtype, created_at) "
        "VALUES ('old', 'm', 'test model', 'float32', 0)"
    )
    con.close()
    with Store(path) as db:
        assert sql(db.path, "PRAGMA user_version") == [(store.SCHEMA_VERSION,)]
        assert [c.name for c in db.collections()] == ["old"]
        key = CacheKey("sha", "m", "p", "fp32", "text")
        db.cache_put([(key, np.ones(3, dtype=np.float32))])
        assert key in db.cache_get([key])
        assert integrity_ok(db.path)


def test_newer_schema_is_refused_with_a_friendly_message(tmp_path):
    path = tmp_path / "new.sqlite3"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer bind.*Upgrade bind"):
        Store(path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8 not a database" * 100)
    with pytest.raises(StoreError, match="not a bind collection file"):
        Store(path)


def _cache_rows(db: Store, n: int, model_id: str = "model-a", precision: str = "fp32",
                dims: int = 16, created_at: float | None = None) -> None:
    rng = np.random.default_rng(n)
    db.cache_put(
        (CacheKey(f"{model_id}-{precision}-{i}", model_id, "pre-1", precision, "image"), v)
        for i, v in enumerate(_unit(rng, n, dims))
    )
    if created_at is not None:
        sql(db.path, "UPDATE embedding_cache SET created_at=? WHERE model_id=? AND precision=?",
            created_at, model_id, precision)


def test_cache_stats_count_entries_bytes_models_and_age(tmp_path):
    with Store(tmp_path / "c.sqlite3") as db:
        empty = db.cache_stats()
        assert (empty.entries, empty.vector_bytes, empty.groups) == (0, 0, ())
        assert empty.oldest is None and empty.newest is None
        _cache_rows(db, 3, "model-b", "fp32", created_at=200.0)
        _cache_rows(db, 2, "model-a", "bf16", dims=8, created_at=100.0)
        _cache_rows(db, 4, "model-a", "fp32", created_at=300.0)
        stats = db.cache_stats()
    assert stats.entries == 9 and stats.vector_bytes == (3 * 16 + 2 * 8 + 4 * 16) * 4
    assert (stats.oldest, stats.newest) == (100.0, 300.0)
    assert [tuple(g) for g in stats.groups] == [
        ("model-a", "bf16", 2, 64), ("model-a", "fp32", 4, 256), ("model-b", "fp32", 3, 192),
    ]


def test_clear_cache_all_or_older_than_leaving_collections_alone(tmp_path):
    rng = np.random.default_rng(7)
    with Store(tmp_path / "c.sqlite3") as db:
        coll = _fill(db, "c", _unit(rng, 5), ["image"])
        _cache_rows(db, 3, "model-old", created_at=1000.0)
        _cache_rows(db, 2, "model-new", created_at=2000.0)
        assert db.clear_cache(older_than=1000.0) == 0  # strictly before
        assert db.clear_cache(older_than=1500.0) == 3
        assert [g.model_id for g in db.cache_stats().groups] == ["model-new"]
        assert db.clear_cache() == 2
        assert db.cache_stats().entries == 0 and db.clear_cache() == 0
        assert db.counts(coll) == {"image": 5}


def test_compact_shrinks_the_file_after_many_rows_are_removed(tmp_path):
    rng = np.random.default_rng(8)
    with Store(tmp_path / "c.sqlite3") as db:
        _fill(db, "big", _unit(rng, 2000, 256), ["image"])  # 2 MB of vectors
        keep = _fill(db, "small", _unit(rng, 3), ["audio"])
        _cache_rows(db, 500, dims=256)
        db.remove_collection("big")
        assert db.clear_cache() == 500
        unshrunk = db.file_bytes()
        assert unshrunk > 2_000_000  # removing rows alone gives nothing back
        done = db.compact()
        assert done.before >= 2_000_000 and done.after < 1_000_000
        assert done.reclaimed == done.before - done.after
        assert done.after == db.file_bytes() == (tmp_path / "c.sqlite3").stat().st_size
        assert db.counts(keep) == {"audio": 3} and integrity_ok(db.path)
        assert db.compact().reclaimed == 0  # nothing more to give back


def test_compact_refuses_to_run_inside_a_transaction(tmp_path):
    with Store(tmp_path / "c.sqlite3") as db, pytest.raises(StoreError, match="inside a"):
        with db.transaction():
            db.compact()
