"""Upstream ImageBind (the speed baseline) and a bind model holding the very same weights.

Upstream's code comes from `.bench/site` (see `setup_baseline.sh`), put on `sys.path` only
inside the benchmark process. Its package `__init__` imports the data loaders (pytorchvideo,
decord), which the model does not need, so the package is registered without running it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

SITE = Path(__file__).resolve().parent.parent / ".bench" / "site"


def upstream_module() -> types.ModuleType:
    """`imagebind.models.imagebind_model` from the benchmark site, without `imagebind.data`."""
    if not (SITE / "imagebind").is_dir():
        raise SystemExit(f"upstream baseline missing: run benchmarks/setup_baseline.sh ({SITE})")
    if str(SITE) not in sys.path:
        sys.path.append(str(SITE))
    if "imagebind" not in sys.modules:
        package = types.ModuleType("imagebind")
        package.__path__ = [str(SITE / "imagebind")]
        sys.modules["imagebind"] = package
    from imagebind.models import imagebind_model

    return imagebind_model


def build_upstream() -> torch.nn.Module:
    """Upstream's `imagebind_huge` with seeded random weights: all six towers, ~4.8 GB fp32."""
    torch.manual_seed(0)
    return upstream_module().imagebind_huge(pretrained=False).eval().requires_grad_(False)


def ours_like(upstream: torch.nn.Module, modality: str, dtype: torch.dtype = torch.float32):
    """bind's huge model with only `modality`'s tower, holding upstream's weights.

    The copy is `strict=True`, which also proves the key layouts agree.
    """
    from bindcli.model.factory import create_model

    ours = create_model("imagebind_huge", [modality])
    prefix = (
        "modality_preprocessors.",
        "modality_trunks.",
        "modality_heads.",
        "modality_postprocessors.",
    )
    state = {
        k: v
        for k, v in upstream.state_dict().items()
        if k.startswith(prefix) and k.split(".")[1] == modality
    }
    ours.load_state_dict(state, strict=True)
    return ours.to(dtype)
