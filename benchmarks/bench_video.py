"""Video: share of decoding + preprocessing in the total time, and peak memory vs file length.

Writes 720p H.264 test videos with PyAV (x264 defaults, so a keyframe every 250 frames) into
a temp folder, then, each in a fresh process:
- load: `bindcli.media.load(path, Kind.VIDEO)` alone; its time and the growth of peak RSS
  (VmHWM) over the process's RSS before it, for a short and a long file. Targets: the 60 s
  file's decoding + preprocessing <= 25% of the total time; peak memory independent of length.
- encode: the same load, then the huge vision tower (random weights) on the 15 views it
  gives, in the given precision; total = load + encode.

Run: .venv/bin/python benchmarks/bench_video.py [--seconds 10,60] [--dtype bf16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_weights_load import _memory  # VmRSS/VmHWM of this process, read from /proc
from machine import describe

SHARE_TARGET = 0.25
FPS = 30


def write_video(path: Path, seconds: int, width: int = 1280, height: int = 720) -> None:
    """A moving colour gradient: cheap to make, and not trivially compressible."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        ys, xs = np.mgrid[0:height, 0:width]
        for i in range(seconds * FPS):
            rgb = np.stack([(xs + 4 * i) % 256, (ys + 2 * i) % 256, (xs + ys + i) % 256], axis=-1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def child(mode: str, path: str, dtype: str, threads: int) -> None:
    """Runs in a fresh process; prints one JSON line."""
    import torch

    from bindcli.media import load
    from bindcli.modality import Kind

    torch.set_num_threads(threads)
    before = _memory("VmRSS")
    start = time.perf_counter()
    views = load(path, Kind.VIDEO)
    result = {"load_s": time.perf_counter() - start, "load_peak_growth": _memory("VmHWM") - before}
    if mode == "encode":
        from bindcli.model.factory import create_model

        model = create_model("imagebind_huge", ["vision"], dtype=dtype)
        with torch.inference_mode():
            model({"vision": views[None]})  # warm-up: first-call allocations, kernel choice
            start = time.perf_counter()
            model({"vision": views[None]})
        result["encode_s"] = time.perf_counter() - start
    print(json.dumps(result))


def _run_child(mode: str, path: Path, dtype: str, threads: int) -> dict:
    argv = [sys.executable, __file__, "--child", mode, str(path), "--dtype", dtype,
            "--threads", str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {mode} {path} failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", default="10,60", help="comma-separated file lengths")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.dtype, args.threads)
        return
    import torch

    lengths = [int(s) for s in args.seconds.split(",")]
    print(f"machine: {describe()}; torch {torch.__version__}; threads {args.threads}; "
          f"dtype {args.dtype}")
    with tempfile.TemporaryDirectory(prefix="bind-bench-video-") as tmp:
        loads = {}
        for seconds in lengths:
            path = Path(tmp) / f"{seconds}s.mp4"
            write_video(path, seconds)
            loads[seconds] = _run_child("load", path, args.dtype, args.threads)
            print(f"{seconds:>4} s 720p ({path.stat().st_size / 1e6:.1f} MB): load "
                  f"{loads[seconds]['load_s']:.2f} s, peak RSS growth "
                  f"{loads[seconds]['load_peak_growth'] / 2**20:.0f} MiB", flush=True)
        longest = max(lengths)
        total = _run_child("encode", Path(tmp) / f"{longest}s.mp4", args.dtype, args.threads)
    share = total["load_s"] / (total["load_s"] + total["encode_s"])
    growth = {s: r["load_peak_growth"] / 2**20 for s, r in loads.items()}
    print("| figure | value | target | met |")
    print("|---|---|---|---|")
    print(f"| {longest} s 720p: decode+preprocess share of total ({args.dtype} encode "
          f"{total['encode_s']:.1f} s, load {total['load_s']:.2f} s) | {share:.1%} "
          f"| <= {SHARE_TARGET:.0%} | {'yes' if share <= SHARE_TARGET else 'NO'} |")
    spread = max(growth.values()) - min(growth.values())
    detail = ", ".join(f"{s} s: {g:.0f} MiB" for s, g in growth.items())
    independent = spread <= 0.1 * max(growth.values()) + 16
    print(f"| peak memory of load vs length ({detail}) | {spread:.0f} MiB apart "
          f"| independent of length | {'yes' if independent else 'NO'} |")


if __name__ == "__main__":
    main()
