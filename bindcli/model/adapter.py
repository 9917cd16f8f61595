"""An adapter's header: what `bind tune` made, read without torch so a run can name its
vectors (`bindcli.embed.identity.vectors_id`) and refuse an adapter of another base model
before anything loads.

An adapter is a safetensors file; its metadata key `bind_adapter` holds this header as JSON.
Its id is the file's SHA-256 (first 12 hex digits): two adapters with the same header but
other numbers never share a cache entry or a collection.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

from bindcli._util.hashing import sha256_file
from bindcli.errors import UsageError

#: the safetensors metadata key the header is stored under
METADATA_KEY = "bind_adapter"
#: what trains: a linear map on the tower's output, or low-rank updates of its last blocks
METHODS = ("head", "lora")
#: a header bigger than this is not an adapter's (safetensors' own limit is 100 MB)
MAX_HEADER = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class AdapterHeader:
    """What an adapter file says of itself."""

    base: str  # the model id it was tuned on (`bindcli.embed.identity.model_id`)
    tower: str  # the one tower it changes
    method: str  # `head` or `lora`
    rank: int = 0  # lora's rank (0 for head)
    blocks: int = 0  # lora: how many of the tower's last blocks
    data: str = ""  # SHA-256 of the training data's list of (file hash, label)
    items: int = 0  # training items
    epochs: int = 0  # epochs run (the adapter is the best of them)
    validation: dict = dataclasses.field(default_factory=dict)  # figures on the held-out split
    split: dict = dataclasses.field(default_factory=dict)  # how the held-out split was drawn

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Adapter:
    """An adapter file, its id and its header."""

    path: Path
    id: str
    header: AdapterHeader

    @property
    def tower(self) -> str:
        return self.header.tower

    def check_base(self, model_id: str) -> None:
        """Refuse to put this adapter on a model other than the one it was tuned on."""
        if self.header.base != model_id:
            raise UsageError(
                f"{self.path}: adapter tuned on model {self.header.base}; this run's model is "
                f"{model_id} (use the --model-config and --weights it was tuned with)"
            )


def read_adapter(path: str | Path) -> Adapter:
    """The adapter at `path`, its header read from the safetensors metadata (no tensors)."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > MAX_HEADER:
                raise ValueError("header too large")
            meta = json.loads(f.read(size)).get("__metadata__") or {}
        fields = json.loads(meta[METADATA_KEY])
        header = AdapterHeader(**fields)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such adapter file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not an adapter file") from None
    except (OSError, struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a bind adapter (a safetensors file from `bind tune`): {exc}") from None
    if header.method not in METHODS:
        raise UsageError(f"{path}: unknown adapter method {header.method!r}")
    return Adapter(path, sha256_file(path)[:12], header)
