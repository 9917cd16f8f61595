"""The transformer trunk every tower shares: pre-norm blocks over fused attention.

Parameter names follow `torch.nn.MultiheadAttention` and upstream's block, so the official
checkpoint loads unchanged; the computation goes through `scaled_dot_product_attention`,
which dispatches to fused kernels on CPU and GPU, and the linear layers apply their GELU and
residual add without extra (rows x width) tensors (`linear`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: this torch build has oneDNN's fused linear (x86 and aarch64 wheels do)
_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(
    torch.ops.mkldnn, "_linear_pointwise"
)
#: fp32 rows (batch x tokens) up to which oneDNN's GEMM beats MKL's; MKL wins above
_ONEDNN_FP32_MAX_ROWS = 256


def _needs_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


def _plain_ops_only(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Autograd and autocast (training, `bind tune`) know only the plain ops: no fused or
    in-place kernels then."""
    return _needs_grad(x, weight) or torch.is_autocast_enabled(x.device.type)


def _use_onednn(x: torch.Tensor) -> bool:
    if not (_HAS_ONEDNN_LINEAR and x.device.type == "cpu"):
        return False
    if x.dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return x.dtype == torch.float32 and x.numel() <= _ONEDNN_FP32_MAX_ROWS * x.shape[-1]


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    gelu: bool = False,
    residual: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, then GELU or `+ residual`, in as few memory passes as the
    device allows; use the returned tensor.

    `out` offers storage for the result: a contiguous (rows, out_features) tensor, or
    `residual` itself to accumulate into it. It is used where no gradient is needed and the
    kernel can write there (MKL/cuBLAS GEMMs; GELU in place on CPU), and ignored by oneDNN.
    On CPU, oneDNN's linear with the bias and GELU or the residual add fused in is 10-20%
    faster in bf16 and for few-row fp32 batches (short text prompts), while MKL's GEMM stays
    faster for many rows in fp32 (measured on a 2-core AMX Xeon). The results agree with the
    plain ops to rounding. An int8 weight (`quantize.Int8Weight`) runs its own kernel.
    """
    if not isinstance(weight, torch.Tensor):
        return weight.linear(x, bias, gelu=gelu, residual=residual, out=out)
    if not Linear.fused or _plain_ops_only(x, weight):
        result = F.linear(x, weight, bias)
        result = F.gelu(result) if gelu else result
        return result if residual is None else residual + result
    if _use_onednn(x):
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, bias, "add")
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    rows = x.reshape(-1, x.shape[-1])
    if residual is not None:
        if out is residual and residual.is_contiguous():  # += x W^T + bias in place
            residual.view(rows.shape[0], -1).addmm_(rows, weight.t())
            return residual if bias is None else residual.add_(bias)
        result = F.linear(x, weight, bias)
        result += residual
        return result
    shape = (*x.shape[:-1], weight.shape[0])
    if bias is None:
        result = torch.mm(rows, weight.t(), out=out)
    elif gelu and x.device.type == "cpu":  # GELU in place (on CUDA this op is the tanh form)
        return torch._addmm_activation(bias, rows, weight.t(), use_gelu=True, out=out).view(shape)
    else:
        result = torch.addmm(bias, rows, weight.t(), out=out)
    return (F.gelu(result) if gelu else result).view(shape)


class Linear(nn.Linear):
    """`nn.Linear` through `linear` (fused kernels on CPU).

    `fused = False` runs the plain aten ops everywhere (the tests compare both paths).
    """

    fused: bool = True

    def forward(
        self,
        x: torch.Tensor,
        *,
        gelu: bool = False,
        residual: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return linear(x, self.weight, self.bias, gelu=gelu, residual=residual, out=out)


class Scratch:
    """Output buffers that the blocks of one forward pass (without autograd) share.

    A block's largest tensors are its (rows x 3*dim) input projection and (rows x 4*dim)
    MLP activation. Allocated afresh in every block, they come back from the allocator as
    new pages that the kernel faults in and zeroes, ~9% of a ViT-H fp32 forward on CPU;
    written into the same two buffers instead, that cost is paid once per forward.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        """A (rows, cols) tensor of `like`'s dtype and device, contents undefined."""
        size = rows * cols
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.numel() < size
            or (buffer.dtype, buffer.device) != (like.dtype, like.device)
        ):
            buffer = self._buffers[name] = torch.empty(size, dtype=like.dtype, device=like.device)
        return buffer[:size].view(rows, cols)


class Attention(nn.Module):
    """Multi-head self-attention with upstream's optional learned extra key/value.

    With `add_bias_kv`, one learned key and one learned value are appended after the input
    projection (they are not projected), so keys/values are one position longer than queries.
    """

    def __init__(self, dim: int, num_heads: int, add_bias_kv: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.out_proj = Linear(dim, dim)

    def init_weights(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        if self.bias_k is not None:
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    def forward(
        self,
        x: torch.Tensor,
        causal: bool = False,
        residual: torch.Tensor | None = None,
        query_index: torch.Tensor | None = None,
        scratch: Scratch | None = None,
    ) -> torch.Tensor:
        """Attention of x over itself, plus `residual` when given (added in the out projection).

        With `query_index` (one token position per row), only that token attends (over all
        keys), and the output has one position per row. With `scratch`, the projections are
        written into its buffers and the result is accumulated into `residual` in place.
        """
        batch, length, dim = x.shape
        weight, bias = self.in_proj_weight, self.in_proj_bias
        mask = None
        if query_index is None:
            projected = scratch.take("qkv", batch * length, 3 * dim, x) if scratch else None
            q, k, v = linear(x, weight, bias, out=projected).split(dim, dim=-1)
        else:
            rows = torch.arange(batch, device=x.device)
            q = linear(x[rows, query_index].unsqueeze(1), weight[:dim], bias[:dim])
            projected = scratch.take("qkv", batch * length, 2 * dim, x) if scratch else None
            k, v = linear(x, weight[dim:], bias[dim:], out=projected).split(dim, dim=-1)
            if causal:  # the query sits at query_index, not at position 0
                mask = torch.arange(length, device=x.device) <= query_index[:, None, None, None]
                causal = False
            length = 1
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(batch, 1, dim)], dim=1)
            v = torch.cat([v, self.bias_v.expand(batch, 1, dim)], dim=1)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(attended, residual=residual, out=residual if scratch else None)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None = None,
        scratch: Scratch | None = None,
    ) -> torch.Tensor:
        """fc2(GELU(fc1(x))) + residual; with `scratch`, accumulated into `residual` in place."""
        rows = x.numel() // x.shape[-1]
        hidden = scratch.take("mlp", rows, self.fc1.out_features, x) if scratch else None
        hidden = self.fc1(x, gelu=True, out=hidden)
        return self.fc2(hidden, residual=residual, out=residual if scratch else None)


class Block(nn.Module):
    """Pre-norm residual block; no layer scale, and drop-path is a no-op at inference."""

    def __init__(self, dim: int, num_heads: int, add_bias_kv: bool, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, add_bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(
        self,
        x: torch.Tensor,
        causal: bool = False,
        query_index: torch.Tensor | None = None,
        scratch: Scratch | None = None,
    ) -> torch.Tensor:
        """All tokens updated, or with `query_index` only that token per row (B, 1, D).

        With `scratch` (no autograd), x is updated in place: pass a tensor you own.
        """
        h = self.norm_1(x)
        if query_index is not None:
            x = x[torch.arange(x.shape[0], device=x.device), query_index].unsqueeze(1)
        x = self.attn(h, causal=causal, residual=x, query_index=query_index, scratch=scratch)
        return self.mlp(self.norm_2(x), residual=x, scratch=scratch)


class Transformer(nn.Module):
    """A stack of blocks, with the LayerNorm the vision trunk applies before them.

    Every tower's head reads one token (CLS, or text's end-of-text), so the last block only
    needs to update that token: its queries, attention output and MLP run on one position
    instead of all (`last_block_selected_only`; exact, since each token's update depends
    on the others only through the keys and values, which are still computed for all).
    Without autograd, the blocks share output buffers and update the tokens in place
    (`reuse_buffers`, see `Scratch`).
    """

    last_block_selected_only: bool = True
    reuse_buffers: bool = True
    #: while training (`bind tune --checkpointing`): recompute each block's activations in
    #: the backward pass instead of holding them
    checkpointing: bool = False

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        add_bias_kv: bool,
        pre_norm: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        if pre_norm:  # a Sequential so the key reads `pre_transformer_layer.0.weight`
            self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=1e-6))
        else:
            self.pre_transformer_layer = nn.Identity()
        self.blocks = nn.ModuleList(Block(dim, num_heads, add_bias_kv) for _ in range(depth))

    def forward(self, x: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        """All tokens (B, L, D); with `select` (a position per row), that token's (B, D)."""
        inputs = x
        x = self.pre_transformer_layer(x)
        scratch = None
        autocast = torch.is_autocast_enabled(x.device.type)  # out= would bypass it
        if self.reuse_buffers and not torch.is_grad_enabled() and not autocast:
            scratch = Scratch()
            if x is inputs:  # the blocks update x in place; the caller's tensor stays as it was
                x = x.clone(memory_format=torch.contiguous_format)
        blocks = list(self.blocks)
        last = blocks.pop() if select is not None and self.last_block_selected_only else None
        for block in blocks:
            if self.checkpointing and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(block, x, self.causal, use_reentrant=False)
            else:
                x = block(x, causal=self.causal, scratch=scratch)
        if select is None:
            return x
        if last is None:
            return x[torch.arange(x.shape[0], device=x.device), select]
        return last(x, causal=self.causal, query_index=select, scratch=scratch).squeeze(1)
