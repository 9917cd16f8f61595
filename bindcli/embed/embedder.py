"""From inputs to vectors: the `Embedder`, and `open_embedder`, the one way to build it.

Every command (and a Python user, a server, a cluster worker) embeds through an `Embedder`:
files decode on loader threads while the model loads, batches form across files of the same
kind and shape, only the towers the inputs need are built, a bad input becomes an
`InputError` in its slot instead of stopping the run, and an optional cache (content hash +
model + preprocessing + precision) skips work already done. This module imports no torch
(choosing the device does, in `open_embedder`), and towers load only once something must be
encoded.
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

from bindcli.embed.encoder import Encoder, LocalEncoder
from bindcli.errors import InputError, WeightsError
from bindcli._util.paths import not_a_file
from bindcli._util.hashing import sha256_file, sha256_text
from bindcli.modality import PREPROCESSING_VERSION, Kind, detect
from bindcli.model.config import ModelConfig, load_config
from bindcli._util.paths import is_uri
from bindcli.model.placement import Placement, place
from bindcli.collections.store import CacheKey
from bindcli.vectors import normalise

if TYPE_CHECKING:  # pragma: no cover
    from bindcli._util.hashing import Progress
    from bindcli.media import MediaOptions
    from bindcli.collections.store import Store
    from bindcli.weights import Notify

#: why an Embedder in this process refuses a URI: reading object stores is the Ray engine's
LOCAL_URI = "a URI: bind reads object stores on its Ray engine's workers (--engine ray)"

# --- inputs and results --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Input:
    """One thing to embed: a file of some kind, or a text given on the command line."""

    source: str
    kind: Kind
    literal: bool = False  # `source` is the text itself, not a path

    @classmethod
    def file(cls, path: str | Path, as_kind: Kind | str | None = None) -> "Input":
        """A file input; raises InputError when it is missing or of unknown kind. A URI
        (`s3://bucket/key`) is taken as it is: whoever reads it finds whether it exists."""
        if not is_uri(path) and not Path(path).is_file():
            raise InputError(path, not_a_file(path))
        return cls(str(path), detect(path, as_kind))

    @classmethod
    def text(cls, text: str) -> "Input":
        return cls(text, Kind.TEXT, literal=True)


def text_inputs(texts: Iterable[str]) -> list["Input | InputError"]:
    """Texts as inputs; an empty or blank one is an InputError (it would embed as the mere
    start and end tokens, a vector that means nothing)."""
    return [Input.text(t) if t.strip() else InputError(f'"{t}"', "empty text") for t in texts]


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
    found.extend(text_inputs(texts))
    return found


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
    """What the Embedder needs from a cache (`bindcli.collections.store.Store` is one): raw float32 vectors
    by key, found in bulk and stored in bulk."""

    def cache_get(self, keys: Iterable[CacheKey]) -> dict[CacheKey, np.ndarray]: ...

    def cache_put(self, entries: Iterable[tuple[CacheKey, np.ndarray]]) -> None: ...


@dataclasses.dataclass(frozen=True)
class Job:
    """An input on its way through the embedder: its place in the caller's list and its
    content hash (the cache key and the manifests' identity)."""

    slot: int
    input: Input
    sha256: str


def model_id(config: ModelConfig, weights: Path) -> str:
    """Names the numbers a model computes: config name, a hash of its shape, and the weights
    (their recorded SHA-256 when `bind weights` fetched them, else size and mtime)."""
    from bindcli.weights import identifies, read_record

    stat = weights.stat()
    what = identifies(read_record(weights), stat.st_size)
    if what is None:
        what = hashlib.sha256(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{config_id(config)}:{what[:12]}"


def config_id(config: ModelConfig) -> str:
    """The start of a model id that names the config, its name and a hash of its shape: what
    a client without the weights can check of a server's model (`bindcli.embed.remote.served_model`)."""
    shape = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{config.name}:{shape[:8]}"


@dataclasses.dataclass(frozen=True)
class Model:
    """Which numbers are computed: a config and its weights file, resolved, with their id.

    Resolving needs no torch, so a caller can check a collection's model (or find that
    nothing needs embedding) before anything heavy is imported.
    """

    config: ModelConfig
    weights: Path
    id: str
    #: the server whose word the id is, for a client without the weights
    #: (`bindcli.embed.remote.served_model`); `weights` is then only the name of the server's file
    server: str | None = None

    @classmethod
    def resolve(
        cls,
        model_config: "str | Path | ModelConfig" = "imagebind_huge",
        weights: str | Path | None = None,
        *,
        download: bool = True,
        progress: "Progress | None" = None,
        notify: "Notify | None" = None,
    ) -> "Model":
        """The config by name or file, and the weights: `weights`, else `$BIND_WEIGHTS`,
        else the cached download of the config's published weights (fetched now if missing
        and allowed; `progress` and `notify` hear it, see `bindcli.weights.download`).

        `download=False` raises `WeightsNotDownloaded` instead of fetching them: a caller that
        can ask a server for the model (`bindcli.embed.remote.borrow`) need not download it first.
        """
        from bindcli import weights as weight_files

        config = model_config if isinstance(model_config, ModelConfig) else load_config(model_config)
        if download:
            path = weight_files.resolve(weights, config=config, progress=progress, notify=notify)
        else:
            path = weight_files.find(weights, config)
        return cls(config, path, model_id(config, path))

    def describe(self) -> str:
        """e.g. `imagebind_huge (imagebind_huge.pth)`: how collections name their model."""
        return f"{self.config.name} ({self.weights.name})"

    def vectors_id(self, options: "MediaOptions | None" = None) -> str:
        """What a collection of this model's vectors, loaded with `options`, is pinned to
        (`vectors_id`)."""
        return vectors_id(self.id, self.config, options)


def vectors_id(model: str, config: ModelConfig, options: "MediaOptions | None") -> str:
    """Names how vectors were made: the model id, plus each loading option that changes them
    (`+audio_upstream_quirks=False` for `--audio-mix mono`), so one collection never holds
    vectors made two ways and a server is used only when it makes them the run's way. With
    upstream's loading, the model id."""
    chosen = loading_options(config, options)
    if chosen is None:
        return model
    usual = dataclasses.asdict(loading_options(config, None) or type(chosen)())
    return model + "".join(
        f"+{k}={v}" for k, v in dataclasses.asdict(chosen).items() if v != usual[k]
    )


# --- the embedder --------------------------------------------------------------------------


class Embeds:
    """`embed` and `stream` in terms of `_results`: what the Embedder, a server's client
    (`bindcli.embed.remote.RemoteEmbedder`) and the Ray engine (`bindcli.embed.ray_engine.RayEmbedder`)
    share, so the commands take any of them."""

    def stream(
        self,
        inputs: Sequence[Input | InputError],
        progress: Callable[[int], None] = lambda n: None,
        *,
        hashes: Sequence[str | None] = (),
    ) -> Iterator[tuple[int, Embedding | InputError]]:
        """(position, result) for every input as soon as it is known: refusals first, then
        what `_results` yields for the rest, in the order it finishes them.

        `hashes[i]`, where given, is input i's content SHA-256 (a caller that hashed the
        file already), which spares reading it again.
        """
        refused = [(i, x) for i, x in enumerate(inputs) if isinstance(x, InputError)]
        progress(len(refused))
        yield from refused
        known = dict(enumerate(hashes))
        todo = [(i, x, known.get(i)) for i, x in enumerate(inputs) if isinstance(x, Input)]
        if todo:
            yield from self._results(todo, progress)

    def _results(
        self, todo: list[tuple[int, Input, str | None]], progress: Callable[[int], None]
    ) -> Iterator[tuple[int, Embedding | InputError]]:
        """(position, result) for each (position, input, known hash or None), reporting to
        `progress` as results come."""
        raise NotImplementedError

    def embed(
        self,
        inputs: "Sequence[Input | InputError | str | Path]" = (),
        texts: Sequence[str] = (),
        progress: Callable[[int], None] = lambda n: None,
        *,
        hashes: Sequence[str | None] = (),
    ) -> list[Embedding | InputError]:
        """One result per input (then per text), in order: an Embedding, or the InputError
        that stopped it. Inputs may be paths (kind from the extension) or `Input`s."""
        items = _as_inputs(inputs) + text_inputs(texts)
        results: list[Embedding | InputError | None] = [None] * len(items)
        for i, result in self.stream(items, progress, hashes=hashes):  # type: ignore[attr-defined]
            results[i] = result
        return results  # type: ignore[return-value]


class Embedder(Embeds):
    """Embeds inputs with one model at one placement; a context manager that closes the
    cache it opened and frees the towers."""

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
        encoder: Encoder | None = None,
        owns_cache: bool = False,
        known_id: str | None = None,
    ) -> None:
        self.config = config
        self.weights = weights
        self.placement = placement
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.options = loading_options(config, options)
        self.cache = cache
        self.encoder = encoder or LocalEncoder(config, weights, placement)
        self.model_id = known_id or model_id(config, weights)  # `Model.resolve` knows it
        self._owns_cache = owns_cache

    @property
    def vectors_id(self) -> str:
        """How this embedder's vectors are made (`vectors_id`)."""
        return vectors_id(self.model_id, self.config, self.options)

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the cache store `open_embedder` opened, and free the towers."""
        if self._owns_cache and self.cache is not None:
            self.cache.close()  # type: ignore[attr-defined]
            self.cache = None
        close = getattr(self.encoder, "close", None)
        if close is not None:
            close()

    def _results(
        self, todo: list[tuple[int, Input, str | None]], progress: Callable[[int], None]
    ) -> Iterator[tuple[int, Embedding | InputError]]:
        """Unreadable files, then cache hits, then each encoded batch, from one loader
        pipeline however many inputs."""
        jobs, failed = self._hash(todo)
        progress(len(failed))
        yield from failed
        jobs, hits = self._from_cache(jobs)
        progress(len(hits))
        yield from hits
        if jobs:
            towers = frozenset(job.input.kind.tower for job in jobs)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                ready = pool.submit(self.encoder.prepare, towers)  # loads while files decode
                for done in self._encode(jobs, ready):
                    progress(len(done))
                    yield from done

    def _hash(
        self, todo: list[tuple[int, Input, str | None]]
    ) -> tuple[list[Job], list[tuple[int, InputError]]]:
        """Content hashes not already known (on loader threads); inputs that cannot be read
        are split off as errors."""

        def digest(inp: Input, sha: str | None) -> str | InputError:
            if sha is not None:
                return sha
            if inp.literal:
                return sha256_text(inp.source)
            if is_uri(inp.source):
                return InputError(inp.source, LOCAL_URI)
            try:
                return sha256_file(inp.source)
            except OSError as exc:
                return InputError(inp.source, exc.strerror or str(exc))

        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            digests = list(pool.map(digest, [inp for _, inp, _ in todo], [sha for *_, sha in todo]))
        jobs, failed = [], []
        for (i, inp, _), d in zip(todo, digests):
            if isinstance(d, InputError):
                failed.append((i, d))
            else:
                jobs.append(Job(i, inp, d))
        return jobs, failed

    def cache_key(self, inp: Input, sha: str) -> CacheKey:
        """The embedding-cache key of `inp` with content hash `sha` under this embedder."""
        options = self.options.cache_text(inp.kind.value) if self.options else ""
        return CacheKey(
            sha, self.model_id, PREPROCESSING_VERSION, self.placement.precision,
            inp.kind.value, options,
        )

    def _from_cache(self, jobs: list[Job]) -> tuple[list[Job], list[tuple[int, Embedding]]]:
        """(what is left to encode, what the cache had)."""
        if self.cache is None or not jobs:
            return jobs, []
        keys = [self.cache_key(job.input, job.sha256) for job in jobs]
        found = self.cache.cache_get(keys)
        left, hits = [], []
        for job, key in zip(jobs, keys):
            vector = found.get(key)
            if vector is None:
                left.append(job)
            else:
                hits.append((job.slot, Embedding(job.input, job.sha256, np.asarray(vector, np.float32), cached=True)))
        return left, hits

    def _tensors(self, jobs: list[Job]) -> Iterator[tuple[Job, object]]:
        """(job, tensor or InputError) for every job: texts tokenized here, files decoded on
        loader threads with bounded look-ahead."""
        from bindcli import media

        texts = [job for job in jobs if job.input.literal]
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            yield from zip(chunk, media.tokenize([job.input.source for job in chunk]))
        files = [job for job in jobs if not job.input.literal]
        # Decoding runs on while a batch encodes only if enough files may wait decoded: with
        # kinds interleaved, filling one batch can take many files (measured: a look-ahead of
        # 4 left the loaders idle for most of each forward pass).
        loaded = media.load_many(
            ((job.input.source, job.input.kind) for job in files),
            self.options,
            workers=self.workers,
            lookahead=2 * max(self.workers, self.batch_size),
        )
        with contextlib.closing(loaded):
            for n, tensor in loaded:
                yield files[n], tensor

    def _encode(
        self, jobs: list[Job], ready: concurrent.futures.Future
    ) -> Iterator[list[tuple[int, Embedding | InputError]]]:
        """Results a batch at a time, as they complete. Batches form by (tower, shape): images
        and videos share a tower but not a shape, nor do IMU recordings of different lengths."""
        pending: dict[tuple, list[tuple[Job, object]]] = {}
        for job, tensor in self._tensors(jobs):
            if isinstance(tensor, InputError):
                yield [(job.slot, tensor)]
                continue
            key = (job.input.kind.tower, tuple(tensor.shape))  # type: ignore[attr-defined]
            batch = pending.setdefault(key, [])
            batch.append((job, tensor))
            if len(batch) == self.batch_size:
                ready.result()
                yield self._run(key[0], pending.pop(key))
        for (tower, _), batch in pending.items():
            ready.result()
            yield self._run(tower, batch)

    def _run(self, tower: str, batch: list[tuple[Job, object]]) -> list[tuple[int, Embedding | InputError]]:
        """Encode one batch and write it to the cache before anyone sees it, so that work
        survives a caller that stops (or is killed) before committing it elsewhere."""
        out = self.encoder.encode(tower, [t for _, t in batch])  # type: ignore[misc]
        done = [(job.slot, Embedding(job.input, job.sha256, vector)) for (job, _), vector in zip(batch, out)]
        if self.cache is not None:
            self.cache.cache_put((self.cache_key(e.input, e.sha256), e.raw) for _, e in done)
        return done  # type: ignore[return-value]


def loading_options(config: ModelConfig, options: "MediaOptions | None") -> "MediaOptions | None":
    """The loading options, with the log-mel size this config's audio tower takes (None, the
    defaults, stays None for ImageBind's own size, so cache keys stay as they were)."""
    size = (config.audio_num_mel_bins, config.audio_target_len)
    if options is None and size == (ModelConfig.audio_num_mel_bins, ModelConfig.audio_target_len):
        return None
    from bindcli.media.options import MediaOptions

    return dataclasses.replace(options or MediaOptions(), audio_mel_bins=size[0], audio_frames=size[1])


def _as_inputs(items: "Sequence[Input | InputError | str | Path]") -> "list[Input | InputError]":
    paths = [x for x in items if not isinstance(x, (Input, InputError))]
    if not paths:
        return list(items)  # type: ignore[arg-type]
    gathered = iter(gather(paths))
    return [x if isinstance(x, (Input, InputError)) else next(gathered) for x in items]


def open_embedder(
    model_config: "str | Path | ModelConfig" = "imagebind_huge",
    weights: str | Path | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    cache: "bool | str | Path | Store" = True,
    options: "MediaOptions | None" = None,
    workers: int | None = None,
    progress: "Progress | None" = None,
    notify: "Notify | None" = None,
    model: Model | None = None,
) -> Embedder:
    """A ready Embedder: the one place config, weights, device, precision and cache meet.

    `cache`: True for the default collection file's embedding cache, a path for another
    file, a `Store` to share one the caller owns, False for none. Use it as a context manager
    (or call `close()`) to close the cache file it opened. `model`, when the caller resolved
    it already (to check a collection first), spares resolving it again.

        with bindcli.open_embedder() as embedder:
            dog, bark = embedder.embed(["dog.jpg", "bark.wav"])
    """
    from bindcli._util.folders import default_db_path
    from bindcli.collections.store import Store

    if model is None:  # the config first: a typo fails before torch loads or weights download
        config = model_config if isinstance(model_config, ModelConfig) else load_config(model_config)
    elif model.server is not None:
        raise WeightsError(f"{model.describe()} is the model of the server at {model.server}; "
                           "there are no local weights to load it from")
    placement = place(device, precision)
    model = model or Model.resolve(config, weights, progress=progress, notify=notify)
    owns = cache is True or isinstance(cache, (str, Path))
    store = Store(default_db_path() if cache is True else cache) if owns else (cache or None)
    return Embedder(
        model.config, model.weights, placement, batch_size=batch_size, workers=workers,
        options=options, cache=store, owns_cache=owns, known_id=model.id,  # type: ignore[arg-type]
    )
