"""int8 transformer trunks for CPUs without fast bf16 (`--precision int8`).

After the fp32 weights are loaded, every linear layer of the towers' transformer blocks gets
its weight as int8 (one scale per output channel) and runs as oneDNN's int8 linear
(`onednn::qlinear_pointwise`), its activations quantised to uint8 per call (one scale per
call, from the input's range), with the bias, GELU or residual add fused and fp32 output.
Everything else (patch embeddings, norms, attention, heads) stays fp32.

Why this route (measured, see benchmarks/README.md): on ViT-H shapes it was 1.5-1.6x fp32
per layer with AVX2 only and 3-4x with AMX. `torch.ao.quantization.quantize_dynamic`
(fbgemm) was as fast with AVX2 but slower with AMX, is deprecated, and builds on
quantized tensors that torch is removing; torchao's int8 configs run eagerly as
`torch._int_mm` plus separate quantise/rescale passes, 0.6-1.1x fp32 without torch.compile.
"""

from __future__ import annotations

import functools
import threading

import torch
from torch import nn

from bindcli.model.layers import Attention, Linear, Transformer


@functools.cache
def unavailable_reason() -> str | None:
    """Why int8 cannot run with this torch build, or None when it can."""
    if not torch.backends.mkldnn.is_available():
        return f"this torch {torch.__version__} is built without oneDNN"
    if not hasattr(torch.ops.onednn, "qlinear_pointwise"):
        return f"this torch {torch.__version__} has no oneDNN int8 linear"
    try:
        Int8Weight(torch.ones(8, 8)).linear(torch.ones(2, 8), None)
    except RuntimeError as exc:
        return f"oneDNN's int8 linear fails on this machine ({str(exc).splitlines()[0]})"
    return None


@functools.cache
def activation_levels() -> int:
    """255 where the CPU multiplies int8 in 32 bits; 127 (7-bit activations) elsewhere.

    Without VNNI, x86 int8 kernels sum pairs of u8 x s8 products in 16 bits
    (`vpmaddubsw`), which saturates above 32767 for full-range activations; with 7 bits it
    cannot (fbgemm makes the same choice, `reduce_range`). Read from torch's dispatch level
    (lowered by `ATEN_CPU_CAPABILITY`) and its VNNI flag.
    """
    avx512 = torch.backends.cpu.get_cpu_capability() == "AVX512"
    vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)()  # private, may go
    return 255 if avx512 and vnni else 127


class Int8Weight:
    """A linear layer's weight as int8 with a scale per output row, packed for oneDNN.

    With `sliceable`, rows can be sliced (`weight[:dim]`, as the attention's query-only path
    does): the plain int8 copy is kept for that, and each slice is packed on first use and
    kept. Otherwise only the packed copy stays.
    """

    def __init__(self, weight: torch.Tensor, *, sliceable: bool = False) -> None:
        weight = weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        self._set(torch.round(weight / scale[:, None]).to(torch.int8), scale, sliceable)

    def _set(self, int8: torch.Tensor, scale: torch.Tensor, sliceable: bool) -> None:
        self.scale = scale
        self.shape = int8.shape
        self._packed = torch.ops.onednn.qlinear_prepack(int8, None)
        self._int8 = int8 if sliceable else None
        self._zero_points = torch.zeros(self.shape[0], dtype=torch.long)
        self._rows: dict[tuple[int, int], Int8Weight] = {}

    def __getitem__(self, rows: slice) -> "Int8Weight":
        start, stop, step = rows.indices(self.shape[0])
        if self._int8 is None or step != 1:
            raise TypeError("rows of this Int8Weight cannot be sliced (made without sliceable)")
        if (start, stop) not in self._rows:
            part = Int8Weight.__new__(Int8Weight)
            part._set(self._int8[start:stop], self.scale[start:stop], sliceable=False)
            self._rows[start, stop] = part
        return self._rows[start, stop]

    def linear(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        gelu: bool = False,
        residual: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`layers.linear`'s contract: with `out is residual`, accumulated into it in place."""
        shape = (*x.shape[:-1], self.shape[0])
        rows = x.reshape(-1, x.shape[-1])
        q, scale, zero = _quantize(rows)
        args = (q, scale, zero, self._packed, self.scale, self._zero_points)
        if residual is not None:
            in_place = out is residual and residual.is_contiguous()
            other = residual.reshape(rows.shape[0], -1)
            result = torch.ops.onednn.qlinear_pointwise.binary(
                *args, other, bias, 1.0, 0, torch.float32, 1.0, 0,
                "sum" if in_place else "add", 1.0, "none", [], "",
            )
            return residual if in_place else result.view(shape)
        post = ("gelu", [], "none") if gelu else ("none", [], "")
        return torch.ops.onednn.qlinear_pointwise(*args, bias, 1.0, 0, torch.float32, *post).view(shape)


class _Workspace(threading.local):
    """The buffers activations are quantised through, kept per thread between calls: a fresh
    (rows x width) tensor per layer costs its page faults every time (see `layers.Scratch`)."""

    def __init__(self) -> None:
        self.scaled = torch.empty(0)
        self.codes = torch.empty(0, dtype=torch.uint8)

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = rows.numel()
        if self.scaled.numel() < n:
            with torch.inference_mode(False):  # usable in and out of inference mode
                self.scaled = torch.empty(n)
                self.codes = torch.empty(n, dtype=torch.uint8)
        return self.scaled[:n].view(rows.shape), self.codes[:n].view(rows.shape)


_workspace = _Workspace()


def _quantize(rows: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """uint8 codes of `rows`, with the scale and zero point of its range (0 included).

    The codes live in a buffer that the next call on this thread overwrites.
    """
    lo, hi = (float(v) for v in torch.aminmax(rows))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = activation_levels()
    # the scale a hair wide, so x / scale + zero + 0.5 stays below levels + 1: the cast's
    # truncation then rounds to 0..levels without a clamp pass
    scale = (hi - lo) / levels * (1 + 1e-6) or 1.0
    zero = round(-lo / scale)
    scaled, codes = _workspace.take(rows)
    torch.add(torch.tensor(zero + 0.5), rows, alpha=1 / scale, out=scaled)
    return codes.copy_(scaled), scale, zero


def quantize_int8(model: nn.Module) -> nn.Module:
    """Give every linear layer of `model`'s transformer blocks an int8 weight, in place.

    The fp32 weights are dropped (a memory-mapped checkpoint is left as it was).
    """
    for trunk in model.modules():
        if not isinstance(trunk, Transformer):
            continue
        for module in trunk.modules():
            if isinstance(module, Attention):
                _swap(module, "in_proj_weight", sliceable=True)
            elif isinstance(module, Linear):
                _swap(module, "weight")
    return model


def _swap(module: nn.Module, name: str, sliceable: bool = False) -> None:
    weight = Int8Weight(getattr(module, name), sliceable=sliceable)
    delattr(module, name)  # a Parameter cannot hold a packed weight
    setattr(module, name, weight)
