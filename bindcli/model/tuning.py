"""What an adapter changes in a tower, for training and for use.

`--method head`: a (out, out) map M on the tower's output, initialised to the identity; the
head's projection W becomes M W. `--method lora`: low-rank updates W + B A of the last K
blocks' attention (input and output projections) and MLP (both layers); B starts at zero, so
a fresh adapter changes nothing. For training the updates are parametrizations (the weights
are recomputed from the frozen ones and the trainable factors on each forward); for use they
are merged into the weights once, so a tuned tower runs exactly as fast as the base one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from bindcli._util.atomic import atomic_path
from bindcli.errors import UsageError
from bindcli.model.adapter import METADATA_KEY, Adapter, AdapterHeader

#: the linear layers of a block that lora updates, by their path in the block
LORA_TARGETS = (("attn", "in_proj_weight"), ("attn.out_proj", "weight"), ("mlp.fc1", "weight"), ("mlp.fc2", "weight"))


def head_projection(model: nn.Module, tower: str) -> nn.Linear:
    """The tower's last linear layer: what the head's map multiplies."""
    linears = [m for m in model.modality_heads[tower].modules() if isinstance(m, nn.Linear)]
    return linears[-1]


def lora_targets(model: nn.Module, tower: str, blocks: int) -> list[tuple[str, nn.Module, str]]:
    """(tensor name prefix, module, parameter name) of each weight lora updates in the tower's
    last `blocks` blocks."""
    trunk = model.modality_trunks[tower].blocks
    if not 1 <= blocks <= len(trunk):
        raise UsageError(f"--blocks {blocks}: the {tower} tower has {len(trunk)} blocks")
    found = []
    for index in range(len(trunk) - blocks, len(trunk)):
        for path, name in LORA_TARGETS:
            module = trunk[index].get_submodule(path)
            found.append((f"lora.{index}.{path}", module, name))
    return found


class LowRank(nn.Module):
    """The parametrization W -> W + B A."""

    def __init__(self, rows: int, cols: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(rank, cols, generator=generator) / cols**0.5)
        self.b = nn.Parameter(torch.zeros(rows, rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.b @ self.a).to(weight.dtype)


def add_lora(model: nn.Module, tower: str, rank: int, blocks: int, seed: int) -> dict[str, nn.Parameter]:
    """Low-rank updates on the tower's last `blocks` blocks, as trainable parametrizations;
    returns the factors by their adapter tensor name (`<prefix>.a`, `<prefix>.b`)."""
    if rank < 1:
        raise UsageError(f"--rank {rank}: give a rank of 1 or more")
    generator = torch.Generator().manual_seed(seed)
    params: dict[str, nn.Parameter] = {}
    for prefix, module, name in lora_targets(model, tower, blocks):
        weight = getattr(module, name)
        update = LowRank(weight.shape[0], weight.shape[1], rank, generator).to(weight.device)
        parametrize.register_parametrization(module, name, update)
        params[f"{prefix}.a"], params[f"{prefix}.b"] = update.a, update.b
    return params


def identity_map(dim: int) -> nn.Parameter:
    """The head method's trainable map, at the identity."""
    return nn.Parameter(torch.eye(dim))


def save_adapter(path: str | Path, tensors: Mapping[str, torch.Tensor], header: AdapterHeader) -> None:
    """Write the adapter file atomically: the tensors (fp32) and the header as metadata."""
    from safetensors.torch import save_file

    data = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(data, str(tmp), metadata={METADATA_KEY: header.to_json()})


def read_tensors(adapter: Adapter) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter.path))


@torch.no_grad()
def merge_adapter(model: nn.Module, adapter: Adapter) -> None:
    """Put the adapter's changes into the model's weights (its tuned tower must be built).
    The sums are formed in fp32 and stored at the weights' own dtype."""
    header, tensors = adapter.header, read_tensors(adapter)
    if header.tower not in model.modality_trunks:
        return  # the tuned tower is not loaded: nothing this model computes changes
    if header.method == "head":
        linear = head_projection(model, header.tower)
        tuned = tensors.get("head.map")
        if tuned is None or tuned.shape != (linear.weight.shape[0],) * 2:
            raise UsageError(f"{adapter.path}: its head map does not fit the {header.tower} tower")
        linear.weight.copy_((tuned @ linear.weight.float()).to(linear.weight.dtype))
        return
    for prefix, module, name in lora_targets(model, header.tower, header.blocks):
        weight = getattr(module, name)
        a, b = tensors.get(f"{prefix}.a"), tensors.get(f"{prefix}.b")
        if a is None or b is None or (b.shape[0], a.shape[1]) != tuple(weight.shape):
            raise UsageError(f"{adapter.path}: its {prefix} update does not fit the {header.tower} tower")
        delta = b.to(weight.device) @ a.to(weight.device)
        weight.copy_((weight.float() + delta).to(weight.dtype))
