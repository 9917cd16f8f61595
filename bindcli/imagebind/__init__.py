"""Upstream ImageBind's Python API (its `imagebind` package), computed by bind.

Scripts written for upstream run after `from imagebind ...` becomes `from bindcli.imagebind ...`:
the same names, signatures and defaults, backed by `bindcli.media` and `bindcli.model`, so
without upstream's install (pytorchvideo, decord). Nothing else in bind imports this package.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.media, bindcli.model,
bindcli.weights.
"""

from bindcli.imagebind import data
from bindcli.imagebind.models import imagebind_model
from bindcli.imagebind.models.imagebind_model import ModalityType

__all__ = ["ModalityType", "data", "imagebind_model"]
