"""Model shapes as data: upstream's `ImageBindModel(...)` keyword arguments, nothing else.

A config is a JSON object whose keys are upstream's constructor names, so a config written
for upstream works here unchanged. Built-in configs live in `configs/*.json` and are found by
name; any other file is read by path.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from bindcli.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.model.pretrained import Pretrained

#: fields that are bind's, not upstream's constructor arguments
OWN_FIELDS = ("name", "weights")

# Fixed by the architecture, not by the constructor: input sizes every released model uses.
IMAGE_SIZE = 224
TEXT_CONTEXT_LENGTH = 77
TEXT_VOCAB_SIZE = 49408
IMU_CHANNELS = 6
IMU_LENGTH = 2000


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Upstream's constructor arguments, with upstream's defaults."""

    video_frames: int = 2
    kernel_size: tuple[int, int, int] = (2, 14, 14)
    audio_kernel_size: int = 16
    audio_stride: int = 10
    out_embed_dim: int = 768
    vision_embed_dim: int = 1024
    vision_num_blocks: int = 24
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    text_embed_dim: int = 768
    text_num_blocks: int = 12
    text_num_heads: int = 12
    depth_embed_dim: int = 384
    depth_kernel_size: int = 16
    depth_num_blocks: int = 12
    depth_num_heads: int = 8
    depth_drop_path: float = 0.0
    thermal_embed_dim: int = 768
    thermal_kernel_size: int = 16
    thermal_num_blocks: int = 12
    thermal_num_heads: int = 12
    thermal_drop_path: float = 0.0
    imu_embed_dim: int = 512
    imu_kernel_size: int = 8
    imu_num_blocks: int = 6
    imu_num_heads: int = 8
    imu_drop_path: float = 0.7
    #: a label for messages, caches and manifests; not an upstream argument
    name: str = dataclasses.field(default="custom", compare=False)
    #: where a JSON config's weights are published (its `"weights"` object); not an upstream
    #: argument, and not part of the shape
    weights: Pretrained | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_size", tuple(self.kernel_size))
        for tower in ("vision", "audio", "text", "depth", "thermal", "imu"):
            dim = getattr(self, f"{tower}_embed_dim")
            heads = getattr(self, f"{tower}_num_heads")
            if dim % heads:
                raise ConfigError(
                    f"config {self.name!r}: {tower}_embed_dim={dim} is not divisible by "
                    f"{tower}_num_heads={heads}"
                )

    @classmethod
    def from_dict(cls, data: dict, name: str = "custom") -> "ModelConfig":
        data = dict(data)
        published = data.pop("weights", None)
        known = {f.name for f in dataclasses.fields(cls)} - set(OWN_FIELDS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"config {name!r}: unknown key(s) {', '.join(unknown)}; keys are upstream "
                "ImageBindModel constructor arguments (and \"weights\")"
            )
        if published is None:
            return cls(**data, name=name)
        from bindcli.model.pretrained import from_json  # only then: the media loaders import this module

        return cls(**data, name=name, weights=from_json(published, name))

    def to_dict(self) -> dict:
        """Upstream's keyword arguments (JSON-ready), without our label."""
        data = dataclasses.asdict(self)
        for field in OWN_FIELDS:
            del data[field]
        data["kernel_size"] = list(self.kernel_size)
        return data


def builtin_names() -> list[str]:
    """Names of the configs shipped with bind."""
    files = resources.files("bindcli.model") / "configs"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))


def load_config(spec: "str | Path | ModelConfig") -> ModelConfig:
    """A config from a built-in name, a JSON file path, or a ready `ModelConfig`."""
    if isinstance(spec, ModelConfig):
        return spec
    spec_str = str(spec)
    if spec_str in builtin_names():
        text = (resources.files("bindcli.model") / "configs" / f"{spec_str}.json").read_text()
        return ModelConfig.from_dict(json.loads(text), name=spec_str)
    path = Path(spec_str).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"model config {spec_str!r} is neither a built-in ({', '.join(builtin_names())}) "
            "nor a JSON file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON model config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model config must be a JSON object")
    return ModelConfig.from_dict(data, name=path.stem)
