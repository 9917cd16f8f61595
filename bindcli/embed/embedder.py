"""From inputs to vectors: the `Embedder`, and `open_embedder`, the one way to build it.

Every command (and a Python user, a server, a cluster worker) embeds through an `Embedder`:
files decode on loader threads while the model loads, batches form across files of the same
kind and shape, only the towers the inputs need are built, a bad input becomes an
`InputError` in its slot instead of stopping the run, and an optional cache (content hash +
model + preprocessing + precision) skips work already done. The Embedder drives the stages
of `bindcli.embed.stages` in this process. This module imports no torch (choosing the device
does, in `open_embedder`), and towers load only once something must be encoded.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bindcli.embed import stages
from bindcli.embed.encoder import Encoder, LocalEncoder
from bindcli.embed.identity import CacheKey, Model, cache_key, loading_options, model_id, vectors_id
from bindcli.embed.inputs import Input, as_inputs, text_inputs
from bindcli.embed.stages import Embedding, EmbeddingCache, Segments
from bindcli.errors import InputError, WeightsError
from bindcli.model.config import ModelConfig, load_config
from bindcli.model.placement import Placement, place

if TYPE_CHECKING:  # pragma: no cover
    from bindcli._util.hashing import Progress
    from bindcli.collections.store import Store
    from bindcli.media import MediaOptions
    from bindcli.media.segments import Segment
    from bindcli.model.adapter import Adapter
    from bindcli.weights import Notify


@dataclasses.dataclass(frozen=True)
class Job:
    """An input on its way through the embedder: its place in the caller's list and its
    content hash (the cache key and the manifests' identity)."""

    slot: int
    input: Input
    sha256: str


class BaseEmbedder:
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
        items = as_inputs(inputs) + text_inputs(texts)
        results: list[Embedding | InputError | None] = [None] * len(items)
        for i, result in self.stream(items, progress, hashes=hashes):
            results[i] = result
        return results  # type: ignore[return-value]


class Embedder(BaseEmbedder):
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
        adapter: "Adapter | None" = None,
    ) -> None:
        self.config = config
        self.weights = weights
        self.placement = placement
        self.batch_size = max(1, batch_size)
        self.workers = workers or stages.LOADERS
        self.options = loading_options(config, options)
        self.cache = cache
        self.adapter = adapter  # checked against the base model by `Model.adapted`
        self.encoder = encoder or LocalEncoder(config, weights, placement, adapter)
        self.model_id = known_id or model_id(config, weights)  # `Model.resolve` knows it
        self._owns_cache = owns_cache
        #: hears the seconds of media each encoded batch of segments covers (a progress bar)
        self.media_progress: Callable[[float], None] = lambda seconds: None
        # a server looks up on its loader threads and stores from another: one at a time
        self._cache_lock = threading.Lock()

    @property
    def vectors_id(self) -> str:
        """How this embedder's vectors are made (`vectors_id`)."""
        return vectors_id(self.model_id, self.config, self.options, self.adapter)

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the cache store `open_embedder` opened, and free the towers."""
        with self._cache_lock:
            if self._owns_cache and self.cache is not None:
                self.cache.close()  # type: ignore[attr-defined]
                self.cache = None
        close = getattr(self.encoder, "close", None)
        if close is not None:
            close()

    def cache_key(self, inp: Input, sha: str) -> CacheKey:
        """The embedding-cache key of `inp` with content hash `sha` under this embedder."""
        return cache_key(inp, sha, self.model_id, self.placement.precision, self.options, self.adapter)

    def look_up(self, found: Sequence[tuple[Input, str]]) -> list[Embedding | None]:
        """The cache lookup stage: each (input, content hash)'s cached Embedding, or None.
        Safe from any thread."""
        with self._cache_lock:
            if self.cache is None:
                return [None] * len(found)
            return stages.look_up(self.cache, self.cache_key, found)

    def remember(self, done: Iterable[Embedding]) -> None:
        """The cache store stage (if this embedder has a cache). Safe from any thread."""
        with self._cache_lock:
            if self.cache is not None:
                stages.remember(self.cache, self.cache_key, done)

    def _results(
        self, todo: list[tuple[int, Input, str | None]], progress: Callable[[int], None]
    ) -> Iterator[tuple[int, Embedding | InputError]]:
        """Unreadable files, then cache hits, then each encoded batch, from one loader
        pipeline however many inputs."""
        shas = stages.digests([x for _, x, _ in todo], [sha for *_, sha in todo], self.workers)
        failed = [(i, sha) for (i, _, _), sha in zip(todo, shas) if isinstance(sha, InputError)]
        jobs = [Job(i, x, sha) for (i, x, _), sha in zip(todo, shas) if not isinstance(sha, InputError)]
        progress(len(failed))
        yield from failed
        if self.cache is not None and jobs:
            cached = self.look_up([(job.input, job.sha256) for job in jobs])
            hits = [(job.slot, hit) for job, hit in zip(jobs, cached) if hit is not None]
            jobs = [job for job, hit in zip(jobs, cached) if hit is None]
            progress(len(hits))
            yield from hits
        if jobs:
            towers = frozenset(stages.tower_of(job.input) for job in jobs)
            whole = [job for job in jobs if job.input.window is None]
            timed = [job for job in jobs if job.input.window is not None]
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                ready = pool.submit(self.encoder.prepare, towers)  # loads while files decode
                for done in itertools.chain(
                    self._encode(whole, ready) if whole else (), self._encode_segments(timed, ready)
                ):
                    progress(len(done))
                    yield from done

    def _encode(
        self, jobs: list[Job], ready: concurrent.futures.Future
    ) -> Iterator[list[tuple[int, Embedding | InputError]]]:
        """Results a batch at a time, as they complete: a batch is encoded once it holds
        `batch_size` inputs of one batch key, the rest at the end."""
        # Decoding runs on while a batch encodes only if enough files may wait decoded: with
        # kinds interleaved, filling one batch can take many files (measured: a look-ahead of
        # 4 left the loaders idle for most of each forward pass).
        tensors = stages.prepare_many(
            [job.input for job in jobs], self.options, workers=self.workers,
            lookahead=2 * max(self.workers, self.batch_size), texts_at_once=self.batch_size,
        )
        pending: dict[stages.BatchKey, list[tuple[Job, object]]] = {}
        for n, tensor in tensors:
            job = jobs[n]
            if isinstance(tensor, InputError):
                yield [(job.slot, tensor)]
                continue
            key = stages.batch_key(job.input.kind, tensor)
            batch = pending.setdefault(key, [])
            batch.append((job, tensor))
            if len(batch) == self.batch_size:
                ready.result()
                yield self._run(key, pending.pop(key))
        for key, batch in pending.items():
            ready.result()
            yield self._run(key, batch)

    def _encode_segments(
        self, jobs: list[Job], ready: concurrent.futures.Future
    ) -> Iterator[list[tuple[int, Segments | InputError]]]:
        """Files read in segments, each as a whole once its last window is encoded: windows
        decode as streams on the loader threads while batches of `batch_size` windows (of any
        files sharing a batch key) encode, so a long file never waits decoded whole."""
        if not jobs:
            return
        segments = stages.prepare_segments(
            [job.input for job in jobs], self.options, workers=self.workers,
            lookahead=2 * max(self.workers, self.batch_size),
        )
        found: dict[int, list[tuple[float, float, object]]] = {n: [] for n in range(len(jobs))}
        waiting = dict.fromkeys(range(len(jobs)), 0)  # windows decoded, not yet encoded
        ended: set[int] = set()
        pending: dict[stages.BatchKey, list[tuple[int, Segment]]] = {}
        covered = [0.0] * len(jobs)  # how far into each file the encoded windows reach

        def complete() -> list[tuple[int, Segments | InputError]]:
            done = [n for n in ended if waiting[n] == 0]
            out = []
            for n in done:
                ended.discard(n)
                job = jobs[n]
                out.append((job.slot, stages.finish_segments(job.input, job.sha256, found.pop(n))))
            self.remember([s for _, s in out])
            return out

        def run(key: stages.BatchKey) -> list[tuple[int, Segments | InputError]]:
            batch = pending.pop(key)
            ready.result()
            vectors = stages.encode(self.encoder, key, [seg.tensor for _, seg in batch])
            advanced = 0.0
            for (n, seg), vector in zip(batch, vectors):
                found[n].append((seg.start, seg.end, vector))
                waiting[n] -= 1
                advanced += max(seg.end - covered[n], 0.0)
                covered[n] = max(covered[n], seg.end)
            self.media_progress(advanced)
            return complete()

        with contextlib.closing(segments):
            for n, item in segments:
                if isinstance(item, InputError):
                    found.pop(n)
                    yield [(jobs[n].slot, item)]
                    continue
                if item is None:
                    ended.add(n)
                    if done := complete():
                        yield done
                    continue
                key = stages.batch_key(jobs[n].input.kind, item.tensor, jobs[n].input.reading)
                pending.setdefault(key, []).append((n, item))
                waiting[n] += 1
                if len(pending[key]) == self.batch_size:
                    if done := run(key):
                        yield done
        for key in list(pending):
            if done := run(key):
                yield done

    def _run(self, key: stages.BatchKey, batch: list[tuple[Job, object]]) -> list[tuple[int, Embedding | InputError]]:
        """Encode one batch and write it to the cache before anyone sees it, so that work
        survives a caller that stops (or is killed) before committing it elsewhere."""
        out = stages.encode(self.encoder, key, [t for _, t in batch])  # type: ignore[misc]
        done = [stages.finish(job.input, job.sha256, vector) for (job, _), vector in zip(batch, out)]
        self.remember(done)
        return [(job.slot, e) for (job, _), e in zip(batch, done)]


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
    adapter: "str | Path | Adapter | None" = None,
) -> Embedder:
    """A ready Embedder: the one place config, weights, device, precision and cache meet.

    `cache`: True for the default collection file's embedding cache, a path for another
    file, a `Store` to share one the caller owns, False for none. Use it as a context manager
    (or call `close()`) to close the cache file it opened. `model`, when the caller resolved
    it already (to check a collection first), spares resolving it again. `adapter`: a file
    from `bind tune` (else `model`'s), tuned on this model, put on its tower.

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
    model = model.adapted(adapter)
    owns = cache is True or isinstance(cache, (str, Path))
    store = Store(default_db_path() if cache is True else cache) if owns else (cache or None)
    return Embedder(
        model.config, model.weights, placement, batch_size=batch_size, workers=workers,
        options=options, cache=store, owns_cache=owns, known_id=model.id,  # type: ignore[arg-type]
        adapter=model.adapter,
    )
