"""The Ray engine on one machine against the local engine, on the same files; what one Ray
worker does; and what the driver can commit, which bounds any number of machines.

Writes `--images` distinct 1 MP JPEGs (smooth random colour, like photos) to a temp folder and
indexes them into a fresh collection twice through `bindcli.collections.ingest.index`, as `bind index`
does: with the local engine (`open_embedder`, no cache) and with `RayEmbedder` on a Ray
instance started here (`--workers` actors of `--cpus-per-worker` cores; decoding in CPU tasks
beside them). Both pay for loading the model: it is part of a job. The model is the test
fixture (`--model small`: decoding dominates) or a random-weight ViT-S/14 vision tower (`--model
vit-s`: encoding dominates). Both collections must hold the same vectors (1e-5) before
anything is reported.

Figures: files/s of each engine over the whole job (start-up included) and their ratio (the
target: Ray >= 0.8x local); the marginal rate, (all - a quarter of the files) / (the time
difference), which cancels start-up (Ray's actors, the model load) and is what one engine does
per file once running, per worker for Ray; the driver's commit rate (1024-d float32 items into
SQLite, 32 per transaction as `bind index -b 8` commits) and its SHA-256 rate (the driver hashes
every new file), which bound any number of machines (benchmarks/README.md).

Run: .venv/bin/python benchmarks/bench_ray.py [--images 48] [--model small|vit-s]
     [--workers 1] [--cpus-per-worker 1] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe

from bindcli._util.hashing import sha256_file
from bindcli.collections.ingest import index, walk
from bindcli.model.config import ModelConfig
from bindcli.embed.ray_engine import RayEmbedder, WorkerSpec, import_ray
from bindcli.embed.identity import Model
from bindcli.embed.embedder import open_embedder
from bindcli.collections.store import Item, Store

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "imagebind-reference"
VIT_S = {"vision_embed_dim": 384, "vision_num_blocks": 12, "vision_num_heads": 6, "out_embed_dim": 512}


def write_photos(folder: Path, n: int, size: tuple[int, int] = (1280, 960)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        coarse.resize(size, Image.Resampling.BICUBIC).save(folder / f"photo_{i:03}.jpg", quality=90)


def model_for(name: str, tmp: Path) -> Model:
    data = json.loads((FIXTURES / "public_config.json").read_text())
    if name == "small":
        return Model.resolve(ModelConfig.from_dict(data, "small"), FIXTURES / "public.pth")
    import torch

    from bindcli.model.factory import create_model

    config = ModelConfig.from_dict({**data, **VIT_S}, "vit-s-random")
    torch.manual_seed(0)
    torch.save(create_model(config, ["vision"]).state_dict(), tmp / "vit-s.pth")
    return Model.resolve(config, tmp / "vit-s.pth")


def run_index(db: Path, folder: Path, model: Model, embedder, batch: int) -> tuple[float, dict]:
    """Seconds for the whole job (a fresh collection), and the vectors it holds."""
    with Store(db) as store:
        coll = store.create_collection("bench", model.id, model.describe())
        start = time.perf_counter()
        report = index(store, coll, walk([folder]), [folder], embedder, batch_size=4 * batch)
        seconds = time.perf_counter() - start
        assert not report.failed, report.failed
        rows = store.db.execute("SELECT path, vector FROM items").fetchall()
    return seconds, {p: np.frombuffer(v, np.float32) for p, v in rows}


def timed(tmp: Path, name: str, folders: tuple[Path, Path], model: Model, embedder, batch: int) -> tuple[float, float, dict]:
    """(files/s of the whole job over all files, marginal files/s, vectors): the marginal rate
    is (all - quarter) / (time for all - time for a quarter), what the engine does once
    started, the start-up (actors, model load) cancelling out. A first run on the quarter,
    not counted, warms imports and the page cache."""
    run_index(tmp / f"{name}-warm.sqlite3", folders[0], model, embedder, batch)  # imports, caches
    part_s, _ = run_index(tmp / f"{name}-part.sqlite3", folders[0], model, embedder, batch)
    all_s, vectors = run_index(tmp / f"{name}.sqlite3", folders[1], model, embedder, batch)
    n, k = (len(list(f.iterdir())) for f in reversed(folders))
    return n / all_s, (n - k) / (all_s - part_s), vectors


def commit_rate(tmp: Path, items: int = 20_000, per_commit: int = 32) -> float:
    """1024-d float32 items per second into a collection, `per_commit` to a transaction."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((per_commit, 1024)).astype(np.float32)
    with Store(tmp / "commits.sqlite3") as store:
        coll = store.create_collection("c", "m", "m")
        start = time.perf_counter()
        for n in range(0, items, per_commit):
            store.put_items(coll, [
                Item(f"/data/{n + i:08}.jpg", "image", 1, 1, f"{n + i:064x}", v) for i, v in enumerate(vectors)
            ])
        return items / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--model", choices=["small", "vit-s"], default="small")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    print(describe())
    tmp = Path(tempfile.mkdtemp(prefix="bray", dir="/tmp"))
    try:
        folder, part = tmp / "photos", tmp / "quarter"
        folder.mkdir()
        part.mkdir()
        write_photos(folder, args.images)
        for photo in sorted(folder.iterdir())[: args.images // 4]:
            (part / photo.name).write_bytes(photo.read_bytes())
        model = model_for(args.model, tmp)
        b = args.batch_size
        local_rate, local_marginal, local_v = timed(tmp, "local", (part, folder), model, lambda: open_embedder(
            model.config, model.weights, model=model, device="cpu", precision="fp32",
            batch_size=b, cache=False,
        ), b)
        ray = import_ray()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=str(tmp / "r"),
                 log_to_driver=False, configure_logging=False)
        spec = WorkerSpec(model.config, str(model.weights), "cpu", "fp32", b)
        engine = RayEmbedder(spec, model, workers=args.workers, cpus_per_worker=args.cpus_per_worker)
        ray_rate, ray_marginal, ray_v = timed(tmp, "ray", (part, folder), model, lambda: engine, b)
        ray.shutdown()
        assert local_v.keys() == ray_v.keys()
        worst = max(float(np.abs(local_v[p] - ray_v[p]).max()) for p in local_v)
        assert worst < 1e-5, worst
        n = args.images
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        start = time.perf_counter()
        for p in folder.iterdir():
            sha256_file(p)
        hash_mb_s = size / (time.perf_counter() - start)
        print(f"model {args.model}, {n} photos of 1280x960 ({size / n:.2f} MB each), batch {b}, fp32; "
              f"ray: {args.workers} worker(s) x {args.cpus_per_worker} CPU, decoding in tasks beside them")
        print(f"whole job ({n} files, start-up included): local {local_rate:.2f} files/s, "
              f"ray {ray_rate:.2f} files/s, ratio ray / local {ray_rate / local_rate:.2f}x")
        print(f"marginal (start-up cancelled): local {local_marginal:.2f} files/s, ray "
              f"{ray_marginal:.2f} files/s = {ray_marginal / args.workers:.2f} per worker, ratio "
              f"{ray_marginal / local_marginal:.2f}x  (vectors equal to {worst:.1e})")
        print(f"driver: commits {commit_rate(tmp):,.0f} items/s (1024-d float32, 32 per commit); "
              f"hashes {hash_mb_s:,.0f} MB/s ({hash_mb_s / (size / n):,.0f} files/s of this size)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
