"""What `bind tune` costs: trainable parameters, adapter bytes, peak memory and seconds per
epoch, for `--method head` and `--method lora`, against a baseline measured in the same run.

The data: `--items` small synthetic images per class in two classes (stripes in rows or in
columns, resized to 224 by the preprocessing like any image). Each case runs in a fresh
subprocess so its peak RSS (`VmHWM`) is its own:

- **embed** (the baseline): one embedding pass over the training items with the base model,
  no cache: the seconds of one inference pass and the memory of merely running the model.
- **head** / **lora**: `bindcli.tune.train` for `--epochs` epochs (no early stop), the
  anchors and (head) the base vectors from a fresh cache, so their one-off encoding is timed
  apart from the epochs.

Seconds per epoch are the mean over the epochs, and "x embed" divides them by the baseline's
pass over the same items; peak RSS "x embed" likewise.

Run: .venv/bin/python benchmarks/bench_tune.py [--items 32] [--epochs 3] [--rank 4] [--blocks 2]
     [--config PATH --weights PATH] [--device cpu] [--precision fp32]
     (the default model is the test suite's small one: tests/fixtures/imagebind-reference)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "imagebind-reference"
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "tune"))
from machine import describe  # noqa: E402


def peak_rss() -> float:
    """This process's peak resident memory in GB (`VmHWM`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def case(args: argparse.Namespace) -> dict:
    """One case, in this process: its figures as a dict."""
    from bindcli.embed.embedder import open_embedder
    from bindcli.tune.data import read_data, split
    from bindcli.tune.train import Callbacks, Settings, train

    data = read_data(args.data)
    training, held_out = split(data, 0.25, 0)
    cache = False if args.case == "embed" else Path(args.tmp) / f"{args.case}.sqlite3"
    with open_embedder(args.config, args.weights, device=args.device, precision=args.precision, cache=cache) as e:
        if args.case == "embed":
            e.embed([x.path for x in training.examples[:2]])  # the model loaded and warm
            start = time.perf_counter()
            e.embed([x.path for x in training.examples])
            return {"seconds": time.perf_counter() - start, "peak_gb": peak_rss()}
        marks: list[float] = []
        settings = Settings(method=args.case, rank=args.rank, blocks=args.blocks, epochs=args.epochs,
                            patience=args.epochs + 1, batch=8)
        callbacks = Callbacks(started=lambda n: marks.append(time.perf_counter()),
                              epoch=lambda r: marks.append(time.perf_counter()))
        begun = time.perf_counter()
        out = train(e, training, held_out, Path(args.tmp) / f"{args.case}.safetensors", settings, callbacks=callbacks)
        epochs = [b - a for a, b in zip(marks, marks[1:])]
        from safetensors.torch import load_file

        tensors = load_file(out.adapter.path)
        return {
            "trainable": sum(t.numel() for t in tensors.values()),
            "adapter_bytes": out.adapter.path.stat().st_size,
            "encode_seconds": marks[0] - begun,
            "seconds_per_epoch": sum(epochs) / len(epochs),
            "peak_gb": peak_rss(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=32, help="images per class")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--config", default=str(FIXTURES / "public_config.json"))
    parser.add_argument("--weights", default=str(FIXTURES / "public.pth"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args)))
        return
    import torch

    from stripes import stripes

    print(f"machine: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"model: {Path(args.config).name}, {args.device}, {args.precision}; {2 * args.items} images, "
          f"{args.epochs} epochs, batch 8; lora rank {args.rank} on the last {args.blocks} blocks")
    with tempfile.TemporaryDirectory() as tmp:
        data = stripes(Path(tmp) / "data", args.items, seed=0)
        figures = {}
        for name in ("embed", "head", "lora"):
            argv = [sys.executable, __file__, "--case", name, "--data", str(data), "--tmp", tmp,
                    *(f"--{k}={getattr(args, k)}" for k in ("epochs", "rank", "blocks", "config", "weights", "device", "precision"))]
            done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr}")
            figures[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = figures["embed"]
    print(f"\nembed (baseline): one pass over the training items {base['seconds']:.2f} s, peak RSS {base['peak_gb']:.2f} GB\n")
    print("| method | trainable | adapter bytes | peak RSS GB | x embed | one-off encode s | s / epoch | x embed pass |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("head", "lora"):
        f = figures[name]
        print(f"| {name} | {f['trainable']:,} | {f['adapter_bytes']:,} | {f['peak_gb']:.2f} | "
              f"{f['peak_gb'] / base['peak_gb']:.2f} | {f['encode_seconds']:.2f} | {f['seconds_per_epoch']:.3f} | "
              f"{f['seconds_per_epoch'] / base['seconds']:.2f} |")


if __name__ == "__main__":
    main()
