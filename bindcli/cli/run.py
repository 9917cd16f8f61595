"""`Run`, one command run, and the list of paths `-` reads from stdin.

The model, the server choice and the embedder are each settled once, on first use, in that
order of dependence: without local weights the model is the server's, so the server is chosen
first (`cli/connect.py`); otherwise it is chosen when the run first needs its embedder.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import typer

from bindcli.cli.connect import choose_server
from bindcli.cli.output import Output
from bindcli.errors import InputError
from bindcli.model.placement import Precision

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.cli.options import Common
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.identity import Model
    from bindcli.embed.inputs import Input
    from bindcli.embed.remote import RemoteEmbedder
    from bindcli.embed.stages import Embedding
    from bindcli.errors import WeightsNotDownloaded
    from bindcli.query import Query


def read_path_list(stream: Iterable[str] | None = None) -> list[str]:
    """Paths from stdin, newline- or NUL-separated (`find -print0`), blank lines skipped; read
    as bytes, so a name that is not UTF-8 arrives as `os.fsdecode` makes it."""
    if stream is None:
        stream = sys.stdin
        data = os.fsdecode(stream.buffer.read()) if hasattr(stream, "buffer") else stream.read()
    else:
        data = stream.read()
    sep = "\0" if "\0" in data else "\n"
    return [line.rstrip("\r") for line in data.split(sep) if line.strip("\r\n")]


class Run:
    """One command run: its options, its one output sink, its embedder, and whether anything
    failed (which makes the exit status 1)."""

    def __init__(self, common: "Common", out: Output) -> None:
        self.common = common
        self.out = out
        self.failed = 0
        self._model: Model | None = None
        self._embedder: Embedder | RemoteEmbedder | None = None
        self._local: Embedder | None = None
        self._server: RemoteEmbedder | None = None
        self._server_chosen = False
        #: the command runs the encoder itself (`locate`'s crops): its model comes from local
        #: weights, never from a server's word
        self.needs_weights = False
        #: builds the embedder elsewhere than in this process (`--engine ray`, cli/engine.py)
        self.engine: Callable[[Run], Embedder] | None = None
        #: embeds in this process whatever server runs (files read in `--segments`)
        self.local_only = False

    def inputs(
        self, paths: Sequence[str] = (), texts: Sequence[str] = ()
    ) -> "list[Input | InputError]":
        """Files (`-` reads a list of paths from stdin) then texts, kinds detected or --as."""
        from bindcli.embed.inputs import gather

        if paths.count("-") > 1:
            raise typer.BadParameter("'-' (read paths from stdin) may be given once")
        expanded: list[str] = []
        for path in paths:
            expanded.extend(read_path_list() if path == "-" else [path])
        if "-" in paths and not expanded and not texts:
            raise typer.BadParameter("no inputs: stdin held no paths", param_hint="FILE")
        return gather(expanded, texts, self.common.as_kind)

    @property
    def model(self) -> "Model":
        """The config and weights the options name, resolved without importing torch: enough
        to check a collection's model or compute cache keys' ids. Weights not downloaded yet
        are not, while a server answers: the model is then the server's (`server`)."""
        if self._model is None:
            from bindcli.embed.identity import Model
            from bindcli.errors import WeightsNotDownloaded

            c = self.common
            try:
                self._model = Model.resolve(c.model_config, c.weights, download=False, adapter=c.adapter)
            except WeightsNotDownloaded as missing:
                served = self.server(missing) if self.engine is None and not self.needs_weights else None
                self._model = served.model if served is not None else self._downloaded()
        return self._model

    def _downloaded(self) -> "Model":
        """The model, its weights fetched first (a progress bar on a terminal)."""
        from bindcli.embed.identity import Model

        c = self.common
        with self.out.byte_progress() as progress:
            return Model.resolve(c.model_config, c.weights, progress=progress, notify=self.out.warn,
                                 adapter=c.adapter)

    def server(self, here: "Model | WeightsNotDownloaded") -> "RemoteEmbedder | None":
        """This run's server, chosen once (`connect.choose_server`: one probe, one note);
        `here` is the local model, or why there is none. Later calls return the first answer."""
        if not self._server_chosen:
            self._server_chosen = True
            self._server = choose_server(self.common, self.out, here)
            if self._server is not None and not self.common.no_cache:
                from bindcli._util.folders import default_db_path
                from bindcli.collections.store import Store

                self._server.cache = Store(default_db_path())  # looked up here, not sent
            if self._server is not None and not isinstance(here, Exception):
                # a server that goes away mid-run: what it did not answer is embedded here
                self._server.fallback = lambda: self.local_embedder
                self._server.notify = self.out.note
        return self._server

    @property
    def embedder(self) -> "Embedder | RemoteEmbedder":
        """The Ray engine's (--engine ray), else a running server's when one computes what
        this run would (unless --no-server), else this process's `local_embedder`; a note
        says which."""
        if self._embedder is None:
            if self.engine is not None:
                self._embedder = self.engine(self)
            elif self.local_only:
                self._embedder = self.local_embedder
            else:
                self._embedder = self.server(self.model) or self.local_embedder
        return self._embedder

    @property
    def local_embedder(self) -> "Embedder":
        """This process's embedder, built on first use through `open_embedder`, with a note
        of what `auto` chose (what `locate` uses, which scores crops with the encoder)."""
        if self._local is None:
            from bindcli.embed.embedder import open_embedder

            c = self.common
            with self.out.byte_progress() as progress:
                embedder = open_embedder(
                    c.model_config, c.weights, model=self._model, device=c.device,
                    precision=c.precision.value, batch_size=c.batch_size, cache=not c.no_cache,
                    progress=progress, notify=self.out.warn, options=c.media_options,
                    adapter=c.adapter if self._model is None else None,
                )
            self._local = embedder
            if embedder.placement.warning:
                self.out.warn(embedder.placement.warning)
            if c.device == "auto" or c.precision is Precision.AUTO:
                self.out.note(f"{embedder.config.name} on {embedder.placement.describe()}")
        return self._local

    @property
    def vectors_id(self) -> str:
        """The id collections are pinned to: the model's, plus `--adapter` and `--audio-mix
        mono` if given."""
        return self.model.vectors_id(self.common.media_options)

    def close(self) -> None:
        """Close the embedders' cache files and free the towers."""
        if self._local is not None:
            self._local.close()
        if self._server is not None:
            self._server.close()

    def embed(self, inputs: "Sequence[Input | InputError]", label: str = "Embedding") -> "list[Embedding | None]":
        """Results aligned with `inputs`: None where an input failed (already reported)."""
        results: list[Embedding | None] = [None] * len(inputs)
        for i, embedding in self.stream(inputs, label):
            results[i] = embedding
        return results

    def stream(
        self, inputs: "Sequence[Input | InputError]", label: str = "Embedding"
    ) -> "Iterator[tuple[int, Embedding]]":
        """(position, embedding) in input order, each as soon as it and every input before it
        are done (so rows can be written while later batches encode); a failed input is
        reported on stderr as it fails, and skipped."""
        if all(isinstance(x, InputError) for x in inputs):  # nothing to load a model for
            self.failed += self.out.failed(inputs)  # type: ignore[arg-type]
            return
        embedder = self.embedder
        done: dict[int, Embedding | None] = {}
        ahead = 0  # the next position to hand out
        with self._progress(inputs, label, embedder) as advance:
            for i, result in embedder.stream(inputs, advance):
                if isinstance(result, InputError):
                    self.failed += self.out.failed([result])
                    result = None
                done[i] = result
                while ahead in done:
                    embedding = done.pop(ahead)
                    if embedding is not None:
                        yield ahead, embedding
                    ahead += 1

    @contextlib.contextmanager
    def _progress(
        self, inputs: "Sequence[Input | InputError]", label: str, embedder: object
    ) -> "Iterator[Callable[..., None]]":
        """The bar of inputs done; with files read in segments, a bar of the seconds of
        media done instead (their lengths by metadata), which long files move steadily."""
        timed = [x for x in inputs if not isinstance(x, InputError) and x.window is not None]
        if not timed or not hasattr(embedder, "media_progress"):
            with self.out.progress(len(inputs), label) as advance:
                yield advance
            return
        from bindcli.media.segments import duration

        total = sum(duration(x.source, x.kind) or 0.0 for x in timed)
        with self.out.progress(max(round(total), 2), f"{label} (seconds of media)") as advance:
            embedder.media_progress = advance  # type: ignore[attr-defined]
            try:
                yield lambda n, status=None: None
            finally:
                embedder.media_progress = lambda seconds: None  # type: ignore[attr-defined]

    def query_vector(self, parsed: "Query", label: str = "Embedding") -> "np.ndarray | None":
        """The query's combined vector, or None when one of its terms failed (already
        reported: without it there is no query)."""
        results = self.embed(parsed.inputs(self.common.as_kind), label)
        if any(r is None for r in results):
            return None
        return parsed.vector(results)  # type: ignore[arg-type]
