"""Long media in segments (issue 26): throughput against the tower's own, and flat memory.

1. **Throughput.** A 5-minute 16 kHz WAV embedded in 2 s windows (`--segments 2s`) through
   the Embedder (streamed decode on loader threads, batches across files, encode overlapping
   decode), against the audio tower alone encoding the same windows' tensors made beforehand,
   in batches of the same size. Target: segments/s >= 0.8x the tower's.
2. **Memory.** Peak RSS (`VmHWM`) of a fresh process embedding a 60-minute WAV in segments,
   against one embedding a 5-minute WAV the same way. Target: <= 1.2x.

The throughput is measured twice: with the small fixture model (its towers are tiny, so the
decoding of each window weighs as much as its encoding: the harder case), and with
`imagebind_huge`'s audio tower, randomly initialised (the checkpoint of that tower alone,
345 MB, is written to the temp folder: the real one's shapes, so its real cost per window).
Memory is measured with the small model. `--model-config` and `--weights` name another
model for the first figure.

Run: .venv/bin/python benchmarks/bench_segments.py [--batch-size 16] [--workers 2] [--no-huge]
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
import soundfile

from machine import describe

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "imagebind-reference"
RATE = 16_000
TARGET_SPEED, TARGET_MEMORY = 0.8, 1.2


def _recording(path: Path, minutes: int) -> Path:
    """Noise at 16 kHz, written a minute at a time (never held whole)."""
    rng = np.random.default_rng(minutes)
    with soundfile.SoundFile(path, "w", RATE, 1, "PCM_16") as sink:
        for _ in range(minutes):
            sink.write((rng.standard_normal(60 * RATE) * 0.1).astype(np.float32))
    return path


def _embedder(args: argparse.Namespace):
    from bindcli.embed.embedder import Embedder
    from bindcli.model.config import load_config
    from bindcli.model.placement import place

    return Embedder(load_config(args.model_config), Path(args.weights), place("cpu", "fp32"),
                    batch_size=args.batch_size, workers=args.workers)


def _throughput(args: argparse.Namespace, wav: Path) -> tuple[float, float, int]:
    """(pipeline segments/s, tower segments/s, segments) for `wav` in 2 s windows."""
    import torch

    from bindcli.embed.inputs import gather, in_segments
    from bindcli.media import MediaOptions
    from bindcli.media.segments import read_segments
    from bindcli.modality import Kind
    from bindcli.windows import Reading, Window

    torch.set_num_threads(args.threads)
    window = Window.parse("2s")
    with _embedder(args) as embedder:
        tensors = [s.tensor for s in read_segments(wav, Kind.AUDIO, Reading.SOUND, window,
                                                   embedder.options or MediaOptions())]
        embedder.encoder.prepare(frozenset({"audio"}))
        embedder.encoder.encode("audio", tensors[: args.batch_size])  # warm-up
        pipeline, tower = [], []
        for _ in range(args.repeats):  # alternated, so both see the same machine load
            start = time.perf_counter()
            for i in range(0, len(tensors), args.batch_size):
                embedder.encoder.encode("audio", tensors[i : i + args.batch_size])
            tower.append(time.perf_counter() - start)
            start = time.perf_counter()
            [found] = embedder.embed(in_segments(gather([wav]), window))
            pipeline.append(time.perf_counter() - start)
            assert len(found.parts) == len(tensors)
    return len(tensors) / min(pipeline), len(tensors) / min(tower), len(tensors)


def _peak_rss(args: argparse.Namespace, wav: Path) -> dict:
    """Peak RSS (bytes) and segments of a fresh process embedding `wav` in 2 s windows."""
    code = (
        "import json, sys, resource\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from bench_segments import _embedder, _child\n"
        "print(json.dumps(_child(sys.argv[2:])))\n"
    )
    argv = [sys.executable, "-c", code, str(HERE), str(wav), args.model_config, args.weights,
            str(args.batch_size), str(args.workers), str(args.threads)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(argv: list[str]) -> dict:
    """In the measured process: embed the file in segments, report VmHWM."""
    import torch

    from bindcli.embed.inputs import gather, in_segments
    from bindcli.windows import Window

    wav, config, weights, batch, workers, threads = argv
    torch.set_num_threads(int(threads))
    args = argparse.Namespace(model_config=config, weights=weights, batch_size=int(batch), workers=int(workers))
    start = time.perf_counter()
    with _embedder(args) as embedder:
        [found] = embedder.embed(in_segments(gather([wav]), Window.parse("2s")))
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text()
    peak = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM"))
    return {"peak": peak, "segments": len(found.parts), "seconds": seconds}


def _speed_row(what: str, mine: float, tower: float) -> None:
    ratio = mine / tower
    print(f"| {what} | {mine:.1f} | {tower:.1f} (the tower on pre-made tensors) | {ratio:.2f}x | "
          f">= {TARGET_SPEED}x | {'yes' if ratio >= TARGET_SPEED else 'NO'} |")


def _huge_audio(folder: Path) -> Path:
    """A checkpoint of imagebind_huge's audio tower alone, randomly initialised."""
    import torch

    from bindcli.model.factory import create_model

    path = folder / "audio_huge.pth"
    torch.save(create_model("imagebind_huge", ["audio"]).state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-config", default=str(FIXTURES / "public_config.json"))
    parser.add_argument("--weights", default=str(FIXTURES / "public.pth"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-huge", action="store_true", help="skip the imagebind_huge audio tower")
    args = parser.parse_args()
    print(f"machine: {describe()}; model {Path(args.model_config).name}; batch {args.batch_size}, "
          f"{args.workers} loader threads, {args.threads} torch threads")
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as folder:
        short = _recording(Path(folder) / "five.wav", 5)
        mine, tower, count = _throughput(args, short)
        print("| figure | bind | baseline | ratio | target | met |")
        print("|---|---|---|---|---|---|")
        _speed_row(f"segments/s, {Path(args.model_config).stem}, 5-min WAV in 2 s windows ({count})", mine, tower)
        if not args.no_huge:
            huge = argparse.Namespace(**{**vars(args), "model_config": "imagebind_huge",
                                         "weights": str(_huge_audio(Path(folder)))})
            mine, tower, count = _throughput(huge, short)
            _speed_row(f"segments/s, imagebind_huge audio tower (random), same windows ({count})", mine, tower)
        long = _recording(Path(folder) / "sixty.wav", 60)
        five, sixty = _peak_rss(args, short), _peak_rss(args, long)
        ratio = sixty["peak"] / five["peak"]
        print(f"| peak RSS, 60-min WAV ({sixty['segments']} segments, {sixty['seconds']:.0f} s) vs 5-min "
              f"({five['segments']}) | {sixty['peak'] / 2**20:.0f} MiB | {five['peak'] / 2**20:.0f} MiB | "
              f"{ratio:.2f}x | <= {TARGET_MEMORY}x | {'yes' if ratio <= TARGET_MEMORY else 'NO'} |")


if __name__ == "__main__":
    main()
