"""The parts of each modality's encoder: input stem, trunk, head, postprocessor.

Module and parameter names mirror upstream's so that `imagebind_huge.pth` loads with
`strict=True`: the vision conv sits at `rgbt_stem.proj.1` (after a parameter-free frame
repeat), audio and thermal stems are called `rgbt_stem`, depth's `depth_stem`, the IMU
positional embedding hangs directly off its preprocessor, and heads keep upstream's
Sequential indices (the IMU projection is `.3` because a dropout sits at `.2`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bindcli.model.config import (
    IMAGE_SIZE,
    IMU_CHANNELS,
    IMU_LENGTH,
    TEXT_CONTEXT_LENGTH,
    TEXT_VOCAB_SIZE,
    ModelConfig,
)
from bindcli.model.layers import Transformer

#: upstream clips every logit scale at this value
MAX_LOGIT_SCALE = 100.0
#: upstream's fixed scales; text's is learned (this is only its initial value)
LOGIT_SCALES = {"text": 1 / 0.07, "audio": 20.0, "depth": 5.0, "thermal": 10.0, "imu": 5.0}


def _trunc_normal_(*params: nn.Parameter) -> None:
    for param in params:
        nn.init.trunc_normal_(param, std=0.02)


class RepeatFrames(nn.Module):
    """An image as a clip of identical frames (upstream's PadIm2Video, repeat mode)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            x = x.expand(-1, -1, self.frames, -1, -1)
        return x


class PatchStem(nn.Module):
    """Patchify (conv or linear), flatten to tokens, optional LayerNorm."""

    def __init__(self, proj: nn.Module, norm_layer: nn.Module | None = None) -> None:
        super().__init__()
        self.proj = proj
        if norm_layer is not None:
            self.norm_layer = norm_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if x.ndim > 3:  # conv output (B, D, *grid) -> (B, tokens, D)
            x = x.flatten(2).transpose(1, 2)
        norm = getattr(self, "norm_layer", None)
        return norm(x) if norm is not None else x


class LearnedPositions(nn.Module):
    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, dim))

    def init_weights(self) -> None:
        _trunc_normal_(self.pos_embed)


def _interpolate_grid(pos_embed: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Bicubic resize of a square patch grid of positions (CLS position kept), as upstream."""
    stored = pos_embed.shape[1] - 1
    if stored == num_patches:
        return pos_embed
    side = math.isqrt(stored)
    cls_pos, grid = pos_embed[:, :1], pos_embed[:, 1:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=math.sqrt(num_patches / stored), mode="bicubic")
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, grid], dim=1)


class PatchPreprocessor(nn.Module):
    """Image-like inputs (vision, audio spectrogram, depth, thermal): stem + CLS + positions."""

    def __init__(self, stem_name: str, stem: PatchStem, num_patches: int, dim: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.stem_name = stem_name
        self.add_module(stem_name, stem)
        self.pos_embedding_helper = LearnedPositions(num_patches + 1, dim)

    def init_weights(self) -> None:
        _trunc_normal_(self.cls_token)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.stem_name)(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patchify(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        return tokens + _interpolate_grid(
            self.pos_embedding_helper.pos_embed, tokens.shape[1] - 1
        )


class VisionPreprocessor(PatchPreprocessor):
    """Images and 2-frame clips through one Conv3d stem.

    An image is two identical frames, so the (2,14,14) Conv3d over it equals a Conv2d with
    the kernel summed over time: half the work, same result up to float rounding.
    `fold_image_time = False` runs upstream's literal path (the tests compare both).
    """

    fold_image_time: bool = True

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        conv: nn.Conv3d = self.rgbt_stem.proj[1]
        frames = self.rgbt_stem.proj[0].frames
        if self.fold_image_time and x.ndim == 4 and conv.kernel_size[0] == frames:
            out = F.conv2d(x, conv.weight.sum(dim=2), stride=conv.stride[1:])
            return out.flatten(2).transpose(1, 2)
        return self.rgbt_stem(x)


class TextPreprocessor(nn.Module):
    """Token + position embeddings; the causal mask is kept only because the checkpoint has it.

    The trunk is causal, so tokens after the last end-of-text token cannot change any
    output: `trim_after_eot` drops them (a short prompt runs ~10 tokens, not 77).
    """

    trim_after_eot: bool = True

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, TEXT_CONTEXT_LENGTH, dim))
        # built on the CPU even under a meta-device build: triu on meta costs ~1.5 s of start-up
        mask = torch.full((TEXT_CONTEXT_LENGTH,) * 2, float("-inf"), device="cpu").triu_(1)
        self.register_buffer("mask", mask)
        # given storage, so nn.Embedding skips its own normal_ init (on the meta device that
        # call alone imports torch's Python decompositions: seconds of start-up)
        self.token_embedding = nn.Embedding(
            TEXT_VOCAB_SIZE, dim, _weight=torch.empty(TEXT_VOCAB_SIZE, dim)
        )

    def init_weights(self) -> None:
        nn.init.normal_(self.pos_embed, std=0.01)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.trim_after_eot:
            ids = ids[:, : int(ids.argmax(dim=-1).max()) + 1]
        return self.token_embedding(ids) + self.pos_embed[:, : ids.shape[1]]


class IMUPreprocessor(nn.Module):
    """(B, 6, 2000) -> 250 windows of 8 samples, channel-major features, linear stem."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        num_patches = IMU_LENGTH // kernel
        self.pos_embed = nn.Parameter(torch.empty(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.imu_stem = PatchStem(
            nn.Linear(IMU_CHANNELS * kernel, dim, bias=False), nn.LayerNorm(dim)
        )

    def init_weights(self) -> None:
        _trunc_normal_(self.pos_embed, self.cls_token)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows = x.unfold(-1, self.kernel, self.kernel).permute(0, 2, 1, 3).flatten(2)
        tokens = self.imu_stem(windows)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.pos_embed


class ClsHead(nn.Sequential):
    """LayerNorm -> CLS token -> (dropout) -> projection; fed the CLS token's features.

    LayerNorm acts per token, so the trunk selects the token first (see `Transformer`).
    """

    def __init__(self, dim: int, out_dim: int, dropout: float | None = None) -> None:
        # index 1 is upstream's token selection (no parameters): the trunk selects here
        layers: list[nn.Module] = [nn.LayerNorm(dim, eps=1e-6), nn.Identity()]
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dim, out_dim, bias=False))
        super().__init__(*layers)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        norm, _select, *rest = self
        x = norm(token)
        for layer in rest:
            x = layer(x)
        return x


class EotHead(nn.Module):
    """Text: the end-of-text token's features (selected by the trunk) -> LayerNorm -> projection."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim, bias=False))

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.proj(token)


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class LogitScale(nn.Module):
    """Multiply by exp(log scale), clipped at 100; learnable for text, a buffer otherwise."""

    def __init__(self, scale: float, learnable: bool) -> None:
        super().__init__()
        log_scale = torch.tensor(math.log(scale))
        if learnable:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=MAX_LOGIT_SCALE) * x


class TowerParts(NamedTuple):
    preprocessor: nn.Module
    trunk: Transformer
    head: nn.Module
    postprocessor: nn.Module


def _patch_grid(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> int:
    return math.prod((s - k) // st + 1 for s, k, st in zip(size, kernel, stride))


def build_tower(config: ModelConfig, modality: str) -> TowerParts:
    """The four parts of one modality's encoder, shaped by `config`."""
    dim = getattr(config, f"{modality}_embed_dim")
    depth = getattr(config, f"{modality}_num_blocks")
    heads = getattr(config, f"{modality}_num_heads")
    out = config.out_embed_dim
    trunk = Transformer(
        dim,
        depth,
        heads,
        add_bias_kv=modality not in ("vision", "text"),
        pre_norm=modality == "vision",
        causal=modality == "text",
    )
    postprocessor = nn.Sequential(Normalize())
    if modality != "vision":  # vision embeddings are left unscaled
        postprocessor.append(LogitScale(LOGIT_SCALES[modality], learnable=modality == "text"))

    if modality == "vision":
        kernel = tuple(config.kernel_size)
        conv = nn.Conv3d(3, dim, kernel_size=kernel, stride=kernel, bias=False)
        stem = PatchStem(nn.Sequential(RepeatFrames(config.video_frames), conv))
        size = (config.video_frames, IMAGE_SIZE, IMAGE_SIZE)
        pre: nn.Module = VisionPreprocessor("rgbt_stem", stem, _patch_grid(size, kernel, kernel), dim)
        return TowerParts(pre, trunk, ClsHead(dim, out), postprocessor)
    if modality == "text":
        return TowerParts(TextPreprocessor(dim), trunk, EotHead(dim, out), postprocessor)
    if modality == "imu":
        pre = IMUPreprocessor(dim, config.imu_kernel_size)
        return TowerParts(pre, trunk, ClsHead(dim, out, dropout=0.5), postprocessor)

    if modality == "audio":
        kernel, stride = (config.audio_kernel_size,) * 2, (config.audio_stride,) * 2
        size: tuple[int, ...] = (config.audio_num_mel_bins, config.audio_target_len)
    else:  # depth, thermal
        kernel = stride = (getattr(config, f"{modality}_kernel_size"),) * 2
        size = (IMAGE_SIZE, IMAGE_SIZE)
    conv2d = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride, bias=False)
    stem_name = "depth_stem" if modality == "depth" else "rgbt_stem"
    pre = PatchPreprocessor(
        stem_name, PatchStem(conv2d, nn.LayerNorm(dim)), _patch_grid(size, kernel, stride), dim
    )
    return TowerParts(pre, trunk, ClsHead(dim, out), postprocessor)
