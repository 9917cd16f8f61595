"""What every command shares: the common options, input gathering, embedding, exit codes.

`@command` gives a command function the common options (declared once, here) and runs it
inside one error boundary: an expected error (`BindError`) becomes one stderr line and an exit
code, never a traceback (`BIND_DEBUG=1` shows it). Nothing here imports torch at import time,
so `bind --help` and shell completion stay instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli.errors import BindError, InputError, QueryError, UsageError
from bindcli.modality import Kind
from bindcli.cli.output import Output
from bindcli._util.paths import path_text
from bindcli.model.placement import Precision

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.media.options import MediaOptions
    from bindcli.query import Query
    from bindcli.embed.remote import Address, RemoteEmbedder
    from bindcli.embed.embedder import Embedder, Embedding, Input, Model

#: exit statuses: all inputs done / some inputs (or the run) failed / the command line is wrong
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

OPTIONS_PANEL = "Model and runtime"


def _complete_config(incomplete: str) -> list[str]:
    from bindcli.model.config import builtin_names

    return [n for n in builtin_names() if n.startswith(incomplete)]


def _complete_device(incomplete: str) -> list[str]:
    return [d for d in ("auto", "cpu", "cuda", "cuda:0", "mps") if d.startswith(incomplete)]


class AudioMix(str, enum.Enum):
    """How a recording's channels reach the audio tower (`MediaOptions.audio_upstream_quirks`)."""

    UPSTREAM = "upstream"
    MONO = "mono"


@dataclasses.dataclass(frozen=True)
class Common:
    """The values of the common options."""

    weights: Optional[Path]
    model_config: str
    device: str
    precision: Precision
    batch_size: int
    as_kind: Optional[Kind]
    no_cache: bool
    quiet: bool
    audio_mix: AudioMix = AudioMix.UPSTREAM
    server: Optional[str] = None
    no_server: bool = False


#: `--model-config`, spelled once for the commands that take the common options and for those
#: that only find weights (`bind weights`, `bind doctor`)
ModelConfigOption = Annotated[str, typer.Option(
    "--model-config", metavar="NAME|PATH", envvar="BIND_MODEL_CONFIG",
    autocompletion=_complete_config, rich_help_panel=OPTIONS_PANEL,
    help="Model shape: a built-in name or a JSON file of upstream's constructor arguments "
    '(and its "weights": where they are published).',
)]

_COMMON_OPTIONS: dict[str, tuple[object, object]] = {
    "weights": (
        Annotated[Optional[Path], typer.Option(
            "--weights", metavar="PATH", rich_help_panel=OPTIONS_PANEL,
            help="Checkpoint file. Default: $BIND_WEIGHTS, else the cached download "
            "(fetched on first use; see `bind weights`).",
        )],
        None,
    ),
    "model_config": (ModelConfigOption, "imagebind_huge"),
    "device": (
        Annotated[str, typer.Option(
            "--device", metavar="auto|cpu|cuda[:N]|mps", envvar="BIND_DEVICE",
            autocompletion=_complete_device, rich_help_panel=OPTIONS_PANEL,
            help="Where the encoders run; auto: CUDA, then MPS, then CPU.",
        )],
        "auto",
    ),
    "precision": (
        Annotated[Precision, typer.Option(
            "--precision", envvar="BIND_PRECISION", case_sensitive=False,
            rich_help_panel=OPTIONS_PANEL,
            help="auto: bf16 on CPUs with AMX/AVX512-BF16 and on bf16 GPUs, fp16 on MPS and "
            "older GPUs, else fp32. int8 (CPU only, never auto): linear layers in int8, "
            "faster where the CPU has no bf16.",
        )],
        Precision.AUTO,
    ),
    "batch_size": (
        Annotated[int, typer.Option(
            "--batch-size", "-b", min=1, rich_help_panel=OPTIONS_PANEL,
            help="Inputs of one kind encoded together.",
        )],
        8,
    ),
    "as_kind": (
        Annotated[Optional[Kind], typer.Option(
            "--as", case_sensitive=False, rich_help_panel=OPTIONS_PANEL,
            help="Treat every file as this kind instead of guessing from its extension.",
        )],
        None,
    ),
    "no_cache": (
        Annotated[bool, typer.Option(
            "--no-cache", rich_help_panel=OPTIONS_PANEL,
            help="Neither read nor write the embedding cache (which skips files embedded before).",
        )],
        False,
    ),
    "quiet": (
        Annotated[bool, typer.Option(
            "--quiet", "-q", rich_help_panel=OPTIONS_PANEL,
            help="No notes or progress on stderr (errors still show).",
        )],
        False,
    ),
    "audio_mix": (
        Annotated[AudioMix, typer.Option(
            "--audio-mix", envvar="BIND_AUDIO_MIX", case_sensitive=False,
            rich_help_panel=OPTIONS_PANEL,
            help="upstream: upstream's numbers (channel 0 only, after a mean over all "
            "channels); mono: every channel averaged, each clip on its own copy.",
        )],
        AudioMix.UPSTREAM,
    ),
    "server": (
        Annotated[Optional[str], typer.Option(
            "--server", metavar="URL|SOCKET", envvar="BIND_SERVER", rich_help_panel=OPTIONS_PANEL,
            help="Embed through the `bind serve` at http://HOST:PORT or a socket path (token: "
            "$BIND_TOKEN). Default: the local server's socket, when one runs with this model.",
        )],
        None,
    ),
    "no_server": (
        Annotated[bool, typer.Option(
            "--no-server", rich_help_panel=OPTIONS_PANEL,
            help="Run the model in this process even when a server is up.",
        )],
        False,
    ),
}


def command(
    func: Callable[..., None] | None = None, *, without: tuple[str, ...] = ()
) -> Callable[..., None]:
    """Adds the common options to `func` (which takes `run: Run`) and its error boundary.

    Typer reads a command's options from its signature, so the wrapper's signature is the
    command's own parameters plus the common ones: declared once, the same on every command.
    `@command(without=(...))` leaves out options that mean nothing to a command (they keep
    their defaults).
    """
    if func is None:
        return functools.partial(command, without=without)  # type: ignore[return-value]
    taken = {name: option for name, option in _COMMON_OPTIONS.items() if name not in without}
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "run"]
    common = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
        for name, (ann, default) in taken.items()
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: object) -> None:
        values = {name: kwargs.pop(name) if name in taken else default
                  for name, (_, default) in _COMMON_OPTIONS.items()}
        run = Run(Common(**values))
        try:
            with error_boundary(run.out):
                func(run=run, **kwargs)
        finally:
            run.close()
        raise typer.Exit(EXIT_FAILED if run.failed else EXIT_OK)

    params = own + common
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


@contextlib.contextmanager
def error_boundary(out: Output) -> Iterator[None]:
    """The one place where an expected error becomes one stderr line and an exit status, never
    a traceback (`BIND_DEBUG=1` shows it); every command runs inside it."""
    try:
        with out.input_warnings():
            yield
    except QueryError as exc:  # the query expressions of arith and search: TERM...
        raise typer.BadParameter(str(exc), param_hint="TERM") from None
    except BindError as exc:
        if os.environ.get("BIND_DEBUG"):
            raise
        raise typer.Exit(report(exc, out)) from None
    except KeyboardInterrupt:
        out.error("interrupted")
        raise typer.Exit(130) from None


def guarded(func: Callable[..., None]) -> Callable[..., None]:
    """Runs a command that takes no common options (`bind weights`, `collections`, `cache`,
    `doctor`) inside the error boundary."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> None:
        with error_boundary(Output()):
            func(*args, **kwargs)

    return wrapper


def report(exc: BindError, out: Output) -> int:
    """One stderr line for an expected error; returns its exit status (2 when an option's
    value is the problem: an unknown config, a device this machine lacks)."""
    out.error(str(exc))
    return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED


def pick_format(requested: str, out: Output, machine: str) -> str:
    """`auto` means a table for a person at a terminal, else the command's machine format."""
    if requested != "auto":
        return requested
    return "table" if out.stdout_is_terminal else machine


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
    """One command run: its options, its output sink, its embedder, and whether anything
    failed (which makes the exit status 1)."""

    def __init__(self, common: Common) -> None:
        self.common = common
        self.out = Output(common.quiet)
        self.failed = 0
        self._model: Model | None = None
        self._embedder: Embedder | RemoteEmbedder | None = None
        self._local: Embedder | None = None
        self._unserved = ""  # why no server answered `_borrowed`, once it asked
        #: the command runs the encoder itself (`locate`'s crops): its model comes from local
        #: weights, never from a server's word
        self.needs_weights = False
        #: builds the embedder elsewhere than in this process (`--engine ray`, cli/engine.py)
        self.engine: Callable[[Run], Embedder] | None = None

    def inputs(
        self, paths: Sequence[str] = (), texts: Sequence[str] = ()
    ) -> "list[Input | InputError]":
        """Files (`-` reads a list of paths from stdin) then texts, kinds detected or --as."""
        from bindcli.embed.embedder import gather

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
        are not, while a server answers (`_borrowed`): the model is then the server's."""
        if self._model is None:
            from bindcli.errors import WeightsNotDownloaded
            from bindcli.embed.embedder import Model

            c = self.common
            try:
                self._model = Model.resolve(c.model_config, c.weights, download=False)
            except WeightsNotDownloaded as missing:
                self._model = self._borrowed(missing.path)
            if self._model is None:
                with self.out.byte_progress() as progress:
                    self._model = Model.resolve(
                        c.model_config, c.weights, progress=progress, notify=self.out.warn
                    )
        return self._model

    @property
    def embedder(self) -> "Embedder | RemoteEmbedder":
        """A running server's, when one computes what this run would (unless --no-server),
        else this process's `local_embedder`; a note says which."""
        if self._embedder is None and self.engine is not None:
            self._embedder = self.engine(self)
        if self._embedder is None:
            self._embedder = self._served() or self.local_embedder
        return self._embedder

    def _address(self) -> "Address | None":
        """The server to ask: --server's, else the local socket if there is one; None with
        --no-server."""
        c = self.common
        if c.no_server:
            return None
        from bindcli._util.folders import server_socket
        from bindcli.embed.remote import Address

        if c.server:
            return Address.parse(c.server)
        socket = server_socket()
        return Address(unix=str(socket)) if socket.exists() else None

    def _borrowed(self, missing: Path | None) -> "Model | None":
        """Without local weights (nothing at `missing`; None: no URL is known to fetch them),
        the model of the server `_address` names, so that nothing is downloaded; its embedder
        becomes this run's. None when no server answers (or the encoder must run here: the
        Ray engine, `needs_weights`)."""
        address = self._address()
        if address is None or self.engine is not None or self.needs_weights:
            return None
        from bindcli.model.config import load_config
        from bindcli.embed.remote import borrow

        c = self.common
        embedder, why = borrow(
            address, load_config(c.model_config), precision=c.precision.value, device=c.device,
            token=os.environ.get("BIND_TOKEN"), options=self.media_options,
        )
        if embedder is None:
            self._unserved = why
            self._pass_over(why)
            return None
        self._embedder = self._configured(embedder)
        where = f"no weights at {path_text(str(missing))}" if missing else "no local weights"
        self.out.note(f"{embedder.describe()}; the model id {embedder.model_id} is the server's ({where})")
        return embedder.model

    def _served(self) -> "RemoteEmbedder | None":
        """The embedder of the server --server names or of the local socket, if it is fit."""
        address = self._address()
        if address is None:
            return None  # --no-server, or no local server: nothing to say
        from bindcli.embed.remote import connect

        c = self.common
        model = self.model  # without local weights this asks the server first (`_borrowed`)
        if self._unserved:
            return None  # it found none there, and said so
        embedder, why = connect(address, model, precision=c.precision.value, device=c.device,
                                token=os.environ.get("BIND_TOKEN"), options=self.media_options)
        if embedder is None:
            self._pass_over(why)
            return None
        self.out.note(self._configured(embedder).describe())
        return embedder

    def _pass_over(self, why: str) -> None:
        """Say why the server is not used: a warning for the one --server named, else a note."""
        (self.out.warn if self.common.server else self.out.note)(f"{why}; running in-process")

    def _configured(self, embedder: "RemoteEmbedder") -> "RemoteEmbedder":
        """`embedder` with this run's cache use and batch size."""
        embedder.use_cache, embedder.batch_size = not self.common.no_cache, self.common.batch_size
        return embedder

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
                    progress=progress, notify=self.out.warn, options=self.media_options,
                )
            self._local = embedder
            if embedder.placement.warning:
                self.out.warn(embedder.placement.warning)
            if c.device == "auto" or c.precision is Precision.AUTO:
                self.out.note(f"{embedder.config.name} on {embedder.placement.describe()}")
        return self._local

    @property
    def vectors_id(self) -> str:
        """The id collections are pinned to: the model's, plus `--audio-mix mono` if given."""
        return self.model.vectors_id(self.media_options)

    @property
    def media_options(self) -> "MediaOptions | None":
        """The loading options the common options ask for; None for upstream's defaults."""
        if self.common.audio_mix is AudioMix.UPSTREAM:
            return None
        from bindcli.media.options import MediaOptions

        return MediaOptions(audio_upstream_quirks=False)

    def close(self) -> None:
        """Close the embedder's cache file and free its towers."""
        if self._local is not None:
            self._local.close()

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
        with self.out.progress(len(inputs), label) as advance:
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

    def query_vector(self, parsed: "Query", label: str = "Embedding") -> "np.ndarray | None":
        """The query's combined vector, or None when one of its terms failed (already
        reported: without it there is no query)."""
        results = self.embed(parsed.inputs(self.common.as_kind), label)
        if any(r is None for r in results):
            return None
        return parsed.vector(results)  # type: ignore[arg-type]


def table_labels(embeddings: "Sequence[Embedding]") -> list[str]:
    """How inputs are named in a table: file names when those are unambiguous (long paths
    would crowd the columns out), else the paths as given; texts in quotes. Escaped, so a `[`
    in a file name is not read as Rich markup."""
    from rich.markup import escape

    inputs = [e.input for e in embeddings]
    names = [Path(i.source).name for i in inputs if not i.literal]
    short = len(set(names)) == len(names)
    return [
        escape(path_text(f'"{i.source}"' if i.literal else Path(i.source).name if short else i.source))
        for i in inputs
    ]
