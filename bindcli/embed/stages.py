"""The stages of one input's path to a vector, which every driver runs in its own order.

    pre:   digest (content hash, on threads) -> cache lookup -> prepare (decode or tokenize)
    core:  batch key (tower, shape) -> encode
    post:  finish (raw + unit) -> cache store

The in-process `Embedder`, the server's batcher (`bindcli.serve.batching`) and the Ray
workers (`bindcli.embed.ray_engine`) differ only in how they schedule these; the batch key is
`batch_key` and the cache key `bindcli.embed.identity.cache_key`, each written once. Nothing
here imports torch until something is prepared.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from bindcli._util.chunks import batched
from bindcli._util.hashing import sha256_file, sha256_text
from bindcli._util.paths import is_uri, path_text
from bindcli.embed.identity import CacheKey
from bindcli.embed.inputs import Input, not_utf8
from bindcli.errors import InputError
from bindcli.modality import Kind
from bindcli.vectors import normalise

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bindcli.embed.encoder import Encoder
    from bindcli.media import MediaOptions

#: why an Embedder in this process refuses a URI: reading object stores is the Ray engine's
LOCAL_URI = "a URI: bind reads object stores on its Ray engine's workers (--engine ray)"

#: loader threads (hashing, decoding) when the caller names no number
LOADERS = min(4, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class Embedding:
    """One input's vector: `raw` is upstream's output (scaled per modality), `unit` its
    direction, which is what similarity uses."""

    input: Input
    sha256: str
    raw: np.ndarray
    cached: bool = False  # came from the embedding cache, not an encoder

    @property
    def unit(self) -> np.ndarray:
        return normalise(self.raw)


class EmbeddingCache(Protocol):
    """What the cache stages need (`bindcli.collections.store.Store` is one): raw float32
    vectors by key, found in bulk and stored in bulk."""

    def cache_get(self, keys: Iterable[CacheKey]) -> dict[CacheKey, np.ndarray]: ...

    def cache_put(self, entries: Iterable[tuple[CacheKey, np.ndarray]]) -> None: ...


#: the cache key of an input with a content hash, under one embedder (`Embedder.cache_key`)
KeyOf = Callable[[Input, str], CacheKey]


# --- pre -----------------------------------------------------------------------------------


def digest(inp: Input, known: str | None = None) -> str | InputError:
    """The content SHA-256 of `inp` (`known`, where the caller hashed it already), or why it
    cannot be read here: a URI is read only on the Ray engine's workers; a text that is not
    UTF-8 is embedded nowhere (`not_utf8`)."""
    if known is not None:
        return known
    if inp.literal:
        refused = not_utf8(inp.source)
        return InputError(path_text(inp.source), refused) if refused else sha256_text(inp.source)
    if is_uri(inp.source):
        return InputError(inp.source, LOCAL_URI)
    try:
        return sha256_file(inp.source)
    except OSError as exc:
        return InputError(inp.source, exc.strerror or str(exc))


def digests(
    inputs: Sequence[Input], known: Sequence[str | None] = (), workers: int = LOADERS
) -> list[str | InputError]:
    """`digest` of each input, on `workers` threads; `known[i]`, where given, is input i's."""
    given = list(known) + [None] * (len(inputs) - len(known))
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(digest, inputs, given))


def look_up(cache: EmbeddingCache, key: KeyOf, found: Sequence[tuple[Input, str]]) -> list[Embedding | None]:
    """The cached Embedding of each (input, content hash), or None where the cache has none."""
    keys = [key(inp, sha) for inp, sha in found]
    vectors = cache.cache_get(keys)
    return [
        finish(inp, sha, vectors[k], cached=True) if k in vectors else None
        for (inp, sha), k in zip(found, keys)
    ]


def prepare(inp: Input, options: "MediaOptions | None") -> "torch.Tensor | InputError":
    """One input's tensor: a text tokenized, a file decoded by its kind's loader."""
    from bindcli import media

    if inp.literal:
        return media.tokenize([inp.source])[0]
    return media.load_or_error(inp.source, inp.kind, options)


def prepare_many(
    inputs: Sequence[Input],
    options: "MediaOptions | None",
    *,
    workers: int = 2,
    lookahead: int | None = None,
    texts_at_once: int | None = None,
) -> "Iterator[tuple[int, torch.Tensor | InputError]]":
    """(position, tensor or InputError) for every input, as `prepare` makes them: texts
    first, tokenized `texts_at_once` at a time (default all), then files decoded on `workers`
    loader threads with at most `lookahead` waiting (`bindcli.media.load_many`)."""
    from bindcli import media

    texts = [n for n, inp in enumerate(inputs) if inp.literal]
    step = texts_at_once or max(1, len(texts))
    for part in batched(texts, step):
        yield from zip(part, media.tokenize([inputs[n].source for n in part]))
    files = [n for n, inp in enumerate(inputs) if not inp.literal]
    loaded = media.load_many(
        ((inputs[n].source, inputs[n].kind) for n in files), options, workers=workers, lookahead=lookahead
    )
    with contextlib.closing(loaded):
        for k, tensor in loaded:
            yield files[k], tensor


# --- core ----------------------------------------------------------------------------------


class BatchKey(NamedTuple):
    """What inputs must share to be encoded together."""

    tower: str
    shape: tuple[int, ...]


def batch_key(kind: Kind, tensor: "torch.Tensor") -> BatchKey:
    """The one place batches are formed: images and videos share a tower but not a shape,
    nor do IMU recordings of different lengths."""
    return BatchKey(kind.tower, tuple(tensor.shape))


def encode(encoder: "Encoder", key: BatchKey, tensors: "Sequence[torch.Tensor]") -> np.ndarray:
    """(len(tensors), dim) float32: the raw vectors of one batch of tensors sharing `key`."""
    return np.asarray(encoder.encode(key.tower, list(tensors)), np.float32)


# --- post ----------------------------------------------------------------------------------


def finish(inp: Input, sha: str, raw: np.ndarray, *, cached: bool = False) -> Embedding:
    """The Embedding of `inp` from its raw vector."""
    return Embedding(inp, sha, np.asarray(raw, np.float32), cached=cached)


def remember(cache: EmbeddingCache, key: KeyOf, done: Iterable[Embedding]) -> None:
    """Store encoded Embeddings in the cache, each under its key."""
    cache.cache_put((key(e.input, e.sha256), e.raw) for e in done)
