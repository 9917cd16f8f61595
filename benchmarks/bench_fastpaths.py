"""Does each CPU fast path of bind's model win on this CPU? Interleaved A/B, each path on/off.

- oneDNN fp32 linear for few rows (`layers._ONEDNN_FP32_MAX_ROWS`): text tower, 8 prompts;
- oneDNN bf16 linear (`layers._use_onednn` for bf16), where this CPU runs bf16 natively:
  a ViT-H vision slice in bf16, against the plain ops;
- GELU in place and residuals accumulated by the GEMM (`Linear.fused`, many-row fp32):
  a ViT-H vision slice;
- shared output buffers (`Transformer.reuse_buffers`): the same slice;
- int8 (`quantize_int8`) against fp32 on the same slice.

Random weights at the huge model's sizes (the slice: `--blocks` of the 32 ViT-H blocks on 4
images' 257 tokens). `--avx2` re-runs the script in a fresh process with ATen, MKL, oneDNN and
fbgemm held to AVX2 (this CPU's AVX-512/AMX hidden from them; not from cpuinfo, so torch.cpu's
`_is_*_supported` still report the real CPU).

Run: .venv/bin/python benchmarks/bench_fastpaths.py [--avx2] [--repeats 15] [--blocks 4]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, held_to, rerun_avx2_only  # noqa: E402

#: ratios within this of 1 are called no difference (runs of one build scatter by ~2-3%)
NOISE = 0.03


@contextlib.contextmanager
def _set(obj: object, name: str, value: object) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _ab(on: Callable[[], object], off: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of `on` and `off`, called alternately after one warm-up each."""
    on(), off()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((on, times[0]), (off, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _row(name: str, on: float, off: float, on_label: str = "on", off_label: str = "off") -> str:
    ratio = off / on
    verdict = "wins" if ratio > 1 + NOISE else "LOSES" if ratio < 1 - NOISE else "no difference"
    return f"| {name} | {on:.3f} s | {off:.3f} s | {ratio:.2f}x | {verdict} ({on_label} vs {off_label}) |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avx2", action="store_true", help="in a fresh process held to AVX2")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.avx2:
        rerun_avx2_only()

    from bindcli.media import tokenize
    from bindcli.model import layers
    from bindcli.model.factory import create_model
    from bindcli.model.quantize import quantize_int8

    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}; torch {torch.__version__}, dispatch "
          f"{torch.backends.cpu.get_cpu_capability()}{held_to()}")
    torch.manual_seed(0)
    vision = layers.Transformer(1280, args.blocks, 16, False).eval().requires_grad_(False)
    for p in vision.parameters():
        torch.nn.init.normal_(p, std=0.02)
    tokens = torch.randn(4, 257, 1280)
    text = create_model("imagebind_huge", ["text"])
    prompts = tokenize([f"a photo of a {w}." for w in "dog cat car bird tree rain sea fox".split()])

    def encode_text() -> object:
        return text({"text": prompts})

    rows = ["| path | on | off | off / on | verdict |", "|---|---|---|---|---|"]
    with torch.inference_mode():
        on, off = _ab(
            encode_text,
            lambda: _with(layers, "_ONEDNN_FP32_MAX_ROWS", 0, encode_text),
            args.repeats,
        )
        rows.append(_row("oneDNN fp32 linear, text tower, 8 prompts", on, off, "oneDNN", "MKL"))
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            bf16, x16 = copy.deepcopy(vision).bfloat16(), tokens.bfloat16()
            on, off = _ab(
                lambda: bf16(x16),
                lambda: _with(layers, "_HAS_ONEDNN_LINEAR", False, lambda: bf16(x16)),
                args.repeats,
            )
            rows.append(_row(f"oneDNN bf16 linear, ViT-H {args.blocks} blocks", on, off, "oneDNN", "aten"))
        else:
            rows.append("| oneDNN bf16 linear | - | - | - | not used: oneDNN reports no native bf16 |")
        on, off = _ab(
            lambda: vision(tokens),
            lambda: _with(layers.Linear, "fused", False, lambda: vision(tokens)),
            args.repeats,
        )
        rows.append(_row(f"in-place GELU + residual GEMM, ViT-H {args.blocks} blocks fp32", on, off))
        on, off = _ab(
            lambda: vision(tokens),
            lambda: _with(layers.Transformer, "reuse_buffers", False, lambda: vision(tokens)),
            args.repeats,
        )
        rows.append(_row(f"shared buffers, ViT-H {args.blocks} blocks fp32", on, off))
        int8 = quantize_int8(copy.deepcopy(vision))
        on, off = _ab(lambda: int8(tokens), lambda: vision(tokens), args.repeats)
        rows.append(_row(f"int8 linears, ViT-H {args.blocks} blocks", on, off, "int8", "fp32"))
    print("\n".join(rows))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _with(obj: object, name: str, value: object, fn: Callable[[], object]) -> object:
    with _set(obj, name, value):
        return fn()


if __name__ == "__main__":
    main()
