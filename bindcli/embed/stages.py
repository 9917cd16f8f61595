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
from bindcli.windows import Reading

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bindcli.embed.encoder import Encoder
    from bindcli.media import MediaOptions
    from bindcli.media.segments import Segment

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
    #: where in the file this vector is, in seconds: a segment's window (None: the whole file)
    start: float | None = None
    end: float | None = None

    @property
    def unit(self) -> np.ndarray:
        return normalise(self.raw)


@dataclasses.dataclass(frozen=True)
class Segments:
    """A file read in windows of time (`Input.window`): one Embedding per window, in time
    order, each with its `start` and `end`. What an embedder answers for such an input."""

    input: Input
    sha256: str
    parts: tuple[Embedding, ...]
    cached: bool = False

    @property
    def raw(self) -> np.ndarray:
        """(windows, dim) upstream outputs, one row per segment."""
        return np.stack([e.raw for e in self.parts])

    @property
    def unit(self) -> np.ndarray:
        return normalise(self.raw)

    @property
    def times(self) -> np.ndarray:
        """(windows, 2) start and end of each segment, in seconds."""
        return np.array([(e.start, e.end) for e in self.parts], np.float64)

    def packed(self) -> np.ndarray:
        """One float32 vector for the embedding cache: the count, each window's start and
        end, then the rows (`unpack` reads it)."""
        head = np.array([len(self.parts)], np.float32)
        return np.concatenate([head, self.times.astype(np.float32).ravel(), self.raw.ravel()])

    @classmethod
    def unpack(cls, inp: Input, sha: str, vector: np.ndarray, *, cached: bool = True) -> "Segments":
        count = int(vector[0])
        times = vector[1 : 1 + 2 * count].reshape(count, 2).astype(np.float64)
        rows = vector[1 + 2 * count :].reshape(count, -1)
        parts = tuple(
            Embedding(inp, sha, row, cached=cached, start=float(a), end=float(b))
            for (a, b), row in zip(times, rows)
        )
        return cls(inp, sha, parts, cached=cached)


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


def look_up(
    cache: EmbeddingCache, key: KeyOf, found: Sequence[tuple[Input, str]]
) -> "list[Embedding | Segments | None]":
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


def prepare_segments(
    inputs: Sequence[Input], options: "MediaOptions | None", *, workers: int = 2, lookahead: int = 16
) -> "Iterator[tuple[int, Segment | InputError | None]]":
    """(position, segment) for the windows of files read in segments, decoded as streams on
    `workers` threads with at most `lookahead` segments waiting; (position, None) once a file
    is done, or (position, InputError) for one that gives no segment
    (`bindcli.media.segments.stream_segments`)."""
    from bindcli.media.segments import stream_segments

    yield from stream_segments(
        [(inp.source, inp.kind, inp.reading, inp.window, inp.span) for inp in inputs],  # type: ignore[misc]
        options, workers=workers, lookahead=lookahead,
    )


# --- core ----------------------------------------------------------------------------------


class BatchKey(NamedTuple):
    """What inputs must share to be encoded together."""

    tower: str
    shape: tuple[int, ...]


def batch_key(kind: Kind, tensor: "torch.Tensor", reading: "Reading | None" = None) -> BatchKey:
    """The one place batches are formed: images and videos share a tower but not a shape,
    nor do IMU recordings of different lengths. A segment goes to its reading's tower (the
    sound of a video to the audio tower)."""
    return BatchKey(READ_BY[reading] if reading is not None else kind.tower, tuple(tensor.shape))


def tower_of(inp: Input) -> str:
    """The tower that embeds `inp` (a segment's: its reading's)."""
    return READ_BY[inp.reading] if inp.reading is not None else inp.kind.tower


#: the tower each reading of a window feeds
READ_BY = {Reading.SOUND: "audio", Reading.CLIPS: "vision", Reading.FRAMES: "vision", Reading.IMU: "imu"}


def encode(encoder: "Encoder", key: BatchKey, tensors: "Sequence[torch.Tensor]") -> np.ndarray:
    """(len(tensors), dim) float32: the raw vectors of one batch of tensors sharing `key`."""
    return np.asarray(encoder.encode(key.tower, list(tensors)), np.float32)


# --- post ----------------------------------------------------------------------------------


def finish(inp: Input, sha: str, raw: np.ndarray, *, cached: bool = False) -> "Embedding | Segments":
    """The Embedding of `inp` from its raw vector; for a file read in segments, its
    Segments from their packed vector (`Segments.packed`)."""
    if inp.window is not None:
        return Segments.unpack(inp, sha, np.asarray(raw, np.float32), cached=cached)
    return Embedding(inp, sha, np.asarray(raw, np.float32), cached=cached)


def finish_segments(inp: Input, sha: str, found: Iterable[tuple[float, float, np.ndarray]]) -> Segments:
    """The Segments of `inp` from its windows' (start, end, raw vector), in time order."""
    parts = sorted(found, key=lambda part: part[0])
    return Segments(inp, sha, tuple(
        Embedding(inp, sha, np.asarray(raw, np.float32), start=start, end=end) for start, end, raw in parts
    ))


def remember(cache: EmbeddingCache, key: KeyOf, done: "Iterable[Embedding | Segments]") -> None:
    """Store encoded Embeddings (and Segments, packed) in the cache, each under its key."""
    cache.cache_put(
        (key(e.input, e.sha256), e.packed() if isinstance(e, Segments) else e.raw) for e in done
    )
