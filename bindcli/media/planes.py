"""Single-channel float maps (depth, thermal) resized and cropped like upstream's image path.

Short side to 224 with Pillow bicubic (antialiased, on 32-bit float pixels so no precision is
lost to 8 bits), then a 224 centre crop with rounded offsets: the geometry of upstream's
image transform.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from bindcli.media.image import SIZE

_GEOMETRY = transforms.Compose(
    [
        transforms.Resize(SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(SIZE),
    ]
)


def resize_crop(plane: np.ndarray) -> torch.Tensor:
    """(1, 224, 224) float32 from an (H, W) array."""
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return torch.from_numpy(np.array(_GEOMETRY(img), dtype=np.float32)).unsqueeze(0)
