"""Building models: from a config name or file, with random or checkpoint weights."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from bindcli.model.checkpoint import check_state_dict, read_state_dict
from bindcli.model.config import ModelConfig, load_config
from bindcli.model.imagebind import ImageBind, normalize_modalities
from bindcli.placement import Precision


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """A torch dtype from a precision name (`fp32`, `bf16`, `fp16`), a torch dtype name
    (`float32`, `bfloat16`, `float16`) or a dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype.lower()
    for precision in Precision.explicit():
        if name in (precision.value, str(precision.dtype).removeprefix("torch.")):
            return precision.dtype
    names = ", ".join(p.value for p in Precision.explicit())
    raise ValueError(f"unknown dtype {dtype!r}; use one of {names}")


def create_model(
    config: str | Path | ModelConfig = "imagebind_huge",
    modalities: Iterable[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
) -> ImageBind:
    """A randomly initialised model (tests, benchmarks, training from scratch)."""
    model = ImageBind(load_config(config), modalities)
    return model.to(device=device, dtype=resolve_dtype(dtype)).requires_grad_(False).eval()


def load_model(
    config: str | Path | ModelConfig = "imagebind_huge",
    weights: str | Path | None = None,
    modalities: Iterable[str] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> ImageBind:
    """ImageBind with the towers in `modalities` (all if None), weights from `weights`.

    The model is built on the meta device and the checkpoint's tensors are assigned into it,
    so memory holds one copy of the needed towers, never a random init next to the weights.
    A checkpoint whose keys or shapes do not match the config is refused before any of it is
    used. Without `weights`, the model is randomly initialised.
    """
    device = torch.device(device or "cpu")
    dtype = resolve_dtype(dtype)
    cfg = load_config(config)
    towers = normalize_modalities(modalities)
    if weights is None:
        return create_model(cfg, towers, device, dtype)
    with torch.device("meta"):
        model = ImageBind(cfg, towers)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    state = read_state_dict(weights, towers)
    check_state_dict(expected, state, weights)
    state = {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
        for k, v in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    return model.requires_grad_(False).eval()
