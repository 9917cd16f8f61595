"""From inputs to vectors: where the encoders run, at what precision, and how work is batched.

Every command embeds through one `Embedder`: files decode on loader threads while the model
loads, batches form across files of the same kind and shape, only the towers the inputs need
are built, a bad input becomes an `InputError` in its slot instead of stopping the run, and an
optional cache (content hash + model + preprocessing + precision) skips work already done.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from bindcli.errors import InputError
from bindcli.modality import Kind, detect
from bindcli.model.config import ModelConfig
from bindcli.placement import Placement
from bindcli.store import CacheKey, sha256_file, sha256_text

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.media import MediaOptions

# --- inputs and results --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Input:
    """One thing to embed: a file of some kind, or a text given on the command line."""

    source: str
    kind: Kind
    literal: bool = False  # `source` is the text itself, not a path

    @classmethod
    def file(cls, path: str | Path, as_kind: Kind | str | None = None) -> "Input":
        """A file input; raises InputError when it is missing or of unknown kind."""
        if not Path(path).is_file():
            what = "is a folder, not a file" if Path(path).is_dir() else "no such file"
            raise InputError(path, what)
        return cls(str(path), detect(path, as_kind))

    @classmethod
    def text(cls, text: str) -> "Input":
        return cls(text, Kind.TEXT, literal=True)


def gather(
    paths: Iterable[str | Path] = (), texts: Iterable[str] = (), as_kind: Kind | str | None = None
) -> list["Input | InputError"]:
    """Files (kinds detected, or `as_kind`) then texts, each an Input or the reason it is not."""
    found: list[Input | InputError] = []
    for path in paths:
        try:
            found.append(Input.file(path, as_kind))
        except InputError as exc:
            found.append(exc)
    found.extend(Input.text(t) for t in texts)
    return found


@dataclasses.dataclass(frozen=True)
class Embedding:
    """One input's vector: `raw` is upstream's output (scaled per modality), `unit` its
    direction, which is what similarity uses."""

    input: Input
    sha256: str
    raw: np.ndarray

    @property
    def unit(self) -> np.ndarray:
        return normalise(self.raw)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised along the last axis (a zero vector stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


class EmbeddingCache(Protocol):
    """What the Embedder needs from a cache (`bindcli.store.Store` is one): raw float32 vectors
    by key, found in bulk and stored in bulk."""

    def cache_get(self, keys: Iterable[CacheKey]) -> dict[CacheKey, np.ndarray]: ...

    def cache_put(self, entries: Iterable[tuple[CacheKey, np.ndarray]]) -> None: ...


def model_id(config: ModelConfig, weights: Path) -> str:
    """Names the numbers a model computes: config name, a hash of its shape, and the weights
    (their recorded SHA-256 when `bind weights` fetched them, else size and mtime)."""
    from bindcli.weights import read_record

    shape = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()
    stat = weights.stat()
    record = read_record(weights) or {}
    if record.get("sha256") and record.get("size") == stat.st_size:
        what = record["sha256"]
    else:
        what = hashlib.sha256(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{config.name}:{shape[:8]}:{what[:12]}"


# --- the embedder --------------------------------------------------------------------------


class Embedder:
    """Embeds inputs with one model, building only the towers they need (once per run)."""

    def __init__(
        self,
        config: ModelConfig,
        weights: Path,
        placement: Placement,
        *,
        batch_size: int = 8,
        workers: int | None = None,
        options: "MediaOptions | None" = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.config = config
        self.weights = weights
        self.placement = placement
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.options = options
        self.cache = cache
        self.model_id = model_id(config, weights)
        self._model: torch.nn.Module | None = None
        self._towers: frozenset[str] = frozenset()

    def embed(
        self,
        inputs: Sequence[Input | InputError],
        progress: Callable[[int], None] = lambda n: None,
        *,
        hashes: Sequence[str | None] = (),
    ) -> list[Embedding | InputError]:
        """One result per input, in order: an Embedding, or the InputError that stopped it."""
        results: list[Embedding | InputError | None] = [None] * len(inputs)
        for i, result in self.stream(inputs, progress, hashes=hashes):
            results[i] = result
        return results  # type: ignore[return-value]

    def stream(
        self,
        inputs: Sequence[Input | InputError],
        progress: Callable[[int], None] = lambda n: None,
        *,
        hashes: Sequence[str | None] = (),
    ) -> Iterator[tuple[int, Embedding | InputError]]:
        """(position, result) for every input as soon as it is known: refusals and cache hits
        first, then each encoded batch, from one loader pipeline however many inputs.

        `hashes[i]`, where given, is input i's content SHA-256 (a caller that hashed the
        file already), which spares reading it again.
        """
        refused = [(i, x) for i, x in enumerate(inputs) if isinstance(x, InputError)]
        progress(len(refused))
        yield from refused
        known = dict(enumerate(hashes))
        todo = [(i, x, known.get(i)) for i, x in enumerate(inputs) if isinstance(x, Input)]
        todo, failed = self._hash(todo)
        progress(len(failed))
        yield from failed
        todo, hits = self._from_cache(todo)
        progress(len(hits))
        yield from hits
        if todo:
            towers = frozenset(inp.kind.tower for _, inp, _ in todo)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                model = pool.submit(self._model_for, towers)  # loads while the first files decode
                for done in self._encode(todo, model):
                    progress(len(done))
                    yield from done

    def _hash(
        self, todo: list[tuple[int, Input, str | None]]
    ) -> tuple[list[tuple[int, Input, str]], list[tuple[int, InputError]]]:
        """Content hashes not already known (on loader threads): the cache key and the
        manifests' identity; inputs that cannot be read are split off as errors."""

        def digest(inp: Input, sha: str | None) -> str | InputError:
            if sha is not None:
                return sha
            if inp.literal:
                return sha256_text(inp.source)
            try:
                return sha256_file(inp.source)
            except OSError as exc:
                return InputError(inp.source, exc.strerror or str(exc))

        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            digests = list(pool.map(digest, [inp for _, inp, _ in todo], [sha for *_, sha in todo]))
        hashed, failed = [], []
        for (i, inp, _), d in zip(todo, digests):
            if isinstance(d, InputError):
                failed.append((i, d))
            else:
                hashed.append((i, inp, d))
        return hashed, failed

    def cache_key(self, inp: Input, sha: str) -> CacheKey:
        """The embedding-cache key of `inp` with content hash `sha` under this embedder."""
        from bindcli.media import PREPROCESSING_VERSION

        options = json.dumps(dataclasses.asdict(self.options), sort_keys=True) if self.options else ""
        return CacheKey(
            sha, self.model_id, PREPROCESSING_VERSION, self.placement.precision,
            inp.kind.value, options,
        )

    def _from_cache(
        self, todo: list[tuple[int, Input, str]]
    ) -> tuple[list[tuple[int, Input, str]], list[tuple[int, Embedding]]]:
        """(what is left to encode, what the cache had)."""
        if self.cache is None or not todo:
            return todo, []
        found = self.cache.cache_get(self.cache_key(inp, sha) for _, inp, sha in todo)
        left, hits = [], []
        for i, inp, sha in todo:
            vector = found.get(self.cache_key(inp, sha))
            if vector is None:
                left.append((i, inp, sha))
            else:
                hits.append((i, Embedding(inp, sha, np.asarray(vector, np.float32))))
        return left, hits

    def _model_for(self, towers: frozenset[str]) -> torch.nn.Module:
        """The model with at least `towers`; rebuilt (with the union) only when one is missing."""
        if self._model is None or not towers <= self._towers:
            from bindcli.model.factory import load_model

            self._towers = towers | self._towers
            self._model = None  # free the old towers before loading the new set
            self._model = load_model(
                self.config, self.weights, sorted(self._towers),
                device=self.placement.device, dtype=self.placement.dtype,
            )
        return self._model

    def _tensors(self, todo: list[tuple[int, Input, str]]) -> Iterator[tuple[int, object]]:
        """(slot, tensor or InputError) for every input: texts tokenized here, files decoded
        on loader threads with bounded look-ahead."""
        from bindcli import media

        texts = [(i, inp) for i, inp, _ in todo if inp.literal]
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            yield from zip((i for i, _ in chunk), media.tokenize([inp.source for _, inp in chunk]))
        files = [(i, inp) for i, inp, _ in todo if not inp.literal]
        # Decoding runs on while a batch encodes only if enough files may wait decoded: with
        # kinds interleaved, filling one batch can take many files (measured: a look-ahead of
        # 4 left the loaders idle for most of each forward pass).
        loaded = media.load_many(
            ((inp.source, inp.kind) for _, inp in files),
            self.options,
            workers=self.workers,
            lookahead=2 * max(self.workers, self.batch_size),
        )
        with contextlib.closing(loaded):
            for n, tensor in loaded:
                yield files[n][0], tensor

    def _encode(
        self, todo: list[tuple[int, Input, str]], model: concurrent.futures.Future
    ) -> Iterator[list[tuple[int, Embedding | InputError]]]:
        """Results a batch at a time, as they complete. Batches form by (tower, shape): images
        and videos share a tower but not a shape, nor do IMU recordings of different lengths."""
        meta = {i: (inp, sha) for i, inp, sha in todo}
        pending: dict[tuple, list[tuple[int, torch.Tensor]]] = {}
        for i, tensor in self._tensors(todo):
            if isinstance(tensor, InputError):
                yield [(i, tensor)]
                continue
            key = (meta[i][0].kind.tower, tuple(tensor.shape))
            batch = pending.setdefault(key, [])
            batch.append((i, tensor))
            if len(batch) == self.batch_size:
                yield self._run(model.result(), key[0], pending.pop(key), meta)
        for (tower, _), batch in pending.items():
            yield self._run(model.result(), tower, batch, meta)

    def _run(
        self,
        model: torch.nn.Module,
        tower: str,
        batch: list[tuple[int, torch.Tensor]],
        meta: dict[int, tuple[Input, str]],
    ) -> list[tuple[int, Embedding | InputError]]:
        """Encode one batch and write it to the cache before anyone sees it, so that work
        survives a caller that stops (or is killed) before committing it elsewhere."""
        x = torch.stack([t for _, t in batch]).to(self.placement.device)
        if x.is_floating_point():
            x = x.to(self.placement.dtype)
        with torch.inference_mode():
            out = model({tower: x})[tower].float().cpu().numpy()
        done: list[tuple[int, Embedding | InputError]] = []
        for (i, _), vector in zip(batch, out):
            inp, sha = meta[i]
            done.append((i, Embedding(inp, sha, vector)))
        if self.cache is not None:
            self.cache.cache_put((self.cache_key(e.input, e.sha256), e.raw) for _, e in done)
        return done
