"""What turns a batch of input tensors into vectors: the seam behind the `Embedder`.

The Embedder decodes, batches and caches; an `Encoder` only runs a tower on a batch. Today's
is `LocalEncoder` (the model in this process); a warm server's client or a cluster worker is
another implementation of the same two methods.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bindcli.model.placement import Placement

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bindcli.model.adapter import Adapter
    from bindcli.model.config import ModelConfig


class Encoder(Protocol):
    """Runs the towers of one model at one precision."""

    def prepare(self, towers: frozenset[str]) -> None:
        """Get ready to encode with `towers` (load them); called on a background thread
        while the first inputs decode, so it may take long."""

    def encode(self, tower: str, batch: "Sequence[torch.Tensor]") -> np.ndarray:
        """(len(batch), dim) float32: upstream's raw output for each input of the batch."""


class LocalEncoder:
    """The model in this process, building only the towers asked for (and rebuilding with
    the union when a new one is needed), with the `adapter` merged into its tower if given."""

    def __init__(
        self, config: "ModelConfig", weights: Path, placement: Placement, adapter: "Adapter | None" = None
    ) -> None:
        self.config = config
        self.weights = weights
        self.placement = placement
        self.adapter = adapter
        self._model: torch.nn.Module | None = None
        self._towers: frozenset[str] = frozenset()
        self._lock = threading.Lock()  # prepare() runs beside the decoding threads

    def prepare(self, towers: frozenset[str]) -> None:
        self._model_for(towers)

    @property
    def towers(self) -> frozenset[str]:
        """The towers in memory now (what a server reports)."""
        return self._towers

    def _model_for(self, towers: frozenset[str]) -> "torch.nn.Module":
        with self._lock:
            if self._model is None or not towers <= self._towers:
                from bindcli.model.factory import load_model

                self._towers = towers | self._towers
                self._model = None  # free the old towers before loading the new set
                self._model = load_model(
                    self.config, self.weights, sorted(self._towers),
                    device=self.placement.device, dtype=self.placement.dtype,
                    int8=self.placement.int8, adapter=self.adapter,
                )
            return self._model

    def encode(self, tower: str, batch: "Sequence[torch.Tensor]") -> np.ndarray:
        import torch

        model = self._model_for(frozenset({tower}))
        x = torch.stack(list(batch)).to(self.placement.device)
        if x.is_floating_point():
            x = x.to(self.placement.dtype)
        with torch.inference_mode():
            return model({tower: x})[tower].float().cpu().numpy()

    def close(self) -> None:
        """Free the towers (the next encode loads them again)."""
        with self._lock:
            self._model, self._towers = None, frozenset()
