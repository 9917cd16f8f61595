"""Collections: exact search latency and indexing throughput, against plain numpy in-process.

Search: N random unit vectors (default 1024-d float32) in a collection file; `Store.search`
(streamed in chunks from SQLite, top-k) against numpy holding the whole matrix in memory
(`matrix @ q`, argpartition). The store never holds more than one chunk, which the peak
allocation column shows.

Indexing: `bindcli.indexer.index` with the small fixture model on a folder of distinct media
files, against the same embedder called on the same files with the results kept in a numpy
array (no hashing, no SQLite): the ratio is the price of a persistent, incremental collection.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000,100000,1000000] [--no-index]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bindcli.store import Item, Store

K = 10


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fill(db: Store, n: int, dims: int, rng: np.random.Generator) -> tuple[object, np.ndarray]:
    coll = db.create_collection("bench", "bench-model", "random unit vectors")
    matrix = np.empty((n, dims), dtype=np.float32)
    step = 20_000
    for start in range(0, n, step):
        block = rng.standard_normal((min(step, n - start), dims)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        matrix[start : start + len(block)] = block
        db.put_items(
            coll,
            [
                Item(f"/bench/{start + i}.jpg", "image", 1, 1, f"{start + i:x}", v)
                for i, v in enumerate(block)
            ],
        )
    return coll, matrix


def bench_search(n: int, dims: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(n)
    query = rng.standard_normal(dims).astype(np.float32)
    query /= np.linalg.norm(query)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite3") as db:
        start = time.perf_counter()
        coll, matrix = _fill(db, n, dims, rng)
        fill_s = time.perf_counter() - start

        def numpy_top() -> np.ndarray:
            scores = matrix @ query
            top = np.argpartition(-scores, K)[:K]
            return top[np.argsort(-scores[top])]

        def store_top() -> list:
            return db.search(coll, query, k=K)

        expect = [f"/bench/{i}.jpg" for i in numpy_top()]
        assert [h.path for h in store_top()] == expect, "store and numpy disagree"
        base_s = _median_seconds(numpy_top, repeats)
        store_s = _median_seconds(store_top, repeats)
        tracemalloc.start()
        store_top()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {
            "n": n,
            "fill_s": fill_s,
            "numpy_ms": base_s * 1e3,
            "store_ms": store_s * 1e3,
            "ratio": store_s / base_s,
            "peak_mib": peak / 2**20,
            "matrix_mib": matrix.nbytes / 2**20,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dims", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(f"search: exact top-{K}, {args.dims}-d float32, median of {args.repeats}")
    print(f"{'vectors':>9} {'numpy ms':>9} {'bind ms':>9} {'ratio':>6} {'peak MiB':>9} "
          f"{'matrix MiB':>10} {'fill s':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        r = bench_search(n, args.dims, args.repeats)
        print(
            f"{r['n']:>9} {r['numpy_ms']:>9.1f} {r['store_ms']:>9.1f} {r['ratio']:>6.1f} "
            f"{r['peak_mib']:>9.1f} {r['matrix_mib']:>10.0f} {r['fill_s']:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
