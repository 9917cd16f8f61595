"""Indexing throughput: `bind index`'s pipeline against plain embedding, in one process.

`bindcli.collections.ingest.index` (walk, SHA-256, cache lookup, embed, commit per batch) with the small
fixture model on a folder of distinct images, against the same embedder called on the same
files with the results stacked in a numpy array (no hashing, no SQLite): the ratio is the price
of a persistent, incremental collection. Then an unchanged re-run. (Search at scale is
`bench_index.py`.)

    .venv/bin/python benchmarks/bench_indexing.py [--files 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bindcli.collections.store import Store  # noqa: E402


def _noise_images(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"noise_{i:04}.jpg", quality=90)


def bench_index(n_files: int, batch_size: int) -> dict[str, float]:
    """Files/s of `index` (hash, cache lookup, embed, commit) and of a plain embed into numpy."""
    from bindcli.collections.ingest import index, walk
    from bindcli.model.config import load_config
    from bindcli.model.placement import place
    from bindcli.embed.inputs import Input
    from bindcli.embed.embedder import Embedder

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
                index(db, coll, list(walk([folder])), [folder], lambda: embedder,
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
    parser.add_argument("--files", type=int, default=256)
    args = parser.parse_args()
    import torch

    print(f"machine: {describe()}")
    print(f"indexing: small fixture model, cpu fp32, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, {args.files} distinct 256x256 JPEGs")
    r = bench_index(args.files, batch_size=8)
    print(f"  plain embed into numpy {r['numpy_fps']:.1f} files/s; bind index "
          f"{r['index_fps']:.1f} files/s (ratio {r['ratio']:.2f} of the baseline's "
          f"throughput); unchanged re-run {r['rerun_fps']:.0f} files/s")


if __name__ == "__main__":
    sys.exit(main())
