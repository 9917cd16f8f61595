"""Collections at scale: the mapped matrix and the inverted lists against numpy, on clustered vectors.

Vectors: a mixture of Gaussian clusters on the sphere (one cluster per 300 items of the
collection, sizes log-normal, each with its own spread: cosine to its centre 0.55-0.85), which
is how real embeddings bunch; uniform random vectors would flatter nothing and mislead
approximate indices. Queries are fresh draws from the same mixture, and for recall also the
same moved along one shared direction (a text query among images: the modality gap). Every
figure is printed against a baseline measured in the same run:

- exact, 1 query top-10, N x D float16 collection (bind's mapped matrix, in-process) against
  numpy brute force over the same vectors as a float32 array in memory
- exact, 16 queries at once, at `--batch-size` items, against the same numpy
- `bind search --vector q.npy` as a whole process against a `python -c` that memory-maps the
  same vectors as a float16 .npy and brute-forces them a chunk at a time
- approximate (bind's inverted lists) at each `--lists-sizes`: build time, query time against
  exact and recall@10 against the exact answer by how many lists a query reads, file size
- memory: growth of anonymous RSS (/proc/self/status RssAnon) during a search, against the
  matrix's size; re-opening the collection in a fresh process and answering the first query,
  against a warm query, exact and approximate
- `--compare N`: usearch's HNSW graph (what bind used before; `pip install usearch`) against
  the inverted lists on the same vectors at N items

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_index.py [--size 1000000]
        [--batch-size 100000] [--lists-sizes 200000,1000000] [--compare 50000]

On a shared machine, hold OpenBLAS to one thread (for numpy and bind alike): its threads spin
waiting for each other when other work holds the cores, which made the numpy baseline 10-100x
slower and erratic in one run on 2 busy cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bindcli.collections import _matrix
from bindcli.collections import _ivf
from bindcli.collections import nearest  # noqa: E402
from bindcli.collections.store import Item, Store  # noqa: E402

K = 10
ROOT = Path(__file__).resolve().parents[1]


def mixture(n: int, dims: int) -> np.ndarray:
    """The centres of a mixture for `n` items: one per 300."""
    centres = np.random.default_rng(0).standard_normal((max(n // 300, 8), dims)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def clustered(n: int, dims: int, seed: int, centres: np.ndarray | None = None):
    """`n` unit vectors from the mixture of `centres` (one for `n` items if None), and the
    centres, to draw queries from the same."""
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = mixture(n, dims)
    weights = np.random.default_rng(1).lognormal(0, 1, len(centres))
    spread = np.random.default_rng(2).uniform(0.6, 1.5, len(centres)).astype(np.float32)
    label = rng.choice(len(centres), n, p=weights / weights.sum())
    x = rng.standard_normal((n, dims), dtype=np.float32) * (spread[label, None] / float(np.sqrt(dims)))
    x += centres[label]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert x.dtype == np.float32  # a float64 query would make numpy's baseline copy the matrix
    return x, centres


def build(parent: Path, name: str, n: int, dims: int) -> tuple[Path, np.ndarray, np.ndarray]:
    """In `parent / name`: a float16 collection of `n` clustered vectors, its index file, the
    same vectors as a float32 array and as a float16 .npy (the baselines'), and the mixture's
    centres."""
    print(f"collection of {n} x {dims} float16:")
    folder = parent / name
    folder.mkdir()
    db_path = folder / "bench.sqlite3"
    matrix = np.empty((n, dims), dtype=np.float32)
    centres = mixture(n, dims)  # for the whole collection, not per block
    start = time.perf_counter()
    with Store(db_path) as db:
        coll = db.create_collection("bench", "bench-model", "clustered vectors", "float16")
        step = 50_000
        for at in range(0, n, step):
            block, centres = clustered(min(step, n - at), dims, at + 1, centres)
            matrix[at : at + len(block)] = block.astype(np.float16)  # what the collection holds
            db.put_items(coll, [
                Item(f"/bench/{at + i:07}.jpg", "image" if i % 5 else "audio", 1, 1, f"{at + i:x}", v)
                for i, v in enumerate(block)
            ])
        fill_s = time.perf_counter() - start
        start = time.perf_counter()
        _matrix.refresh(db, coll)
        index_s = time.perf_counter() - start
    np.save(folder / "vectors_f16.npy", matrix.astype(np.float16))
    print(f"  filled SQLite in {fill_s:.0f} s, wrote the index file in {index_s:.1f} s", flush=True)
    return db_path, matrix, centres


def fastest(fns, repeats: int) -> list[float]:
    """Seconds of each of `fns`, run in turn `repeats` times, the fastest run of each: on a
    shared machine, other work only ever adds time, and taking turns exposes both sides to
    the same spells of it."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def numpy_top(matrix: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ matrix.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)


def exact_rows(db_path: Path, queries: np.ndarray) -> np.ndarray:
    """Row numbers (id order = insertion order) of bind's exact answer."""
    with Store(db_path) as db:
        index = nearest.index_for(db, db.require("bench"), "exact")
        hits = index.search(queries, k=K)
    return np.array([[int(Path(h.path).stem) for h in row] for row in hits])


def bench_exact(db_path: Path, matrix: np.ndarray, centres: np.ndarray, repeats: int) -> None:
    queries, _ = clustered(16, matrix.shape[1], 999, centres)
    with Store(db_path) as db:
        index = nearest.index_for(db, db.require("bench"), "exact")
        got = exact_rows(db_path, queries[:1])
        assert (got == numpy_top(matrix, queries[:1])).mean() >= 0.9, "bind and numpy disagree"
        for nq in (1, 16):
            q = queries[:nq]
            base, ours = fastest([lambda: numpy_top(matrix, q), lambda: index.search(q, k=K)], repeats)
            print(f"  exact, {len(matrix)} x {matrix.shape[1]} float16, {nq:>2} quer{'y' if nq == 1 else 'ies'}: "
                  f"numpy float32 in memory {base * 1e3:.1f} ms, bind {ours * 1e3:.1f} ms "
                  f"(ratio {ours / base:.2f})", flush=True)


def bench_process(folder: Path, db_path: Path, centres: np.ndarray, dims: int) -> None:
    """`bind search --vector` end to end against a python -c mmap brute force."""
    q, _ = clustered(1, dims, 1234, centres)
    np.save(folder / "q.npy", q)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bind = [sys.executable, "-m", "bindcli", "search", "--vector", str(folder / "q.npy"),
            "--db", str(db_path), "-c", "bench", "-k", str(K), "-f", "jsonl", "--exact"]
    brute = [sys.executable, "-c", (
        "import sys, numpy as np\n"
        "m = np.load(sys.argv[1], mmap_mode='r'); q = np.load(sys.argv[2])[0]\n"
        "s = np.empty(len(m), np.float32)\n"
        "for i in range(0, len(m), 65536): s[i:i + 65536] = m[i:i + 65536].astype(np.float32) @ q\n"
        "top = np.argpartition(-s, 10)[:10]; print(top[np.argsort(-s[top])])\n"
    ), str(folder / "vectors_f16.npy"), str(folder / "q.npy")]

    def run(cmd):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr

    run(bind), run(brute)  # page cache warm for both
    base, ours = fastest([lambda: run(brute), lambda: run(bind)], 3)
    print(f"  whole process, 1 query: python -c mmap float16 brute force {base:.2f} s, "
          f"`bind search --vector` {ours:.2f} s (ratio {ours / base:.2f})", flush=True)


REOPEN = """
import sys, time, numpy as np
def anon():
    return [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("RssAnon")][0]
from bindcli.collections import nearest
from bindcli.collections.store import Store
q = np.load(sys.argv[2])
before = anon()
t1 = time.perf_counter()
db = Store(sys.argv[1])
index = nearest.index_for(db, db.require("bench"), sys.argv[3])
index.search(q[0], k=10)
t2 = time.perf_counter()
warm = []
for row in (q[1:] if len(q) > 1 else [q[0]] * 7):
    s = time.perf_counter(); index.search(row, k=10); warm.append(time.perf_counter() - s)
print(t2 - t1, float(np.median(warm)), anon() - before, index.matrix.vectors.nbytes)
"""


def bench_reopen(folder: Path, db_path: Path, mode: str, processes: int = 5) -> None:
    """A fresh process opens the collection and answers a first query, then 7 others warm;
    the figures are medians over `processes` such processes (one process's first query swings
    by milliseconds on a shared machine)."""
    runs = []
    for _ in range(processes):
        done = subprocess.run(
            [sys.executable, "-c", REOPEN, str(db_path), str(folder / "q.npy"), mode],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900,
        )
        assert done.returncode == 0, done.stderr
        runs.append([float(x) for x in done.stdout.split()])
    first, warm, anon, matrix_bytes = np.median(np.array(runs), axis=0)
    ratios = sorted(r[0] / r[1] for r in runs)
    print(f"  {mode}: re-open + first query {first * 1e3:.1f} ms, warm query (median of 7 others) "
          f"{warm * 1e3:.1f} ms (ratio {first / warm:.2f}; medians of {processes} processes, whose "
          f"ratios ran {ratios[0]:.2f}-{ratios[-1]:.2f}); RssAnon grew {anon / 2**20:.0f} MiB opening "
          f"and searching a {matrix_bytes / 2**20:.0f} MiB matrix (ratio {anon / matrix_bytes:.3f})", flush=True)


def offset_queries(n: int, dims: int, centres: np.ndarray) -> np.ndarray:
    """Draws from the mixture moved along one shared direction, so that their best items
    score about 0.35 instead of 0.55: how a text query sits among images (the modality gap)."""
    rng = np.random.default_rng(77)
    gap = rng.standard_normal(dims).astype(np.float32)
    q, _ = clustered(n, dims, 78, centres)
    q = q + 2 * gap / np.linalg.norm(gap)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def recall_of(truth: list, got: list) -> float:
    return float(np.mean([len({h.path for h in a} & {h.path for h in b}) / K for a, b in zip(truth, got)]))


def bench_lists(db_path: Path, n: int, centres: np.ndarray, repeats: int) -> None:
    """Build time, query time and recall@10 of the inverted lists against exact at `n` items,
    by how many lists a query reads."""
    with Store(db_path) as db:
        coll = db.require("bench")
        matrix = _matrix.open_matrix(db, coll)
        start = time.perf_counter()
        lists = _ivf.refresh(db, coll, matrix)
        build_s = time.perf_counter() - start
        approx = nearest.ApproximateIndex(matrix, lists)
        exact = nearest.ExactIndex(matrix)
        fresh, _ = clustered(100, matrix.dims, 4321, centres)
        np.save(db_path.parent / "q.npy", fresh[-8:])  # for bench_reopen: a first query, 7 warm ones
        sets = {"fresh draws": fresh, "offset draws": offset_queries(100, matrix.dims, centres)}
        truths = {name: exact.search(q, k=K) for name, q in sets.items()}
        cosine = {name: np.median([t[0].score for t in truth]) for name, truth in truths.items()}
        exact_s = fastest([lambda: exact.search(fresh[0], k=K)], repeats)[0]
        sweep = []
        for probes in (16, 32, 64, 128):
            approx.probes = probes
            took = fastest([lambda: [approx.search(q, k=K) for q in fresh[:20]]], repeats)[0] / 20
            recalls = ", ".join(
                f"{name} {recall_of(truths[name], [approx.search(q, k=K)[0] for q in qs]):.3f}"
                for name, qs in sets.items()
            )
            mark = " (the default)" if probes == _ivf.probes_for(lists.count) else ""
            sweep.append(f"    {probes} lists{mark}: {took * 1e3:.2f} ms a query ({exact_s / took:.0f}x "
                         f"faster than exact), recall@10 {recalls}")
    size = _ivf.lists_path(db, coll).stat().st_size
    print(f"  inverted lists at {n}: {lists.count} lists trained and filled in {build_s:.0f} s "
          f"({size / 2**20:.0f} MiB file); exact query {exact_s * 1e3:.1f} ms; best item's cosine "
          f"(median): {', '.join(f'{k} {v:.2f}' for k, v in cosine.items())}; by lists read:", flush=True)
    print("\n".join(sweep), flush=True)


def compare_hnsw(n: int, dims: int) -> None:
    """usearch's HNSW graph (what bind used first) and bind's inverted lists side by side on
    the same clustered float16 vectors (needs `pip install usearch`, no longer one of bind's)."""
    try:
        from usearch.index import Index
    except ImportError:
        print("  usearch not installed: no comparison")
        return
    centres = mixture(n, dims)
    x, _ = clustered(n, dims, 11, centres)
    x = x.astype(np.float16)
    q, _ = clustered(100, dims, 12, centres)
    truth = numpy_top(x.astype(np.float32), q)

    def recall(found):
        return np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)])

    start = time.perf_counter()
    u = Index(ndim=dims, metric="ip", dtype="f16", connectivity=32, expansion_add=128, expansion_search=512)
    u.add(np.arange(n), x, threads=os.cpu_count())
    build_u = time.perf_counter() - start
    query_u = fastest([lambda: [u.search(v, K) for v in q]], 3)[0] / len(q)
    rec_u = recall(np.stack([u.search(v, K).keys for v in q]))
    print(f"  usearch HNSW (connectivity 32, expansion 128 / 512) f16: build {build_u:.0f} s, query "
          f"{query_u * 1e3:.2f} ms, recall@10 {rec_u:.3f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "c.sqlite3") as db:
        coll = db.create_collection("bench", "bench-model", "clustered vectors", "float16")
        db.put_items(coll, [Item(f"/b/{i:07}.jpg", "image", 1, 1, f"{i:x}", v) for i, v in enumerate(x)])
        matrix = _matrix.refresh(db, coll)
        start = time.perf_counter()
        approx = nearest.ApproximateIndex(matrix, _ivf.refresh(db, coll, matrix))
        build_l = time.perf_counter() - start
        query_l = fastest([lambda: [approx.search(v, k=K) for v in q]], 3)[0] / len(q)
        rec_l = recall(np.stack([[int(Path(h.path).stem) for h in approx.search(v, k=K)[0]] for v in q]))
    print(f"  bind inverted lists ({approx.lists.count} lists, {approx.probes} read): build {build_l:.0f} s, "
          f"query {query_l * 1e3:.2f} ms, recall@10 {rec_l:.3f} (HNSW/lists: build "
          f"{build_u / build_l:.1f}, query {query_u / query_l:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="exact, process, memory; 0 skips")
    parser.add_argument("--batch-size", type=int, default=100_000, help="the 16-query batch; 0 skips")
    parser.add_argument("--lists-sizes", default="200000,1000000", help="'' skips")
    parser.add_argument("--compare", type=int, default=0, help="usearch HNSW vs the lists at N; 0 skips")
    parser.add_argument("--dims", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build collections here and keep them")
    args = parser.parse_args()
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"machine: {describe()}; numpy {np.__version__}, OPENBLAS_NUM_THREADS={threads}")
    with contextlib.ExitStack() as stack:
        if args.keep:  # kept for a later look (bench_reopen by hand, a profiler)
            args.keep.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(dir=args.keep))
            print(f"collections kept in {folder}")
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        built: dict[int, tuple[Path, np.ndarray]] = {}
        if args.compare:
            print(f"HNSW against inverted lists at {args.compare} x {args.dims}:")
            compare_hnsw(args.compare, args.dims)
        if args.batch_size:
            db_path, matrix, centres = build(folder, "batch", args.batch_size, args.dims)
            bench_exact(db_path, matrix, centres, args.repeats)
            del matrix
            built[args.batch_size] = db_path, centres
        if args.size:
            db_path, matrix, centres = build(folder, "big", args.size, args.dims)
            sub = db_path.parent
            bench_exact(db_path, matrix, centres, args.repeats)
            del matrix
            bench_process(sub, db_path, centres, args.dims)
            bench_reopen(sub, db_path, "exact")
            built[args.size] = db_path, centres
        for n in (int(s) for s in args.lists_sizes.split(",") if s):
            if n not in built:
                db_path, matrix, centres = build(folder, f"lists{n}", n, args.dims)
                del matrix
                built[n] = db_path, centres
            bench_lists(built[n][0], n, built[n][1], args.repeats)
            bench_reopen(built[n][0].parent, built[n][0], "approximate")


if __name__ == "__main__":
    sys.exit(main())
