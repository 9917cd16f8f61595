"""Many files: does decoding overlap encoding, and do batches form across files of one kind?

Writes a shuffled mix of generated files into a temp folder (smooth random 12 MP JPEGs, the
size of a phone's photos; 10 s 44.1 kHz stereo WAVs; 4 s 640x360 H.264 videos), so that files
of one kind are scattered through the list, and a random-weight checkpoint holding only
`imagebind_huge`'s vision and audio towers, in bf16 (what `--precision auto` picks on an AMX
CPU). Then, in this process, for the same files, weights and batch size:

- load: every file through `bindcli.media.load`, one after another (sequential decoding);
- encode: those tensors encoded in the batches the Embedder forms (by tower and shape, a batch
  run as soon as it is full, the rest at the end), by a model loaded from the same checkpoint;
- pipeline: `Embedder.embed` on the files (cpu, bf16, no cache), as `bind embed` runs them:
  content hashes, decoding on loader threads, batching, encoding.

The baseline is load + encode, one after the other; the figures are the pipeline's wall time
as a ratio to it and the share of the decoding time the pipeline hid, (load + encode -
pipeline) / load. After a warm-up of both on one file of each kind, the two alternate (which
goes first alternates too), median of `--repeats`. Every forward call of the model is timed
and its input shapes recorded: the pipeline's batches must be the planned ones and its vectors
must match the encode-only ones (cosine > 0.999) before anything is reported. The pipeline's
time outside forward calls is what decoding still costs it on the critical path; its forward
time against encode-only shows what decoding on the same cores takes from the encoder.

Run: .venv/bin/python benchmarks/bench_pipeline.py [--images 24] [--audio 16] [--videos 2]
     [--batch-size 8] [--threads 2] [--repeats 3]      (about 4 min with the defaults)
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bench_video import write_video
from machine import describe

from bindcli.model.config import load_config
from bindcli.model.factory import create_model, load_model
from bindcli.model.imagebind import ImageBind
from bindcli.model.placement import place
from bindcli.embed.inputs import Input
from bindcli.embed.embedder import Embedder

DTYPE = "bf16"
TOWERS = ["vision", "audio"]
COSINE_MIN = 0.999


@dataclass(frozen=True)
class Forward:
    """One call of the model: each tower's input shape, and its wall time."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    seconds: float


def write_photo(path: Path, rng: np.random.Generator, size: tuple[int, int] = (4032, 3024)) -> None:
    """A few random colours blown up bicubically: smooth, like a photo, not JPEG-trivial."""
    from PIL import Image

    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    coarse.resize(size, Image.Resampling.BICUBIC).save(path, quality=90)


def write_recording(path: Path, rng: np.random.Generator, seconds: float = 10.0) -> None:
    """Stereo 16-bit WAV at 44.1 kHz (resampled to 16 kHz on load): two tones and noise."""
    import soundfile

    rate = 44_100
    t = np.arange(int(seconds * rate)) / rate
    tones = [np.sin(2 * np.pi * rng.uniform(110, 2000) * t) for _ in range(2)]
    noise = rng.standard_normal((2, t.size)) * 0.05
    soundfile.write(path, (0.4 * np.stack(tones) + noise).T.astype(np.float32), rate,
                    subtype="PCM_16")


def write_media(folder: Path, images: int, audio: int, videos: int) -> list[Path]:
    """The files, shuffled (seeded) so that kinds interleave."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(images):
        paths.append(folder / f"photo_{i:03}.jpg")
        write_photo(paths[-1], rng)
    for i in range(audio):
        paths.append(folder / f"sound_{i:03}.wav")
        write_recording(paths[-1], rng)
    for i in range(videos):
        paths.append(folder / f"clip_{i:03}.mp4")
        write_video(paths[-1], 4, width=640, height=360)
    random.Random(0).shuffle(paths)
    return paths


def write_checkpoint(path: Path) -> None:
    """Random vision + audio towers of imagebind_huge, bf16, only their keys."""
    torch.manual_seed(0)
    torch.save(create_model("imagebind_huge", TOWERS, dtype=DTYPE).state_dict(), path)


@contextlib.contextmanager
def recording_forwards() -> Iterator[list[Forward]]:
    """Every ImageBind forward while open, whichever object holds the model."""
    from torch.nn.modules.module import (
        register_module_forward_hook,
        register_module_forward_pre_hook,
    )

    calls: list[Forward] = []
    started: list[float] = []

    def before(module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, ImageBind):
            started.append(time.perf_counter())

    def after(module: torch.nn.Module, args: tuple, output: object) -> None:
        if isinstance(module, ImageBind):
            shapes = tuple((tower, tuple(x.shape)) for tower, x in args[0].items())
            calls.append(Forward(shapes, time.perf_counter() - started.pop()))

    handles = [register_module_forward_pre_hook(before), register_module_forward_hook(after)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def plan_batches(towers: list[str], tensors: list[torch.Tensor], size: int) -> list[list[int]]:
    """File positions per batch, as `Embedder` forms them from files arriving in this order:
    grouped by tower and shape, each group run when it holds `size`, the rest at the end."""
    pending: dict[tuple, list[int]] = {}
    batches = []
    for n, (tower, tensor) in enumerate(zip(towers, tensors)):
        group = pending.setdefault((tower, tuple(tensor.shape)), [])
        group.append(n)
        if len(group) == size:
            batches.append(pending.pop((tower, tuple(tensor.shape))))
    return batches + list(pending.values())


def encode(model: torch.nn.Module, towers: list[str], tensors: list[torch.Tensor],
           batches: list[list[int]]) -> list[np.ndarray]:
    """Raw vectors per file, encoded batch by batch as `Embedder` does (stack, cast, forward)."""
    vectors: list[np.ndarray] = [np.empty(0)] * len(tensors)
    for batch in batches:
        tower = towers[batch[0]]
        x = torch.stack([tensors[n] for n in batch]).to(torch.bfloat16)
        with torch.inference_mode():
            out = model({tower: x})[tower].float().numpy()
        for n, vector in zip(batch, out):
            vectors[n] = vector
    return vectors


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds, the model's forward calls, raw vectors in file order."""

    seconds: float
    forwards: list[Forward]
    vectors: list[np.ndarray]


def run_sequential(inputs: list[Input], model: torch.nn.Module,
                   batch_size: int) -> tuple[float, Run, list[torch.Tensor]]:
    """Load every file, then encode them in the Embedder's batches: (load s, encode, tensors)."""
    from bindcli.media import load

    start = time.perf_counter()
    tensors = [load(inp.source, inp.kind) for inp in inputs]
    load_s = time.perf_counter() - start
    towers = [inp.kind.tower for inp in inputs]
    batches = plan_batches(towers, tensors, batch_size)
    with recording_forwards() as calls:
        start = time.perf_counter()
        vectors = encode(model, towers, tensors, batches)
        encoded = Run(time.perf_counter() - start, calls, vectors)
    return load_s, encoded, tensors


def run_pipeline(embedder: Embedder, inputs: list[Input]) -> Run:
    """`Embedder.embed` on the files, as `bind embed` runs it."""
    with recording_forwards() as calls:
        start = time.perf_counter()
        vectors = [result.raw for result in embedder.embed(inputs)]
        return Run(time.perf_counter() - start, calls, vectors)


def check(encoded: Run, piped: Run) -> float:
    """The pipeline ran the planned batches and got the same vectors; the lowest cosine."""
    planned, ran = ([f.shapes for f in run.forwards] for run in (encoded, piped))
    if ran != planned:
        raise SystemExit(f"the Embedder's batches differ from the plan: {ran} vs {planned}")
    cosines = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in zip(piped.vectors, encoded.vectors)]
    if min(cosines) <= COSINE_MIN:
        raise SystemExit(f"Embedder vs encode-only vectors: min cosine {min(cosines):.6f}")
    return min(cosines)


def describe_batches(forwards: list[Forward], labels: dict[tuple[int, ...], str]) -> str:
    """e.g. `images: 24 files -> 3 batches of 8`, per kind of input."""
    sizes: dict[str, list[int]] = {}
    for call in forwards:
        for _, shape in call.shapes:
            sizes.setdefault(labels[shape[1:]], []).append(shape[0])
    parts = []
    for label, found in sizes.items():
        counts = Counter(found)
        shown = " + ".join(f"{c} batch{'es' if c > 1 else ''} of {s}" for s, c in counts.items())
        files = sum(found)
        parts.append(f"{label}: {files} file{'s' if files > 1 else ''} -> {shown}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--audio", type=int, default=16)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    loads: list[float] = []
    encodes: list[Run] = []
    pipelines: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bind-bench-pipeline-") as tmp:
        start = time.perf_counter()
        paths = write_media(Path(tmp), args.images, args.audio, args.videos)
        inputs = [Input.file(p) for p in paths]
        weights = Path(tmp) / "vision_audio_bf16.pth"
        write_checkpoint(weights)
        print(f"wrote {len(inputs)} files and the checkpoint in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        embedder = Embedder(load_config("imagebind_huge"), weights, place("cpu", DTYPE),
                            batch_size=args.batch_size)
        model = load_model("imagebind_huge", weights, TOWERS, dtype=DTYPE)
        print(f"machine: {describe()}; torch {torch.__version__}; threads "
              f"{torch.get_num_threads()}; dtype {DTYPE}; batch size {args.batch_size}; "
              f"{embedder.workers} loader workers", flush=True)

        firsts = list({inp.kind: inp for inp in inputs}.values())  # one of each kind
        run_sequential(firsts, model, 1)  # warm-up: weights paged in, first-call allocations
        run_pipeline(embedder, firsts)
        for repeat in range(args.repeats):
            pipeline_first = repeat % 2 == 1  # alternate, so that order favours neither
            if pipeline_first:
                pipelines.append(run_pipeline(embedder, inputs))
            load_s, encoded, tensors = run_sequential(inputs, model, args.batch_size)
            loads.append(load_s)
            encodes.append(encoded)
            if not pipeline_first:
                pipelines.append(run_pipeline(embedder, inputs))
            cosine = check(encodes[-1], pipelines[-1])
            print(f"run {repeat + 1}: load {load_s:.2f} s, encode {encoded.seconds:.2f} s, "
                  f"pipeline {pipelines[-1].seconds:.2f} s; min cosine {cosine:.6f}", flush=True)

    kinds = {"image": "images", "audio": "audio", "video": "videos"}
    labels = {tuple(t.shape): kinds[inp.kind.value] for t, inp in zip(tensors, inputs)}
    print(f"files in order (i image, a audio, v video): "
          f"{''.join(inp.kind.value[0] for inp in inputs)}")
    print(f"batches the Embedder ran: {describe_batches(pipelines[-1].forwards, labels)} "
          f"(as planned)")
    load_s = statistics.median(loads)
    encode_s, pipeline_s = (statistics.median(r.seconds for r in rs) for rs in (encodes, pipelines))
    fwd_encode, fwd_pipeline = (statistics.median(sum(f.seconds for f in r.forwards) for r in rs)
                                for rs in (encodes, pipelines))
    sequential = load_s + encode_s
    print(f"median of {args.repeats}:")
    print("| figure | seconds | x sequential |")
    print("|---|---|---|")
    for name, seconds in (("load only (sequential decode)", load_s), ("encode only", encode_s),
                          ("sequential: load + encode (baseline)", sequential),
                          ("pipeline: Embedder.embed", pipeline_s)):
        print(f"| {name} | {seconds:.2f} | {seconds / sequential:.2f} |")
    print(f"decoding hidden: (load + encode - pipeline) / load = "
          f"{(sequential - pipeline_s) / load_s:.0%}")
    print(f"time in forward calls: encode only {fwd_encode:.2f} s, pipeline {fwd_pipeline:.2f} s "
          f"({fwd_pipeline / fwd_encode:.2f}x); pipeline outside forward calls "
          f"{pipeline_s - fwd_pipeline:.2f} s (load only {load_s:.2f} s)")


if __name__ == "__main__":
    main()
