"""The ImageBind model: the towers you ask for, with upstream's forward contract.

`forward({"vision": ..., "audio": ...})` returns upstream's raw outputs: each embedding is
L2-normalised, multiplied by its modality's logit scale, and averaged over clips for
multi-clip inputs. Unlike upstream, input shapes are checked per modality (upstream guesses
"multi-clip" from `ndim >= 5`, which misreads a 5-D video and silently averages 5-D depth).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from bindcli.modality import TOWERS
from bindcli.model.config import (
    IMAGE_SIZE,
    IMU_CHANNELS,
    IMU_LENGTH,
    TEXT_CONTEXT_LENGTH,
    TEXT_VOCAB_SIZE,
    ModelConfig,
)
from bindcli.model.towers import build_tower


def normalize_modalities(modalities: Iterable[str] | None) -> tuple[str, ...]:
    """Validated tower names in upstream's order; None means all six."""
    if modalities is None:
        return TOWERS
    wanted = set(modalities)
    unknown = sorted(wanted - set(TOWERS))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; choose from {', '.join(TOWERS)}")
    if not wanted:
        raise ValueError("at least one modality is needed")
    return tuple(m for m in TOWERS if m in wanted)


class ImageBind(nn.Module):
    """ImageBind with only the requested towers built (and so only their weights held)."""

    #: encode a multi-clip item once when all its clips are equal (audio of 2 s or less)
    dedupe_identical_clips: bool = True

    def __init__(self, config: ModelConfig, modalities: Iterable[str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.modalities = normalize_modalities(modalities)
        self.modality_preprocessors = nn.ModuleDict()
        self.modality_trunks = nn.ModuleDict()
        self.modality_heads = nn.ModuleDict()
        self.modality_postprocessors = nn.ModuleDict()
        for modality in self.modalities:
            parts = build_tower(config, modality)
            self.modality_preprocessors[modality] = parts.preprocessor
            self.modality_trunks[modality] = parts.trunk
            self.modality_heads[modality] = parts.head
            self.modality_postprocessors[modality] = parts.postprocessor
        if not any(p.is_meta for p in self.parameters()):
            self.init_weights()
        self.eval()

    def init_weights(self) -> None:
        """Random values for the learned embeddings and attention projections.

        Skipped when building on the meta device (a checkpoint will fill every tensor), since
        some init functions are slow there and nothing would be kept.
        """
        for module in self.modules():
            if module is not self and hasattr(module, "init_weights"):
                module.init_weights()

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs = {}
        for modality, value in inputs.items():
            if value is None:  # upstream crashes on None; skipping is what callers mean
                continue
            if modality not in self.modalities:
                raise ValueError(
                    f"this model was built without the {modality!r} tower "
                    f"(built: {', '.join(self.modalities)})"
                )
            outputs[modality] = self.embed(modality, value)
        return outputs

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Raw embeddings of one modality's batch, multi-clip inputs averaged."""
        multi_clip = self._check_shape(modality, x)
        reference = next(self.modality_heads[modality].parameters())
        if modality == "text":
            x = x.to(device=reference.device)
        else:
            x = x.to(device=reference.device, dtype=reference.dtype)
        if not multi_clip:
            return self._encode(modality, x)
        return self._encode_clips(modality, x)

    def _encode_clips(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        batch, clips = x.shape[:2]
        views = x.flatten(0, 1)
        if self.dedupe_identical_clips and clips > 1:
            same = (x == x[:, :1]).flatten(2).all(dim=2).all(dim=1)
            if bool(same.any()):
                counts = torch.where(same, 1, clips).to(x.device)
                starts = torch.arange(batch, device=x.device) * clips
                index = torch.cat([torch.arange(int(c), device=x.device) + s for s, c in zip(starts, counts)])
                emb = self._encode(modality, views[index])
                owner = torch.repeat_interleave(torch.arange(batch, device=x.device), counts)
                total = emb.new_zeros(batch, emb.shape[-1]).index_add_(0, owner, emb)
                return total / counts.unsqueeze(1).to(emb.dtype)
        return self._encode(modality, views).unflatten(0, (batch, clips)).mean(dim=1)

    def _encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        tokens = self.modality_preprocessors[modality](x)
        if modality == "text":  # end-of-text is the largest id, so argmax finds it
            select = x.argmax(dim=-1)
        else:  # the CLS token
            select = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        feature = self.modality_trunks[modality](tokens, select)
        return self.modality_postprocessors[modality](self.modality_heads[modality](feature))

    def _check_shape(self, modality: str, x: torch.Tensor) -> bool:
        """Raise a clear ValueError for a wrong shape; return whether x carries a clip dim."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{modality}: expected a torch.Tensor, got {type(x).__name__}")
        shape = tuple(x.shape)
        cfg = self.config
        if modality == "text":
            if x.ndim != 2 or shape[1] != TEXT_CONTEXT_LENGTH:
                raise ValueError(f"text: expected token ids (B, {TEXT_CONTEXT_LENGTH}), got {shape}")
            if x.is_floating_point() or x.is_complex():
                raise ValueError(f"text: token ids must be integers, got {x.dtype}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= TEXT_VOCAB_SIZE):
                raise ValueError(f"text: token ids must lie in [0, {TEXT_VOCAB_SIZE})")
            return False
        if modality == "vision":
            return self._check_vision(shape)
        unit = {
            "audio": (1, cfg.audio_num_mel_bins, cfg.audio_target_len),
            "depth": (1, IMAGE_SIZE, IMAGE_SIZE),
            "thermal": (1, IMAGE_SIZE, IMAGE_SIZE),
            "imu": (IMU_CHANNELS, IMU_LENGTH),
        }[modality]
        if shape[1:] == unit:
            return False
        if len(shape) == len(unit) + 2 and shape[2:] == unit:
            return True
        fmt = ", ".join(map(str, unit))
        raise ValueError(
            f"{modality}: expected (B, {fmt}) or, for several clips, (B, S, {fmt}); got {shape}"
        )

    def _check_vision(self, shape: tuple[int, ...]) -> bool:
        patch = self.config.kernel_size[1]
        frames = self.config.video_frames
        expected = (
            f"expected images (B, 3, H, W), views (B, S, 3, H, W) or video clips "
            f"(B, S, 3, {frames}, H, W) with square H = W a multiple of {patch}; got {shape}"
        )
        if len(shape) == 4:
            channels, time, (h, w) = shape[1], 1, shape[2:]
        elif len(shape) == 5:
            channels, time, (h, w) = shape[2], 1, shape[3:]
        elif len(shape) == 6:
            channels, time, (h, w) = shape[2], shape[3], shape[4:]
        else:
            raise ValueError(f"vision: {expected}")
        if channels != 3 or h != w or h % patch or time not in (1, frames):
            hint = ""
            if len(shape) == 5 and shape[1] == 3:
                hint = " (a single clip needs a clip dim: (B, 1, 3, T, H, W))"
            raise ValueError(f"vision: {expected}{hint}")
        return len(shape) > 4
