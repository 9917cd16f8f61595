"""Collections: exact search latency and indexing throughput, against plain numpy in-process.

Search: N random unit vectors (default 1024-d float32) in a collection file; `Store.search`
(streamed in chunks from SQLite, top-k) against numpy holding the whole matrix in memory
(`matrix @ q`, argpartition). The store never holds more than one chunk, which the peak
allocation column shows.

Indexing: `bindcli.indexer.index` with the small fixture model on a folder of distinct images,
against the same embedder called on the same files with the results stacked in a numpy array
(no hashing, no SQLite): the ratio is the price of a persistent, incremental collection.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000,100000,1000000] [--index-files N]
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


def _noise_images(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"noise_{i:04}.jpg", quality=90)


def bench_index(n_files: int, batch_size: int) -> dict[str, float]:
    """Files/s of `index` (hash, cache lookup, embed, commit) and of a plain embed into numpy."""
    from bindcli.indexer import callbacks, index, walk
    from bindcli.model.config import load_config
    from bindcli.placement import place
    from bindcli.runtime import Embedder, Input

    fixtures = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "imagebind-reference"
    config = load_config(fixtures / "public_config.json")
    weights = fixtures / "public.pth"
    embedder = Embedder(config, weights, place("cpu", "fp32"), batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "media"
        folder.mkdir()
        _noise_images(folder, n_files)
        files = sorted(folder.iterdir())
        embedder.embed([Input.file(files[0])])  # load the model outside the timings

        def baseline() -> float:
            start = time.perf_counter()
            matrix = np.stack([e.raw for e in embedder.embed([Input.file(p) for p in files])])
            assert matrix.shape[0] == n_files
            return time.perf_counter() - start

        with Store(Path(tmp) / "bench.sqlite3") as db:
            coll = db.create_collection("bench", embedder.model_id, config.name)

            def run() -> float:
                start = time.perf_counter()
                embed, cached = callbacks(embedder)
                index(db, coll, list(walk([folder])), [folder], embed, cached=cached,
                      batch_size=4 * batch_size)
                return time.perf_counter() - start

            base_s = baseline()
            embedder.cache = db
            index_s = run()
            rerun_s = run()
            embedder.cache = None
            base_s = min(base_s, baseline())  # before and after, so warm-up favours neither
            assert sum(db.counts(coll).values()) == n_files
    return {
        "files": n_files,
        "numpy_fps": n_files / base_s,
        "index_fps": n_files / index_s,
        "ratio": base_s / index_s,
        "rerun_fps": n_files / rerun_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dims", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--index-files", type=int, default=256, help="0 skips indexing")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine skews timings)"
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
    if args.index_files:
        import torch

        print(f"indexing: small fixture model, cpu fp32, torch {torch.__version__} with "
              f"{torch.get_num_threads()} threads, {args.index_files} distinct 256x256 JPEGs")
        r = bench_index(args.index_files, batch_size=8)
        print(f"  plain embed into numpy {r['numpy_fps']:.1f} files/s; bind index "
              f"{r['index_fps']:.1f} files/s (ratio {r['ratio']:.2f} of the baseline's "
              f"throughput); unchanged re-run {r['rerun_fps']:.0f} files/s")


if __name__ == "__main__":
    sys.exit(main())
