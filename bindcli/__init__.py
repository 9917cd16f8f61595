"""bind: ImageBind's shared embedding space for images, video, audio, text, depth, thermal and IMU.

The library API: `open_embedder` builds a ready `Embedder` (model, weights, device, precision,
cache) that turns files and texts into `Embedding`s; `bindcli.vectors` compares and combines
them, `bindcli.zeroshot` classifies, `bindcli.query` parses `a.jpg + 0.5:b.wav` expressions.
Lower down, `load_model` builds the encoders (only the towers you ask for) and `bindcli.media`
turns files into the tensors they expect. `bindcli.imagebind` is upstream's own API.

The map, from the bottom up (each package's `__init__` says what it may import, and
tests/test_layout.py holds the code to it):

- `errors`, `modality`, `vectors`: the shared vocabulary (typed errors, the seven kinds, vector
  maths); `_util`: hashing, paths, bind's folders, atomic writes, the machine formats.
- `media/`: files -> tensors; `model/`: configs, towers, checkpoints, placement; `weights`:
  where the checkpoint is, its download and record.
- `embed/`: the one pipeline from inputs to `Embedding`s, in process, through a server or on Ray.
- `collections/`: the SQLite collection file (the only SQL), ingest, search, exchange, and
  `Collection`, the object a script indexes and searches a collection with.
- tasks: `query`, `zeroshot`, `locate`, `generate`, `score`, `eval/`, `doctor`.
- `serve/`: `bind serve`; `cli/`: the `bind` command, the only user of Typer and Rich.

Imports: bindcli._util, bindcli.collections, bindcli.embed, bindcli.errors, bindcli.modality,
bindcli.model, bindcli.query (each lazily, on first use of a name).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it, imported on first use so that `import bindcli`
#: (and `bind --help`) never pays for torch
_LAZY = {
    "open_embedder": "bindcli.embed.embedder",
    "Embedder": "bindcli.embed.embedder",
    "Embedding": "bindcli.embed.stages",
    "Input": "bindcli.embed.inputs",
    "Model": "bindcli.embed.identity",
    "InputError": "bindcli.errors",
    "BindError": "bindcli.errors",
    "Collection": "bindcli.collections.collection",
    "Kind": "bindcli.modality",
    "ModelConfig": "bindcli.model.config",
    "load_model": "bindcli.model.factory",
    "Query": "bindcli.query",
    "default_db_path": "bindcli._util.folders",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from bindcli._util.folders import default_db_path
    from bindcli.collections.collection import Collection
    from bindcli.embed.embedder import Embedder, open_embedder
    from bindcli.embed.identity import Model
    from bindcli.embed.inputs import Input
    from bindcli.embed.stages import Embedding
    from bindcli.errors import BindError, InputError
    from bindcli.modality import Kind
    from bindcli.model.config import ModelConfig
    from bindcli.model.factory import load_model
    from bindcli.query import Query


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bindcli' has no attribute {name!r}")
