"""bind as a plugin of simonw's `llm`: the embedding model `imagebind`, for texts and files.

`llm` loads it through the `llm` entry point bind's pyproject declares; nothing else imports
this module, so without llm it is never loaded. Texts embed as texts; bytes (`llm embed-multi
--files DIR '*' --binary`, which sends no file name) by the kind their first bytes show
(`modality.sniff`). Vectors are unit length, as `llm similar` compares them. A running `bind
serve` embeds them when it computes what this process would (`BIND_SERVER`, else the local
socket, as for the commands), else this process does; `BIND_MODEL_CONFIG`, `BIND_WEIGHTS`,
`BIND_DEVICE`, `BIND_PRECISION` and `BIND_TOKEN` mean what they mean to `bind`.

Imports: bindcli.errors, bindcli.modality, bindcli.embed, bindcli.model.config.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import llm

from bindcli.errors import InputError
from bindcli.modality import sniff

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import BaseEmbedder, Embedder
    from bindcli.embed.inputs import Input


@llm.hookimpl
def register_embedding_models(register) -> None:  # noqa: ANN001 (llm's hook)
    register(ImageBind())


class ImageBind(llm.EmbeddingModel):
    """ImageBind's one space for text, images, video, audio and `.npy`/`.npz` IMU recordings."""

    model_id = "imagebind"
    supports_text = True
    supports_binary = True
    #: items per call of `embed_batch`: enough for the embedder to fill its batches
    batch_size = 32

    def __str__(self) -> str:
        return "bind: imagebind"

    def embed_batch(self, items: Iterable[str | bytes]) -> Iterator[list[float]]:
        """Unit vectors, in order; an item bind cannot embed stops the batch with an
        InputError naming it by its place (llm has no per-item failure)."""
        with tempfile.TemporaryDirectory(prefix="bind-llm-") as folder:
            inputs = [_input(n, item, Path(folder)) for n, item in enumerate(items)]
            results = self.embedder.embed(inputs)
        for n, result in enumerate(results):
            if isinstance(result, InputError):
                raise InputError(_name(n, inputs[n]), result.reason)
            yield result.unit.tolist()

    @functools.cached_property
    def embedder(self) -> "BaseEmbedder":
        """The running server's, when it computes what this process would, else this
        process's (built on first need, and what a server that goes away leaves)."""
        from bindcli.embed.identity import Model
        from bindcli.embed.remote import choose, server_address
        from bindcli.errors import WeightsNotDownloaded
        from bindcli.model.config import load_config

        config = load_config(os.environ.get("BIND_MODEL_CONFIG") or "imagebind_huge")
        here: Model | WeightsNotDownloaded
        try:
            here = Model.resolve(config, download=False)
        except WeightsNotDownloaded as missing:
            here = missing
        named = os.environ.get("BIND_SERVER")
        address = server_address(named)
        if address is not None:
            served, why = choose(
                address, here, config, precision=_precision(), device=_device(),
                token=os.environ.get("BIND_TOKEN"),
            )
            if served is not None:
                if isinstance(here, Model):
                    served.fallback = lambda: self.local
                return served
            if named:  # as `bind --server` does: the server asked for by name is not used
                warnings.warn(f"bind: {why}; running in-process", stacklevel=2)
        return self.local

    @functools.cached_property
    def local(self) -> "Embedder":
        """This process's embedder (downloading the weights if they are not here yet)."""
        from bindcli.embed.embedder import open_embedder

        return open_embedder(
            os.environ.get("BIND_MODEL_CONFIG") or "imagebind_huge",
            device=_device(), precision=_precision(),
        )


def _input(n: int, item: str | bytes, folder: Path) -> "Input | InputError":
    """A text as itself; bytes as a file in `folder` named by the kind they show."""
    from bindcli.embed.inputs import Input, text_inputs

    if isinstance(item, str):
        return text_inputs([item])[0]
    extension = sniff(item)
    if extension is None:
        return InputError(
            f"binary item {n + 1}", "bind cannot tell its kind from its bytes (it reads images, "
            "video, audio, .npy/.npz IMU recordings and UTF-8 text)",
        )
    path = folder / f"{n}{extension}"
    path.write_bytes(item)
    return Input.file(path)


def _name(n: int, inp: "Input | InputError") -> str:
    """How an error names item `n`: llm's items have no names of their own."""
    if isinstance(inp, InputError):
        return inp.source
    if inp.literal:
        return f"text item {n + 1}"
    return f"binary item {n + 1} ({inp.kind.value})"


def _device() -> str:
    return os.environ.get("BIND_DEVICE") or "auto"


def _precision() -> str:
    return os.environ.get("BIND_PRECISION") or "auto"
