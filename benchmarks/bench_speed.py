"""Encoder speed of bind vs upstream ImageBind: same random weights, same inputs, same process.

Upstream's `imagebind_huge(pretrained=False)` is built once (seeded); for each case, bind's
model gets only the tower it needs with upstream's weights copied in (`strict=True`). Before
anything is timed, every output is checked against upstream's fp32 output: fp32 must agree to
1e-4 (cosine > 0.99999), reduced precision to cosine >= 0.99. Timings interleave upstream and
bind call by call (median of `--repeats` after one warm-up each), so load from other processes
on the machine hits both alike; the load average is printed next to the figures. Ratios are of
median wall times (the target); the ratios of median process CPU time and of the fastest runs
are printed too, as they are less disturbed by other processes competing for the cores.

Cases (the issue's targets):
- text: 8 short prompts such as "a photo of a dog." (>= 5x, fp32)
- audio-2s: 4 clips of 2 s or less, i.e. 3 identical clips per item (>= 2.5x, fp32)
- images: 4 images, fp32 (>= 1.1x), bf16 (>= 2.5x upstream fp32) and int8 (>= 2x)
- audio-10s: 4 items of 3 distinct clips, bf16 (>= 2.5x upstream fp32) and int8 (>= 2x)
- video: 1 video of 5 two-frame clips, bf16 (>= 2.5x upstream fp32)

int8 is `--precision int8` (`quantize_int8` on the fp32 tower); its target is for CPUs
without native bf16, which `--avx2` stands in for: the whole run in a process whose kernels
are held to AVX2 (`machine.AVX2_ONLY`; upstream runs under the same restriction). bf16 rows
are left out where oneDNN reports no native bf16 (there it is emulated and not a choice).

Run: .venv/bin/python benchmarks/bench_speed.py [--cases text,images] [--repeats 3] [--avx2]
(needs benchmarks/setup_baseline.sh once)
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, held_to, rerun_avx2_only  # noqa: E402
from upstream import build_upstream, ours_like  # noqa: E402

PROMPTS = [
    "a photo of a dog.",
    "a photo of a cat.",
    "a dog barking.",
    "a car engine.",
    "a bird singing in a tree.",
    "rain on a window.",
    "a person playing guitar.",
    "waves on the beach.",
]


@dataclass(frozen=True)
class Variant:
    """One bind configuration timed against upstream fp32 on the same input."""

    dtype: torch.dtype
    target: float
    int8: bool = False  # linear layers quantised (`--precision int8`); activations fp32

    @property
    def label(self) -> str:
        return "int8" if self.int8 else str(self.dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Case:
    name: str
    modality: str
    make_input: Callable[[], torch.Tensor]
    variants: tuple[Variant, ...]


def _text() -> torch.Tensor:
    from bindcli.media import tokenize

    return tokenize(PROMPTS)


def _audio(distinct: bool) -> torch.Tensor:
    """(4, 3, 1, 128, 204) spectrogram-like input; 2 s or less means 3 copies of one clip."""
    g = torch.Generator().manual_seed(1)
    if distinct:
        return torch.randn(4, 3, 1, 128, 204, generator=g)
    return torch.randn(4, 1, 1, 128, 204, generator=g).expand(-1, 3, -1, -1, -1).contiguous()


def _images() -> torch.Tensor:
    return torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(2))


def _video() -> torch.Tensor:
    """One video as upstream's data.py makes it: 5 clips of 2 frames."""
    return torch.randn(1, 5, 3, 2, 224, 224, generator=torch.Generator().manual_seed(3))


FP32, BF16 = torch.float32, torch.bfloat16
INT8 = Variant(FP32, 2.0, int8=True)
CASES = {
    "text": Case("text, 8 short prompts", "text", _text, (Variant(FP32, 5.0),)),
    "audio-2s": Case(
        "audio <= 2 s, batch 4", "audio", lambda: _audio(False), (Variant(FP32, 2.5),)
    ),
    "images": Case(
        "images, batch 4", "vision", _images, (Variant(FP32, 1.1), Variant(BF16, 2.5), INT8)
    ),
    "audio-10s": Case(
        "audio, 3 distinct clips, batch 4", "audio", lambda: _audio(True),
        (Variant(BF16, 2.5), INT8),
    ),
    "video": Case("video, 5 clips x 2 frames", "vision", _video, (Variant(BF16, 2.5),)),
}


def _check(case: Case, variant: Variant, ours: torch.Tensor, ref: torch.Tensor) -> str:
    """How close bind's output is to upstream fp32 (worst row); raise if they disagree."""
    cos = float(F.cosine_similarity(ours.float(), ref, dim=-1).min())
    diff = float((ours.float() - ref).abs().max())
    if variant.dtype == FP32 and not variant.int8 and not (diff <= 1e-4 or cos > 0.99999):
        raise SystemExit(f"{case.name}: fp32 outputs differ (max abs {diff:.2e}, cos {cos})")
    if cos < 0.99:
        raise SystemExit(f"{case.name}: {variant.label} cosine to fp32 is {cos:.5f} < 0.99")
    return f"max abs {diff:.1e}, cos {cos:.6f}"


def _ours(upstream: torch.nn.Module, modality: str, variant: Variant) -> torch.nn.Module:
    from bindcli.model.quantize import quantize_int8

    model = ours_like(upstream, modality, variant.dtype)
    return quantize_int8(model) if variant.int8 else model


def _runs_here(variant: Variant) -> bool:
    """bf16 only where oneDNN runs it natively (held to AVX2 it is emulated, minutes a case)."""
    return variant.dtype != BF16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU time (all threads) is less hurt by other load."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_case(upstream: torch.nn.Module, case: Case, repeats: int) -> list[str]:
    x = case.make_input()
    key = case.modality
    ours = {v: _ours(upstream, key, v) for v in case.variants if _runs_here(v)}
    if not ours:
        return []
    calls = {"upstream": lambda: upstream({key: x})[key]}
    calls |= {v: (lambda m=m: m({key: x})[key]) for v, m in ours.items()}
    with torch.inference_mode():
        ref = calls["upstream"]()  # doubles as the warm-up
        cosines = {v: _check(case, v, calls[v](), ref) for v in ours}
        times: dict[object, list[tuple[float, float]]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, fn in calls.items():
                times[name].append(_seconds(fn))
    base = [statistics.median(t) for t in zip(*times["upstream"])]
    base_best = min(wall for wall, _ in times["upstream"])
    rows = []
    for v in ours:
        mine = [statistics.median(t) for t in zip(*times[v])]
        best = min(wall for wall, _ in times[v])
        ratio, cpu_ratio = base[0] / mine[0], base[1] / mine[1]
        rows.append(
            f"| {case.name}, {v.label} | {mine[0]:.3f} s | {base[0]:.3f} s (fp32) | {ratio:.2f}x "
            f"| >= {v.target}x | {'yes' if ratio >= v.target else 'NO'} | {cpu_ratio:.2f}x "
            f"| {base_best / best:.2f}x | {cosines[v]} |"
        )
    del ours, calls
    gc.collect()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--avx2", action="store_true", help="in a fresh process held to AVX2")
    args = parser.parse_args()
    if args.avx2:
        rerun_avx2_only()
    names = args.cases.split(",")
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}")
    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"dispatch {torch.backends.cpu.get_cpu_capability()}{held_to()}")
    upstream = build_upstream()
    print("| figure | bind | upstream | ratio | target | met | CPU-time ratio | best-run ratio "
          "| vs upstream fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for row in run_case(upstream, CASES[name], args.repeats):
            print(row, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
