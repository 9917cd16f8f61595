"""Batching across requests: the embedder's stages (`bindcli.embed.stages`) driven for any
number of concurrent requests. Inputs are hashed, looked up in the embedder's cache and
prepared on a loader pool, then encoded together by batch key on the one model thread, a
batch as soon as it is full or its oldest input has waited `max_wait` seconds; what was
encoded goes to the cache on a thread of its own, so the model thread never waits for it.

Every input has its own `Future`: a bad input settles only its own; a request whose client
went away cancels its futures, and inputs not yet encoded are then dropped where they stand.
The warnings raised while an input is decoded travel with its Future (`Answer.warned`), so
that they reach the client that sent it, and no other.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bindcli._util.chunks import batched
from bindcli.embed import stages
from bindcli.errors import InputError
from bindcli.serve.caught import Caught, caught
from bindcli.serve.metrics import Metrics

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.inputs import Input
    from bindcli.embed.stages import Embedding

_STOP = object()


class Answer(concurrent.futures.Future):
    """The Future of one input's Embedding (or InputError), and the warnings raised while it
    was decoded, complete once it is settled."""

    def __init__(self) -> None:
        super().__init__()
        self.warned: list[Caught] = []


@dataclasses.dataclass
class _Item:
    input: "Input"
    name: str  # how errors name the input (the client's name, not a temporary file)
    use_cache: bool
    future: Answer
    arrived: float = dataclasses.field(default_factory=time.monotonic)
    sha256: str = ""


class Batcher:
    """Turns inputs into Futures of their Embedding (or InputError), batching across callers."""

    def __init__(
        self,
        embedder: "Embedder",
        *,
        max_batch: int = 16,
        max_wait: float = 0.005,
        workers: int = 4,
        metrics: Metrics | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait)
        self.metrics = metrics or Metrics()
        # requests take turns on the loaders, an input each: a request of a thousand files
        # does not hold up the one-image requests that arrive after it
        self._todo: dict[int, collections.deque[_Item]] = {}
        self._turns = threading.Condition()
        self._closing = False
        self._requests = itertools.count()
        self._loaders = [threading.Thread(target=self._load_loop, name=f"bind-load-{n}", daemon=True)
                         for n in range(max(1, workers))]
        # decoded tensors waiting for the model are bounded, however many requests arrive
        self._room = threading.BoundedSemaphore(max(4 * self.max_batch, 2 * workers))
        # the embedder's cache, looked up on the loaders and stored to from this thread
        self._storing = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bind-cache")
        self._ready: queue.Queue = queue.Queue()
        self._model_thread = threading.Thread(target=self._encode_loop, name="bind-model", daemon=True)
        self._model_thread.start()
        for loader in self._loaders:
            loader.start()

    @property
    def alive(self) -> bool:
        """The model thread still takes work (what `/health` reports)."""
        return self._model_thread.is_alive()

    def submit(self, inputs: Sequence[tuple["Input", str]], *, use_cache: bool = True) -> list[Answer]:
        """One Future per (input, name), in order; cancel one to drop its input."""
        items = [_Item(inp, name, use_cache and self.embedder.cache is not None, Answer())
                 for inp, name in inputs]
        if items:
            self.metrics.queue(len(items))
            with self._turns:
                self._todo[next(self._requests)] = collections.deque(items)
                self._turns.notify_all()
        return [item.future for item in items]

    def preload(self, towers: Sequence[str]) -> None:
        """Load `towers` now rather than on their first input."""
        self.embedder.encoder.prepare(frozenset(towers))

    def close(self) -> None:
        """Finish what is queued (and stored), then stop the threads; the embedder, and so
        its cache, stays open for whoever opened it."""
        with self._turns:
            self._closing = True
            self._turns.notify_all()
        for loader in self._loaders:
            loader.join()
        self._ready.put(_STOP)
        self._model_thread.join()
        self._storing.shutdown(wait=True)

    # --- loader threads ----------------------------------------------------------------------

    def _load_loop(self) -> None:
        while (item := self._next_item()) is not None:
            self._prepare(item)

    def _next_item(self) -> _Item | None:
        """The next input of the request whose turn it is (None once closing and drained)."""
        with self._turns:
            while not self._todo and not self._closing:
                self._turns.wait()
            if not self._todo:
                return None
            request, items = next(iter(self._todo.items()))
            item = items.popleft()
            del self._todo[request]
            if items:  # to the back of the line
                self._todo[request] = items
            return item

    def _prepare(self, item: _Item) -> None:
        """Hash, answer from the cache, else decode and hand to the model thread; whatever
        goes wrong settles this input alone (a Future nobody settles would hang its request)."""
        try:
            self._prepare_one(item)
        except Exception as exc:
            self._settle(item, InputError(item.name, f"could not be read ({type(exc).__name__}: {exc})"))

    def _prepare_one(self, item: _Item) -> None:
        if item.future.cancelled():
            return self._drop(item)
        inp = item.input
        sha = stages.digest(inp)
        if isinstance(sha, InputError):
            return self._settle(item, InputError(item.name, sha.reason))
        item.sha256 = sha
        if item.use_cache and (hit := self.embedder.look_up([(inp, sha)])[0]) is not None:
            return self._settle(item, hit)
        self._room.acquire()  # released when the model takes it, or here if it never will
        try:
            with caught() as item.future.warned:
                tensor = None if item.future.cancelled() else stages.prepare(inp, self.embedder.options)
        except BaseException:
            self._room.release()
            raise
        if tensor is None or isinstance(tensor, InputError) or item.future.cancelled():
            self._room.release()
            if isinstance(tensor, InputError):
                return self._settle(item, InputError(item.name, tensor.reason))
            return self._drop(item)
        self._ready.put((stages.batch_key(inp.kind, tensor), item, tensor))

    # --- the model thread --------------------------------------------------------------------

    def _encode_loop(self) -> None:
        """Group ready inputs by batch key; encode a group when full or when its oldest
        input has waited `max_wait`; on stop, encode what is left."""
        pending: dict[stages.BatchKey, list[tuple[_Item, object]]] = {}
        since: dict[stages.BatchKey, float] = {}
        stopping = False
        while not stopping or pending:
            if not stopping:
                timeout = None if not since else max(0.0, min(since.values()) + self.max_wait - time.monotonic())
                try:
                    entry = self._ready.get(timeout=timeout)
                except queue.Empty:
                    entry = None
                while entry is not None:
                    if entry is _STOP:
                        stopping = True
                        break
                    key, item, tensor = entry
                    pending.setdefault(key, []).append((item, tensor))
                    since.setdefault(key, time.monotonic())
                    try:
                        entry = self._ready.get_nowait()
                    except queue.Empty:
                        entry = None
            now = time.monotonic()
            due = [
                k for k in sorted(since, key=since.get)  # type: ignore[arg-type]
                if stopping or len(pending[k]) >= self.max_batch or now - since[k] >= self.max_wait
            ]
            for key in due:
                group = pending.pop(key)
                del since[key]
                for batch in batched(group, self.max_batch):
                    try:
                        self._run(key, batch)
                    except Exception as exc:  # never leave a request waiting on a dead thread
                        for item, _ in batch:
                            self._settle(item, InputError(item.name, f"could not be encoded ({type(exc).__name__}: {exc})"))

    def _run(self, key: stages.BatchKey, group: list[tuple[_Item, object]]) -> None:
        """Encode one batch of the inputs still wanted."""
        live = []
        for item, tensor in group:
            self._room.release()
            if item.future.set_running_or_notify_cancel():
                live.append((item, tensor))
            else:
                self._drop(item)
        if live:
            self._encode(key, live)

    def _encode(self, key: stages.BatchKey, live: list[tuple[_Item, object]]) -> None:
        """A batch that fails is retried input by input, so only the input at fault gets
        the error."""
        started = time.monotonic()
        try:
            vectors = stages.encode(self.embedder.encoder, key, [t for _, t in live])  # type: ignore[misc]
        except Exception as exc:
            if len(live) == 1:
                item = live[0][0]
                return self._settle(item, InputError(item.name, f"could not be encoded ({type(exc).__name__}: {exc})"))
            for one in live:
                self._encode(key, [one])
            return
        self.metrics.batch(len(live), [started - item.arrived for item, _ in live], time.monotonic() - started)
        done = [(item, stages.finish(item.input, item.sha256, vector)) for (item, _), vector in zip(live, vectors)]
        for item, embedding in done:
            self._settle(item, embedding)
        stored = [e for item, e in done if item.use_cache]
        if stored:
            self._storing.submit(self.embedder.remember, stored)

    # --- settling ------------------------------------------------------------------------------

    def _settle(self, item: _Item, result: "Embedding | InputError") -> None:
        self.metrics.queue(-1)
        failed = isinstance(result, InputError)
        self.metrics.input_done(item.input.kind.value, failed=failed, cached=not failed and result.cached)  # type: ignore[union-attr]
        try:
            if failed:
                item.future.set_exception(result)  # type: ignore[arg-type]
            else:
                item.future.set_result(result)
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile: nobody is waiting
            pass

    def _drop(self, item: _Item) -> None:
        self.metrics.queue(-1)
        self.metrics.dropped_input()
