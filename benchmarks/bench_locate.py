"""What `bind locate` costs an image on imagebind_huge: windows per image, seconds per image.

Windows: the default grid for common image sizes, plus the refinement's upper bound (the best
`REFINE_TOP` boxes, `REFINE_ROUNDS` rounds of 10 moves each). Seconds: the vision tower of
imagebind_huge with random weights (speed does not depend on the weights), in `--precision`,
encoding batches of cut-out regions of a 640x480 photo-sized image as `locate` cuts them
(crop + `vision_tensor`, timed apart), after one warm-up batch; per image = windows x per
window. `--full` also times one whole `locate` call on that image (minutes on a CPU).

Run: .venv/bin/python benchmarks/bench_locate.py [--batches 3] [--batch-size 8]
     [--precision bf16] [--device cpu] [--full]        (about 2 min on 2 CPUs)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bindcli.embed.encoder import LocalEncoder
from bindcli.locate import REFINE_ROUNDS, grid, locate, region
from bindcli.media.image import vision_tensor
from bindcli.model.config import load_config
from bindcli.model.factory import create_model
from bindcli.model.placement import place
from bindcli.embed.embedder import Embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

SIZES = ((640, 480), (1920, 1080), (4032, 3024))
REFINE_TOP = 3  # locate's default refine_top


class RandomHuge(LocalEncoder):
    """LocalEncoder over a randomly initialised vision tower instead of a checkpoint."""

    def __init__(self, precision: str, device: str) -> None:
        config = load_config("imagebind_huge")
        super().__init__(config, Path("random"), place(device, precision))
        self._model = create_model(config, ["vision"], device=device, dtype=self.placement.dtype)
        self._towers = frozenset({"vision"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    print(f"machine: {describe()}", f"; torch threads {torch.get_num_threads()}")
    refine = REFINE_TOP * REFINE_ROUNDS * 10
    for w, h in SIZES:
        print(f"{w}x{h}: {len(grid(w, h))} grid windows + at most {refine} refinement windows")
    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    boxes = grid(640, 480)
    encoder = RandomHuge(args.precision, args.device)
    n = args.batch_size
    started = time.perf_counter()
    tensors = [vision_tensor(region(img, b)) for b in boxes[: n * (args.batches + 1)]]
    cut = (time.perf_counter() - started) / len(tensors)
    encoder.encode("vision", tensors[:n])  # warm-up
    started = time.perf_counter()
    for i in range(1, args.batches + 1):
        encoder.encode("vision", tensors[i * n : (i + 1) * n])
    per_window = (time.perf_counter() - started) / (args.batches * n) + cut
    print(f"imagebind_huge vision, {args.precision} on {args.device}, batch {n}: "
          f"{per_window * 1000:.0f} ms per window ({cut * 1000:.1f} ms of it cutting and "
          f"transforming)")
    windows = len(boxes)
    print(f"640x480: {windows} + <={refine} windows -> about {windows * per_window:.0f}-"
          f"{(windows + refine) * per_window:.0f} s per image")
    if args.full:
        embedder = Embedder(encoder.config, Path("random"), encoder.placement, batch_size=n,
                            encoder=encoder, known_id="random")
        started = time.perf_counter()
        found = locate(embedder, img, np.ones(1024, np.float32))
        print(f"one whole locate: {found.windows} windows in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
