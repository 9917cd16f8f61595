"""How fast, and in how much memory, `bind` loads the 4.8 GB checkpoint, whole or in part.

Builds a random checkpoint with `imagebind_huge`'s exact keys and shapes (about 4.8 GB) and a
bf16 safetensors copy of it (`bind weights convert`) in a temp folder on /tmp, deletes both
afterwards, and measures each way of loading in a fresh subprocess (so one case's memory and
page faults cannot flatter the next):

- plain: what upstream does: build the whole model (random init), `torch.load` the file,
  `load_state_dict`. This is the baseline every ratio divides by.
- full / vision / vision+audio: `bindcli.load_model` from the .pth (meta-device model, mmap'd
  checkpoint, only the requested towers' tensors assigned).
- vision+audio bf16: the same from the bf16 safetensors copy, in bf16.

Per case: load time; time to first embedding (load, then one forward on a random image and, where
the model has audio, one 3-clip audio input; the same inputs as the baseline); peak RSS
(VmHWM, read in the child) after loading and after that first embedding; the
RSS before loading (Python + torch + bindcli imported) is part of every peak. Imports happen before
the clock starts, in every case. The files sit in the page cache throughout (written just before),
so these are warm-cache figures.

Run: .venv/bin/python benchmarks/bench_weights_load.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ROOT / "tests" / "fixtures" / "imagebind-reference" / "huge_state_dict_shapes.json"
#: name -> (file, towers or None for all, dtype, inputs of the first embedding)
CASES: dict[str, tuple[str, tuple[str, ...] | None, str, tuple[str, ...]]] = {
    "plain": ("pth", None, "fp32", ("vision", "audio")),
    "full": ("pth", None, "fp32", ("vision", "audio")),
    "vision": ("pth", ("vision",), "fp32", ("vision",)),
    "vision+audio": ("pth", ("vision", "audio"), "fp32", ("vision", "audio")),
    "vision+audio bf16": ("bf16", ("vision", "audio"), "bf16", ("vision", "audio")),
}
#: the issue's targets, for vision+audio from the .pth
RSS_TARGET = 1.2  # x those two towers' weight bytes
TTFE_TARGET = 0.5  # x the plain load's time to first embedding


def _memory(field: str) -> int:
    """Bytes of a /proc/self/status field: VmHWM (peak RSS) or VmRSS (current).

    Not `ru_maxrss`: a child started by fork/vfork + exec inherits the parent's peak in it, so
    every case would report the peak of the process that built the checkpoint.
    """
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def run_case(name: str, path: Path) -> dict[str, float]:
    """One case, in this (fresh) process; returns seconds and bytes."""
    import torch

    from bindcli.model.factory import create_model, load_model

    _, towers, dtype, inputs = CASES[name]
    batch = {"vision": torch.randn(1, 3, 224, 224), "audio": torch.randn(1, 3, 1, 128, 204)}
    batch = {k: v for k, v in batch.items() if k in inputs}
    rss_start = _memory("VmRSS")
    start = time.perf_counter()
    if name == "plain":
        model = create_model("imagebind_huge")
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        model = load_model("imagebind_huge", path, towers, dtype=dtype)
    loaded = time.perf_counter() - start
    rss_loaded = _memory("VmHWM")
    with torch.inference_mode():
        model(batch)
    return {
        "load_s": loaded,
        "first_embedding_s": time.perf_counter() - start,
        "rss_start": rss_start,
        "peak_rss_loaded": rss_loaded,
        "peak_rss": _memory("VmHWM"),
    }


def tower_bytes(towers: tuple[str, ...] | None, element_size: int = 4) -> int:
    """Bytes of the given towers' tensors in the official checkpoint, at `element_size` each."""
    from bindcli.model.checkpoint import tower_of_key

    shapes = json.loads(SHAPES.read_text())
    return element_size * sum(
        math.prod(shape) for key, shape in shapes.items() if towers is None or tower_of_key(key) in towers
    )


def build_checkpoint(folder: Path) -> tuple[Path, Path, dict[str, float]]:
    """The random .pth with the official layout and its bf16 safetensors copy, with timings."""
    import torch

    from bindcli.model.checkpoint import convert

    shapes = json.loads(SHAPES.read_text())
    pth, bf16 = folder / "imagebind_huge.pth", folder / "imagebind_huge-bf16.safetensors"
    start = time.perf_counter()
    state = {key: torch.empty(shape).normal_(std=0.02) for key, shape in shapes.items()}
    torch.save(state, pth)
    del state
    saved = time.perf_counter()
    convert(pth, bf16, "bf16")
    return pth, bf16, {"build_s": saved - start, "convert_s": time.perf_counter() - saved}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # the child's job
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.file)))
        return

    print(machine())
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="bind-bench-weights-") as tmp:
        pth, bf16, setup = build_checkpoint(Path(tmp))
        print(
            f"checkpoint: {pth.stat().st_size / 1e9:.2f} GB written in {setup['build_s']:.1f} s; "
            f"bf16 safetensors: {bf16.stat().st_size / 1e9:.2f} GB, converted in {setup['convert_s']:.1f} s"
        )
        results = {}
        for name, (kind, *_) in CASES.items():
            out = subprocess.run(
                [sys.executable, __file__, "--case", name, "--file", str(pth if kind == "pth" else bf16)],
                check=True, capture_output=True, text=True,
            )
            results[name] = json.loads(out.stdout)
    report(results)


def report(results: dict[str, dict[str, float]]) -> None:
    """A Markdown table (ratios against `plain`) and the verdict on the issue's two targets.

    "towers' bytes" are the size of the case's towers in the dtype it loads; "added" leaves out
    the RSS the process had before loading (Python, torch and bindcli imported).
    """
    base = results["plain"]
    print(
        "\n| case | load s | x plain | first embedding s | x plain | RSS before GB | peak RSS loaded GB "
        "| peak RSS GB | x plain | peak / towers' bytes | added / towers' bytes |"
        "\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for name, r in results.items():
        weight = tower_bytes(CASES[name][1], 2 if CASES[name][2] == "bf16" else 4)
        print(
            f"| {name} | {r['load_s']:.2f} | {r['load_s'] / base['load_s']:.2f} "
            f"| {r['first_embedding_s']:.2f} | {r['first_embedding_s'] / base['first_embedding_s']:.2f} "
            f"| {r['rss_start'] / 1e9:.2f} | {r['peak_rss_loaded'] / 1e9:.2f} | {r['peak_rss'] / 1e9:.2f} "
            f"| {r['peak_rss'] / base['peak_rss']:.2f} | {r['peak_rss'] / weight:.2f} "
            f"| {(r['peak_rss'] - r['rss_start']) / weight:.2f} |"
        )
    va, weight = results["vision+audio"], tower_bytes(("vision", "audio"))
    rss, added = va["peak_rss"] / weight, (va["peak_rss"] - va["rss_start"]) / weight
    ttfe = va["first_embedding_s"] / base["first_embedding_s"]
    print(
        f"\nvision+audio peak RSS: {rss:.2f}x those towers' bytes, {added:.2f}x without the RSS before "
        f"loading (target <= {RSS_TARGET}): {'met' if rss <= RSS_TARGET else 'MISSED'}"
    )
    print(
        f"vision+audio time to first embedding: {ttfe:.2f}x plain (target <= {TTFE_TARGET}): "
        f"{'met' if ttfe <= TTFE_TARGET else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
