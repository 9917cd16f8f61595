"""The mapped matrix beside the collection file and the searches over it, with synthetic
vectors: patching, crash recovery, concurrent readers, filters, batches, approximate search."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bindcli.collections import _matrix
from bindcli.collections import _ivf
from bindcli.collections import nearest
from bindcli.errors import OutputError, UsageError
from bindcli.collections.store import Item, Store
from bindcli.collections.nearest import Filters, index_for
from cli_support import sqlite_search

ROOT = Path(__file__).resolve().parents[2]


def clustered(n: int, dims: int, clusters: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` random centres on the sphere, each cluster with its own
    spread (cosine to the centre about 0.55-0.85), as real embeddings bunch; not uniform."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dims)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(0.6, 1.5, clusters).astype(np.float32) / float(np.sqrt(dims))
    label = rng.integers(0, clusters, n)
    x = centres[label] + rng.standard_normal((n, dims)).astype(np.float32) * spread[label, None]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def kind_of(i: int) -> str:
    return ("image", "audio", "text")[i % 3]


def fill(db: Store, coll, vectors: np.ndarray, start: int = 0, folder: str = "/m") -> None:
    db.put_items(coll, [
        Item(f"{folder}/{start + i}.x", kind_of(start + i), 1, 1, f"{start + i:x}", v)
        for i, v in enumerate(vectors)
    ])


def brute(db: Store, coll, query: np.ndarray, k: int, **filters) -> list[tuple[str, float]]:
    """The answer read straight from SQLite (the reference)."""
    return [(h.path, h.score) for h in sqlite_search(db.path, coll.name, query, k, **filters)]


def found(hits) -> list[tuple[str, float]]:
    return [(h.path, h.score) for h in hits]


def same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    assert [p for p, _ in a] == [p for p, _ in b]
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


@pytest.fixture
def db(tmp_path):
    with Store(tmp_path / "c.sqlite3") as store:
        yield store


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_exact_search_over_the_mapped_matrix_matches_sqlite(db, dtype):
    coll = db.create_collection("c", "m", "m", dtype)
    vectors = clustered(700, 32, 20)
    fill(db, coll, vectors)
    index = index_for(db, coll, "exact")
    assert index.method == "exact"
    assert isinstance(index.matrix._buffer, mmap.mmap)  # mapped, not read into the process
    for q in vectors[:5]:
        same(found(index.search(q, k=7)[0]), brute(db, coll, q, 7))
    assert _matrix.state(db, coll) == "fresh"


def test_index_is_patched_on_add_change_and_remove(db):
    coll = db.create_collection("c", "m", "m", "float16")
    vectors = clustered(300, 16, 10)
    fill(db, coll, vectors[:200])
    first = _matrix.update_matrix(db, coll)
    assert (first.rows, first.live) == (200, 200)
    db.mark_deleted(coll, ["/m/3.x", "/m/4.x"])
    fill(db, coll, vectors[200:], start=200)  # new items
    db.put_items(coll, [Item("/m/5.x", "image", 2, 2, "new", vectors[0])])  # changed in place
    assert _matrix.state(db, coll) == "stale"
    patched = _matrix.open_matrix(db, coll)
    # a patch keeps deleted rows in place (marked dead) and appends; a rebuild would drop them
    assert (patched.rows, patched.live) == (300, 298)
    assert patched.generation == db.generation(coll)
    for q in (vectors[0], vectors[3], vectors[250]):
        same(found(ExactIndex(patched).search(q, k=5)[0]), brute(db, coll, q, 5))
    # many deletions make the next refresh a rebuild without the dead rows
    db.mark_deleted(coll, [f"/m/{i}.x" for i in range(100, 300)])
    rebuilt = _matrix.update_matrix(db, coll)
    assert (rebuilt.rows, rebuilt.live) == (98, 98)


ExactIndex = nearest.ExactIndex


def test_a_torn_or_foreign_index_file_is_rebuilt(db):
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(100, 16, 5)
    fill(db, coll, vectors)
    _matrix.update_matrix(db, coll)
    path = _matrix.matrix_path(db, coll)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # torn: shorter than its header says
    assert _matrix.state(db, coll) == "missing"
    same(found(index_for(db, coll).search(vectors[7], k=3)[0]), brute(db, coll, vectors[7], 3))
    path.write_bytes(b"not an index at all" * 300)
    same(found(index_for(db, coll).search(vectors[8], k=3)[0]), brute(db, coll, vectors[8], 3))
    # a file left by another collection that had the same id
    db.remove_collection("c")
    again = db.create_collection("c", "m", "m")
    fill(db, again, vectors[:10])
    assert _matrix.state(db, again) == "missing"
    assert index_for(db, again).matrix.rows == 10


WRITER_KILLED_MIDWAY = """
import sys, time
from pathlib import Path
from bindcli.collections import _matrix
from bindcli.collections.store import Store

real = _matrix._Layout.write_tail

def stall(self, f, *args):
    f.write(b"half a tail")
    f.flush()
    Path(sys.argv[2]).write_text("writing")
    time.sleep(120)  # killed here, mid-write

_matrix._Layout.write_tail = stall
with Store(sys.argv[1]) as db:
    _matrix.update_matrix(db, db.require("c"))
"""


def test_a_writer_killed_mid_write_leaves_search_correct(db, tmp_path):
    coll = db.create_collection("c", "m", "m", "float16")
    vectors = clustered(400, 16, 10)
    fill(db, coll, vectors[:300])
    _matrix.update_matrix(db, coll)
    fill(db, coll, vectors[300:])
    ready = tmp_path / "ready"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_KILLED_MIDWAY, str(db.path), str(ready)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert writer.poll() is None, "the writer ended before it began writing"
            assert time.monotonic() < deadline, "the writer never began writing"
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    folder = _matrix.index_dir(db)
    assert list(folder.glob(".c1.matrix.*.tmp")), "the killed writer's temporary file"
    assert _matrix.state(db, coll) == "stale"  # the old file, whole
    same(found(index_for(db, coll).search(vectors[350], k=4)[0]), brute(db, coll, vectors[350], 4))
    assert not list(folder.glob(".c1.matrix.*.tmp")), "the next writer removed it"


CONCURRENT_WRITER = """
import sys
import numpy as np
from bindcli.collections import _matrix
from bindcli.collections.store import Item, Store

def vector(i):
    v = np.random.default_rng(i).standard_normal(16).astype(np.float32)
    return v / np.linalg.norm(v)

with Store(sys.argv[1]) as db:
    coll = db.require("c")
    for batch in range(1, 31):
        db.put_items(coll, [Item(f"/m/{i}.x", "image", 1, 1, str(i), vector(i))
                            for i in range(batch * 20, batch * 20 + 20)])
        db.mark_deleted(coll, [f"/m/{batch * 20 - 7}.x"])
        _matrix.update_matrix(db, coll)
"""


def test_searches_during_indexing_always_see_a_whole_index(db):
    def vector(i):
        v = np.random.default_rng(i).standard_normal(16).astype(np.float32)
        return v / np.linalg.norm(v)

    coll = db.create_collection("c", "m", "m")
    db.put_items(coll, [Item(f"/m/{i}.x", "image", 1, 1, str(i), vector(i)) for i in range(20)])
    writer = subprocess.Popen(
        [sys.executable, "-c", CONCURRENT_WRITER, str(db.path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    query = vector(10_000)
    searches = sizes = 0
    seen = set()
    try:
        while writer.poll() is None or searches < 5:
            with Store(db.path) as reader:
                index = index_for(reader, reader.require("c"))
                hits = index.search(query, k=50)[0]
            for hit in hits:  # every hit is a whole row of some generation: its true score
                i = int(Path(hit.path).stem)
                assert hit.score == pytest.approx(float(vector(i) @ query), abs=1e-5)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            searches += 1
            sizes += index.matrix.rows
            seen.add(index.matrix.generation)
    finally:
        assert writer.wait(timeout=120) == 0
    assert len(seen) > 1, "the searches overlapped the writer"
    final = index_for(db, coll)
    assert final.matrix.live == 20 + 30 * 20 - 30


def test_filters_kind_folder_glob_and_min_score(db):
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(600, 16, 8)
    fill(db, coll, vectors[:300], folder="/photos/2024")
    fill(db, coll, vectors[300:], start=300, folder="/photos/2024-old")
    index = index_for(db, coll)
    q = vectors[0]
    scores = {f"/photos/2024{'' if i < 300 else '-old'}/{i}.x": float(v @ q)
              for i, v in enumerate(vectors)}

    def expect(keep, k=10):
        ranked = sorted(((s, p) for p, s in scores.items() if keep(p)), reverse=True)[:k]
        return [p for _, p in ranked]

    def paths(**kw):
        return [h.path for h in index.search(q, k=10, filters=Filters(**kw))[0]]

    assert paths(kinds=("audio",)) == [p for p, _ in brute(db, coll, q, 10, kinds=["audio"])]
    assert paths(under=("/photos/2024",)) == expect(lambda p: p.startswith("/photos/2024/"))
    assert paths(under=("/photos/2024-old/",)) == expect(lambda p: "-old/" in p)
    assert paths(globs=("1?.x",)) == expect(lambda p: Path(p).name[:1] == "1" and len(Path(p).name) == 4)
    assert paths(globs=("/photos/2024-old/3*",)) == expect(lambda p: p.startswith("/photos/2024-old/3"))
    strong = index.search(q, k=600, filters=Filters(min_score=0.5))[0]
    assert strong and all(h.score >= 0.5 for h in strong)
    assert len(strong) == sum(s >= 0.5 for s in scores.values())


def test_a_batch_answers_as_its_queries_one_by_one(db):
    coll = db.create_collection("c", "m", "m", "float16")
    vectors = clustered(500, 32, 10)
    fill(db, coll, vectors)
    index = index_for(db, coll)
    queries = clustered(6, 32, 10, seed=1)
    batch = index.search(queries, k=5, filters=Filters(kinds=("image", "text")))
    for q, hits in zip(queries, batch):
        same(found(hits), found(index.search(q, k=5, filters=Filters(kinds=("image", "text")))[0]))
    with pytest.raises(UsageError, match="32 dims"):
        index.search(np.ones(8), k=1)
    bad = np.array(queries[:3])
    bad[1, 0], bad[2] = np.nan, 0
    with pytest.raises(UsageError, match="query row 1: not finite; query row 2: all zero"):
        index.search(bad, k=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_exact_search_memory_does_not_grow_with_the_number_of_queries(monkeypatch, dtype):
    """2,000 query rows take no more working memory than 2 beyond their answers (unblocked,
    the scores alone were 2,000 x 1,024 floats a chunk), and answer as plain numpy does."""
    monkeypatch.setattr(nearest, "_CHUNK_ROWS", 1024)
    monkeypatch.setattr(nearest, "_SCORE_BYTES", 64 << 10)  # 16 queries a block
    vectors = clustered(4096, 16, 8).astype(dtype)
    queries = clustered(2000, 16, 8, seed=1)
    k = 5

    def peak(q: np.ndarray) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
        tracemalloc.start()
        try:
            found = nearest.exact_top(vectors, q, k)
            return tracemalloc.get_traced_memory()[1], found
        finally:
            tracemalloc.stop()

    few, _ = peak(queries[:2])
    many, (rows, scores) = peak(queries)
    answers = rows.nbytes + scores.nbytes
    assert many - few < 3 * answers + (256 << 10), (few, many, answers)
    reference = vectors.astype(np.float32) @ queries.T
    best = np.argsort(-reference, axis=0, kind="stable")[:k].T
    np.testing.assert_array_equal(rows, best)
    np.testing.assert_allclose(scores, np.take_along_axis(reference.T, best, 1), atol=1e-6)


def recall(truth, got) -> float:
    return float(np.mean([len({h.path for h in a} & {h.path for h in b}) / 10 for a, b in zip(truth, got)]))


def test_approximate_agrees_with_exact_on_clustered_vectors(db):
    coll = db.create_collection("c", "m", "m", "float16")
    vectors = clustered(3040, 64, 60)
    queries = vectors[3000:]  # fresh draws from the same clusters
    fill(db, coll, vectors[:3000])
    exact, approx = index_for(db, coll, "exact"), index_for(db, coll, "approximate")
    assert approx.method == "approximate"
    assert approx.probes < approx.lists.count  # it reads part of the collection, not all
    truth = exact.search(queries, k=10)
    got = approx.search(queries, k=10)
    assert recall(truth, got) >= 0.95
    for a, b in zip(truth, got):  # re-scored exactly: a hit found by both scores the same
        both = {h.path: h.score for h in a}
        for h in b:
            if h.path in both:
                assert h.score == pytest.approx(both[h.path], abs=1e-6)
    audio = Filters(kinds=("audio",))  # a third of the items: three times the lists are read
    only_audio = approx.search(queries, k=10, filters=audio)
    assert all(h.kind == "audio" for hits in only_audio for h in hits)
    assert all(len(hits) == 10 for hits in only_audio)
    assert recall(exact.search(queries, k=10, filters=audio), only_audio) >= 0.95
    ten = Filters(globs=("/m/1?.x",))  # 10 of 3000: too few for the lists, answered exactly
    for a, b in zip(approx.search(queries[:2], k=10, filters=ten), exact.search(queries[:2], k=10, filters=ten)):
        same(found(a), found(b))


def lists_header(db, coll) -> dict:
    return _ivf.saved(db, coll).header


def test_the_lists_are_patched_and_auto_uses_them_from_the_threshold(db, monkeypatch):
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(800, 16, 10)
    fill(db, coll, vectors[:600])
    monkeypatch.setattr(nearest, "APPROXIMATE_FROM", 500)
    assert index_for(db, coll).method == "exact"
    nearest.update_index_files(db, coll)  # what `bind index` does when it is done
    assert index_for(db, coll).method == "approximate"
    assert nearest.describe(db, coll)["search"].startswith("approximate (inverted lists")
    trained = lists_header(db, coll)
    fill(db, coll, vectors[600:], start=600)
    db.put_items(coll, [Item("/m/7.x", "image", 1, 1, "changed", vectors[700])])  # moved
    db.mark_deleted(coll, ["/m/5.x"])
    index = index_for(db, coll)
    patched = lists_header(db, coll)
    assert patched["generation"] == db.generation(coll)
    assert patched["trained_on"] == trained["trained_on"] == 600  # patched, not trained again
    assert patched["rows"] == 799
    assert index.search(vectors[650], k=1)[0][0].path == "/m/650.x"
    assert {h.path for h in index.search(vectors[700], k=2)[0]} == {"/m/7.x", "/m/700.x"}
    assert "/m/5.x" not in [h.path for h in index.search(vectors[5], k=10)[0]]
    assert index_for(db, coll, "exact").method == "exact"
    fill(db, coll, clustered(3000, 16, 10, seed=3), start=1000)  # five times the size
    index_for(db, coll, "approximate")
    assert lists_header(db, coll)["trained_on"] == 3799  # another number of lists: trained again
    assert lists_header(db, coll)["lists"] != trained["lists"]


@pytest.mark.slow
def test_torn_lists_are_rebuilt_and_a_fresh_process_searches_them_without_faiss(db, tmp_path):
    coll = db.create_collection("c", "m", "m", "float16")
    vectors = clustered(1000, 32, 20)
    fill(db, coll, vectors)
    index_for(db, coll, "approximate")
    path = _ivf.lists_path(db, coll)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    assert _ivf.saved(db, coll) is None
    assert index_for(db, coll, "approximate").search(vectors[3], k=1)[0][0].path == "/m/3.x"
    script = textwrap.dedent("""
        import sys, numpy as np
        from bindcli.collections import nearest
        from bindcli.collections.store import Store
        nearest.APPROXIMATE_FROM = 500
        db = Store(sys.argv[1])
        index = nearest.index_for(db, db.require("c"))
        print(index.method, index.search(np.load(sys.argv[2]), k=1)[0][0].path, "faiss" in sys.modules)
    """)
    np.save(tmp_path / "q.npy", vectors[3])
    done = subprocess.run(
        [sys.executable, "-c", script, str(db.path), str(tmp_path / "q.npy")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )
    assert done.stdout.split() == ["approximate", "/m/3.x", "False"], done.stderr


def test_without_the_library_exact_works_and_approximate_names_the_install(db, monkeypatch):
    monkeypatch.setattr(_ivf, "_faiss", lambda: None)
    monkeypatch.setattr(nearest, "APPROXIMATE_FROM", 10)
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(50, 16, 5)
    fill(db, coll, vectors)
    nearest.update_index_files(db, coll)
    assert index_for(db, coll).method == "exact"
    assert "bindcli[index]" in nearest.describe(db, coll)["search"]
    with pytest.raises(UsageError, match=r"pip install 'bindcli\[index\]'"):
        index_for(db, coll, "approximate")
    assert list(_matrix.index_dir(db).glob(".*.tmp")) == []


def test_stale_lists_are_patched_without_faiss_and_never_written_back(db, monkeypatch):
    """Patching is numpy's work: without faiss, lists that fall behind are still brought up to
    date and searched. Lists newer than a matrix a searcher still holds are left as they are,
    and a killed writer's temporary file is removed by the next one."""
    monkeypatch.setattr(nearest, "APPROXIMATE_FROM", 500)
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(900, 16, 10)
    fill(db, coll, vectors[:800])
    nearest.update_index_files(db, coll)
    monkeypatch.setattr(_ivf, "_faiss", lambda: None)
    held = _matrix.open_matrix(db, coll)  # a searcher's, at the generation now
    fill(db, coll, vectors[800:], start=800)
    nearest.update_index_files(db, coll)  # `bind index` without faiss: the lists are patched
    assert lists_header(db, coll)["generation"] == db.generation(coll)
    assert index_for(db, coll).search(vectors[850], k=1)[0][0].path == "/m/850.x"
    newer = lists_header(db, coll)["generation"]
    leftover = _matrix.index_dir(db) / ".c1.lists.0123456789ab.tmp"
    leftover.write_bytes(b"half a file")
    back = _ivf.update_lists(db, coll, held)  # the searcher's older matrix
    assert back.generation == newer == lists_header(db, coll)["generation"]
    assert not leftover.exists()
    db.mark_deleted(coll, ["/m/850.x"])
    index = index_for(db, coll, "approximate")
    assert "/m/850.x" not in [h.path for h in index.search(vectors[850], k=5)[0]]


def test_the_number_of_lists_is_kept_near_a_power_of_two_step():
    """A size hovering at the step where the built number of lists doubles trains nothing."""
    def fake(count, live):
        lists = SimpleNamespace(count=count, header={"dims": 8})
        return lists, SimpleNamespace(live=live, dims=8)

    step = next(n for n in range(100_000, 1_000_000, 1000) if _ivf.lists_for(n) == 4096)
    assert _ivf.lists_for(step - 1000) == 2048
    assert _ivf.fits(*fake(2048, step)) and _ivf.fits(*fake(4096, step - 1000))
    assert not _ivf.fits(*fake(2048, 4 * step))
    assert not _ivf.fits(*fake(2048, step // 16))


def test_lists_that_cannot_be_written_leave_auto_exact_and_name_the_folder(db, monkeypatch):
    monkeypatch.setattr(nearest, "APPROXIMATE_FROM", 100)
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(300, 16, 6)
    fill(db, coll, vectors)
    nearest.update_index_files(db, coll)
    fill(db, coll, clustered(5, 16, 6, seed=9), start=300)  # the lists fall behind

    def unwritable(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_ivf, "update_lists", unwritable)
    nearest.update_index_files(db, coll)  # no error: the files are derived
    index = index_for(db, coll)
    assert index.method == "exact"
    same(found(index.search(vectors[9], k=3)[0]), brute(db, coll, vectors[9], 3))
    with pytest.raises(OutputError, match=r"c1\.lists: cannot write the inverted lists \(Permission denied\)"):
        index_for(db, coll, "approximate")


@pytest.mark.slow
def test_exact_search_keeps_the_matrix_out_of_anonymous_memory(tmp_path):
    """Searching a 32 MiB float16 matrix grows the process's anonymous memory by far less."""
    script = textwrap.dedent("""
        import sys, numpy as np
        from bindcli.collections import _matrix
        from bindcli.collections import _ivf
        from bindcli.collections import nearest
        from bindcli.collections.store import Store

        def anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon"):
                    return int(line.split()[1]) * 1024

        with Store(sys.argv[1]) as db:
            coll = db.require("c")
            matrix = _matrix.open_matrix(db, coll)
            index = nearest.ExactIndex(matrix)
            q = np.ones((4, matrix.dims), np.float32)
            index.search(q, k=10)
            before = anon()
            index.search(q, k=10)
            print(anon() - before, matrix.vectors.nbytes)
    """)
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    with Store(tmp_path / "big.sqlite3") as db:
        coll = db.create_collection("c", "m", "m", "float16")
        rng = np.random.default_rng(0)
        for start in range(0, 16384, 8192):
            fill(db, coll, rng.standard_normal((8192, 1024)).astype(np.float32), start=start)
        _matrix.update_matrix(db, coll)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "big.sqlite3")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    grown, matrix_bytes = map(int, done.stdout.split())
    assert matrix_bytes == 16384 * 1024 * 2
    assert grown < matrix_bytes / 4


def test_a_folder_that_cannot_be_written_still_searches_from_memory(db, monkeypatch):
    coll = db.create_collection("c", "m", "m")
    vectors = clustered(80, 16, 4)
    fill(db, coll, vectors)

    def unwritable(store, collection):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_matrix, "update_matrix", unwritable)
    monkeypatch.setattr(nearest, "update_matrix", unwritable)
    nearest.update_index_files(db, coll)  # as `bind index` ends: no error, the files are derived
    index = index_for(db, coll)
    assert not _matrix.matrix_path(db, coll).exists()
    same(found(index.search(vectors[9], k=3)[0]), brute(db, coll, vectors[9], 3))


def test_one_float16_query_ranks_near_ties_exactly(db):
    """Near-duplicates score within float16 rounding of each other: the fast one-query path
    must still rank them as the float32 query does."""
    coll = db.create_collection("c", "m", "m", "float16")
    rng = np.random.default_rng(3)
    base = clustered(1, 256, 1)[0]
    near = base + rng.standard_normal((400, 256)).astype(np.float32) * 3e-3
    fill(db, coll, np.concatenate([near, clustered(3000, 256, 30)]))
    index = index_for(db, coll, "exact")
    for q in (base, near[0], near[1] + 0.01):
        same(found(index.search(q, k=50)[0]), brute(db, coll, q, 50))
