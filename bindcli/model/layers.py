"""The transformer trunk every tower shares: pre-norm blocks over fused attention.

Parameter names follow `torch.nn.MultiheadAttention` and upstream's block, so the official
checkpoint loads unchanged; the computation goes through `scaled_dot_product_attention`,
which dispatches to fused kernels on CPU and GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        if add_bias_kv:
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(dim, dim=-1)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(batch, 1, dim)], dim=1)
            v = torch.cat([v, self.bias_v.expand(batch, 1, dim)], dim=1)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm residual block; no layer scale, and drop-path is a no-op at inference."""

    def __init__(self, dim: int, num_heads: int, add_bias_kv: bool, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, add_bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), causal=causal)
        return x + self.mlp(self.norm_2(x))


class Transformer(nn.Module):
    """A stack of blocks, with the LayerNorm the vision trunk applies before them."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_transformer_layer(x)
        for block in self.blocks:
            x = block(x, causal=self.causal)
        return x
