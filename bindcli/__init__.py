"""bind: ImageBind's shared embedding space for images, video, audio, text, depth, thermal and IMU.

The library API: `load_model` builds the encoders (only the towers you ask for) and loads
weights; `bindcli.media` turns files into the tensors they expect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "ModelConfig", "Kind"]

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.model.config import ModelConfig
    from bindcli.model.factory import load_model
    from bindcli.modality import Kind


def __getattr__(name: str) -> Any:
    # Lazy, so `import bindcli` (and `bind --help`) never pays for importing torch.
    if name == "load_model":
        from bindcli.model.factory import load_model

        return load_model
    if name == "ModelConfig":
        from bindcli.model.config import ModelConfig

        return ModelConfig
    if name == "Kind":
        from bindcli.modality import Kind

        return Kind
    raise AttributeError(f"module 'bindcli' has no attribute {name!r}")
