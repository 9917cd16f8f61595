"""A task the small random model gets at chance: small images told apart only by the
orientation of their stripes (random period, phase, colour and noise), as class folders
`rows` (horizontal stripes) and `columns` (vertical ones); with these names the base model
puts every image in one class (named `horizontal` and `vertical`, it happens to get 0.8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("rows", "columns")


def stripes(root: Path, per_class: int, seed: int) -> Path:
    """`root/rows/*.png` and `root/columns/*.png`, `per_class` each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in CLASSES:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            period = int(rng.integers(4, 9))
            bands = (np.arange(32) + int(rng.integers(0, period))) // (period // 2) % 2
            pattern = np.tile(bands[:, None], (1, 32)) if name == "rows" else np.tile(bands[None, :], (32, 1))
            pixels = pattern[..., None] * rng.uniform(0.3, 1, 3) * 200 + rng.normal(0, 20, (32, 32, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03}.png")
    return root
