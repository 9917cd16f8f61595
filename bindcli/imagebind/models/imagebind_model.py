"""Upstream's `imagebind.models.imagebind_model`: ModalityType, ImageBindModel, imagebind_huge.

`ImageBindModel` is bind's model (`bindcli.model.imagebind.ImageBind`) with all six towers,
built from upstream's constructor arguments: its modules carry upstream's names, so upstream
checkpoints load with `strict=True`, and `forward` keeps upstream's contract. Like upstream's
(and any new nn.Module) it starts in training mode; call `.eval()` as upstream's README does.
Drop-path is not implemented (it is a no-op at inference), so training-mode outputs lack
upstream's stochastic depth.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import SimpleNamespace
from typing import Any

import torch

from bindcli import weights
from bindcli.modality import TOWERS
from bindcli.model.checkpoint import check_state_dict, read_state_dict
from bindcli.model.config import OWN_FIELDS, ModelConfig, load_config
from bindcli.model.imagebind import ImageBind

ModalityType = SimpleNamespace(**{tower.upper(): tower for tower in TOWERS})

#: the built-in config `imagebind_huge` builds
HUGE = "imagebind_huge"

_ARGUMENTS = [
    inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default)
    for f in dataclasses.fields(ModelConfig)
    if f.name not in OWN_FIELDS
]
_SIGNATURE = inspect.Signature(_ARGUMENTS)


class ImageBindModel(ImageBind):
    """Upstream's class: its constructor arguments, positional or by keyword, with its defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        arguments = _SIGNATURE.bind(*args, **kwargs).arguments  # TypeError as upstream's would
        super().__init__(ModelConfig(**arguments, name="ImageBindModel"))
        self.train()

    # what help() and inspect show: upstream's arguments, not *args/**kwargs
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *_ARGUMENTS]
    )


def imagebind_huge(pretrained: bool = False) -> ImageBindModel:
    """Upstream's huge model, random or with the official weights.

    `pretrained=True` loads the checkpoint `bindcli.weights.resolve` finds (`BIND_WEIGHTS`,
    else bind's cache, else a download there, which offline mode refuses) instead of
    upstream's `.checkpoints/` under the working directory. The model is then built on the
    meta device and takes the checkpoint's tensors, so no random init is made only to be
    overwritten; a checkpoint that does not fit is refused naming its keys.
    """
    config = load_config(HUGE).to_dict()
    if not pretrained:
        return ImageBindModel(**config)
    path = weights.resolve()
    with torch.device("meta"):
        model = ImageBindModel(**config)
    state = read_state_dict(path, dtype=torch.float32)
    check_state_dict({key: value.shape for key, value in model.state_dict().items()}, state, path)
    model.load_state_dict(state, strict=True, assign=True)
    return model
