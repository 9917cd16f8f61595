"""Building models: from a config name or file, with random or checkpoint weights."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from bindcli.model.adapter import Adapter
from bindcli.model.checkpoint import check_state_dict, read_state_dict
from bindcli.model.config import ModelConfig, load_config
from bindcli.model.imagebind import ImageBind, normalize_modalities
from bindcli.model.placement import Precision
from bindcli.model.quantize import quantize_int8, unavailable_reason


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """A torch dtype from a precision name (`fp32`, `bf16`, `fp16`), a torch dtype name
    (`float32`, `bfloat16`, `float16`) or a dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype.lower()
    for precision in Precision.explicit():
        if not precision.quantized and name in (precision.value, str(precision.dtype).removeprefix("torch.")):
            return precision.dtype
    names = ", ".join(p.value for p in Precision.explicit() if not p.quantized)
    hint = " (int8 is not a dtype: load_model(..., int8=True))" if name == "int8" else ""
    raise ValueError(f"unknown dtype {dtype!r}; use one of {names}{hint}")


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
    int8: bool = False,
    adapter: Adapter | None = None,
) -> ImageBind:
    """ImageBind with the towers in `modalities` (all if None), weights from `weights`.

    The model is built on the meta device and the checkpoint's tensors are assigned into it,
    so memory holds one copy of the needed towers, never a random init next to the weights.
    A checkpoint whose keys or shapes do not match the config is refused before any of it is
    used. Without `weights`, the model is randomly initialised.

    `int8` (CPU, fp32 only) quantises the transformer blocks' linear layers after loading
    (`quantize.quantize_int8`); the checkpoint is read as it is. An `adapter` (`bind tune`)
    is merged into its tower's weights before that (`tuning.merge_adapter`).
    """
    device = torch.device(device or "cpu")
    dtype = resolve_dtype(dtype)
    if int8:
        _check_int8(device, dtype)
    cfg = load_config(config)
    towers = normalize_modalities(modalities)
    if weights is None:
        model = create_model(cfg, towers, device, dtype)
        return _finish(model, adapter, int8)
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
    return _finish(model.requires_grad_(False).eval(), adapter, int8)


def _finish(model: ImageBind, adapter: Adapter | None, int8: bool) -> ImageBind:
    if adapter is not None:
        from bindcli.model.tuning import merge_adapter

        merge_adapter(model, adapter)
    return quantize_int8(model) if int8 else model


def _check_int8(device: torch.device, dtype: torch.dtype) -> None:
    if device.type != "cpu" or dtype != torch.float32:
        raise ValueError(f"int8 runs on the CPU from fp32 weights, not {device}/{dtype}")
    reason = unavailable_reason()
    if reason:
        raise ValueError(f"int8 is not available: {reason}")
