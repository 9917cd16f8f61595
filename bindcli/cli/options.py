"""The options commands share and the frame every command runs in.

The common options (declared once, here) and `@command`, which gives them to a command and
makes its `Run`; `@guarded`, the same frame for the commands that take only `-q` of them
(`collections`, `cache`, `weights`, `doctor`); the error boundary, where an expected error
(`BindError`) becomes one stderr line and an exit code, never a traceback (`BIND_DEBUG=1`
shows it); and the options of the collection file. Nothing here imports torch at import
time, so `bind --help` and shell completion stay instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli.cli.output import Output
from bindcli.cli.run import Run
from bindcli.errors import BindError, QueryError, UsageError
from bindcli.modality import Kind
from bindcli.model.placement import Precision

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.store import CollectionRecord, Store
    from bindcli.embed.inputs import Input
    from bindcli.errors import InputError
    from bindcli.media.options import MediaOptions
    from bindcli.windows import Reading, Window

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
    #: loading options a command sets for its run (`bind score --frames/--clips`)
    loading: "Optional[MediaOptions]" = None
    adapter: Optional[Path] = None

    @property
    def media_options(self) -> "MediaOptions | None":
        """The loading options these options ask for; None for upstream's defaults."""
        if self.audio_mix is AudioMix.UPSTREAM and self.loading is None:
            return None
        from bindcli.media.options import MediaOptions

        return dataclasses.replace(
            self.loading or MediaOptions(), audio_upstream_quirks=self.audio_mix is AudioMix.UPSTREAM,
        )


#: `--model-config`, spelled once for the commands that take the common options and for those
#: that only find weights (`bind weights`, `bind doctor`)
ModelConfigOption = Annotated[str, typer.Option(
    "--model-config", metavar="NAME|PATH", envvar="BIND_MODEL_CONFIG",
    autocompletion=_complete_config, rich_help_panel=OPTIONS_PANEL,
    help="Model shape: a built-in name or a JSON file of upstream's constructor arguments "
    '(and its "weights": where they are published).',
)]



def _quiet_option(**panel: str) -> object:
    """`-q`, the same on every command and sub-command: among the common options where a
    command takes them (`panel`), else among its own."""
    return Annotated[bool, typer.Option(
        "--quiet", "-q", **panel, help="No notes or progress on stderr (errors still show).",
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
    "quiet": (_quiet_option(rich_help_panel=OPTIONS_PANEL), False),
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
            help="Embed through the `bind serve` at http(s)://HOST:PORT or a socket path (token: "
            "$BIND_TOKEN). Default: the local server's socket, when one runs with this model.",
        )],
        None,
    ),
    "adapter": (
        Annotated[Optional[Path], typer.Option(
            "--adapter", metavar="FILE", envvar="BIND_ADAPTER", dir_okay=False,
            rich_help_panel=OPTIONS_PANEL,
            help="An adapter from `bind tune`, put on the tower it tuned (its id joins the "
            "vectors' id: collections and servers without it are not mixed in).",
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
        run = Run(Common(**values), Output(values["quiet"]))
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
    """Runs a command that takes no common options but `-q` (`bind weights`, `collections`,
    `cache`, `doctor`) inside the error boundary; `func` takes `out: Output`, its run's one
    sink, and the wrapper adds `--quiet` to its options."""
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "out"]
    params = [*own, inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=_quiet_option(), default=False)]

    @functools.wraps(func)
    def wrapper(*args: object, quiet: bool = False, **kwargs: object) -> None:
        out = Output(quiet)
        with error_boundary(out):
            func(*args, out=out, **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def report(exc: BindError, out: Output) -> int:
    """One stderr line for an expected error; returns its exit status (2 when an option's
    value is the problem: an unknown config, a device this machine lacks)."""
    out.error(str(exc))
    return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED


# --- what several commands take: the collection file, query terms, prompt templates ---------

DB_OPTION = Annotated[Optional[Path], typer.Option(
    "--db", metavar="FILE", dir_okay=False, show_default=False,
    help="Collection file. Default: $BIND_DATA_DIR/bind.sqlite3, else "
    "$XDG_DATA_HOME/bind/bind.sqlite3, else ~/.local/share/bind/bind.sqlite3.",
)]
COLLECTION_OPTION = Annotated[str, typer.Option(
    "--collection", "-c", metavar="NAME", help="Which collection in the file.",
)]
DEFAULT_COLLECTION = "default"
#: a query expression as a command's arguments, in `bind arith`'s syntax (`bindcli.query`)
QUERY_TERMS = Annotated[Optional[list[str]], typer.Argument(
    metavar="TERM [+|- TERM]...", show_default=False,
    help="Files combined with + and - (separate words); weight a term as 0.5:file.jpg. "
    "Put -- before a term that starts with '-'.",
)]
QUERY_TEXT = Annotated[Optional[list[str]], typer.Option(
    "--text", "-t", show_default=False,
    help="A text query term; 'W:text' weights it, a negative W subtracts (repeatable).",
)]
TOP_K_OPTION = Annotated[int, typer.Option(
    "--top-k", "-k", min=0, help="Results to show (0: all).",
)]
SEGMENTS_OPTION = Annotated[Optional[str], typer.Option(
    "--segments", metavar="LEN[:HOP]", show_default=False,
    help="Long audio, video and IMU files as one vector per window of time, each with its "
    "start and end: windows of LEN every HOP (default LEN), e.g. 2s, 5s:2.5s, 500ms.",
)]
READING_OPTION = Annotated[Optional[list[str]], typer.Option(
    "--reading", metavar="HOW", show_default=False,
    help="With --segments, how a video's windows are read (repeatable): clips (video tower, "
    "the default), frames (one frame each, vision tower), sound (its sound, audio tower).",
)]


def parse_segments(
    run: Run, segments: str | None, readings: Sequence[str] | None = ()
) -> "tuple[Window | None, list[Reading]]":
    """The `--segments` window and the `--reading`s, or (None, []) without --segments.
    Segments are embedded in this process (`Run.local_only`)."""
    if segments is None:
        if readings:
            raise typer.BadParameter("--reading goes with --segments", param_hint="--reading")
        return None, []
    from bindcli.windows import Reading, Window

    try:
        chosen = [Reading(r.lower()) for r in readings or ()]
    except ValueError:
        names = ", ".join(r.value for r in Reading)
        raise typer.BadParameter(f"one of: {names}", param_hint="--reading") from None
    window = Window.parse(segments)
    run.local_only = True
    return window, chosen


def segmented(
    run: Run, inputs: "Sequence[Input | InputError]", segments: str | None, readings: Sequence[str] | None = ()
) -> "list[Input | InputError]":
    """`inputs` read in the `--segments` windows (`embed.inputs.in_segments`), or as they are
    without it (`parse_segments`)."""
    window, chosen = parse_segments(run, segments, readings)
    if window is None:
        return list(inputs)
    from bindcli.embed.inputs import in_segments

    return in_segments(inputs, window, chosen)


class VectorType(str, enum.Enum):
    """How a new collection stores its vectors (`store.DTYPES`)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


def check_templates(templates: Sequence[str], param_hint: str = "--template", source: str | None = None) -> None:
    """`zeroshot.check_templates` as a bad-parameter error on the option they came from
    (`source`: the file they were read from, named in the message)."""
    from bindcli.zeroshot import check_templates as check

    try:
        check(templates)
    except UsageError as exc:
        raise typer.BadParameter(f"{source}: {exc}" if source else str(exc), param_hint=param_hint) from None


def open_store(db: Path | None, *, create: bool = True) -> "Store":
    """The collection file named by --db, else the default one. Commands that only read pass
    `create=False`: a missing file is then an error naming it, and no file is made (a typo in
    --db must not leave an empty collection file behind)."""
    from bindcli._util.folders import default_db_path
    from bindcli.collections.store import Store

    path = db or default_db_path()
    return Store(path) if create else Store.existing(path)


def store_exists(db: Path | None) -> bool:
    """Whether the collection file named by --db (else the default one) exists yet: where it
    does not, a listing is empty rather than an error."""
    from bindcli._util.folders import default_db_path

    return (db or default_db_path()).expanduser().exists()


def wanted(top_k: int, store: "Store", collection: "CollectionRecord") -> int:
    """How many results `-k` asks of `collection`: 0 means all of its files."""
    return top_k or max(1, sum(store.counts(collection).values()))


def check_writable(path: Path, param_hint: str) -> None:
    """Refuse, before any work, a file whose folder cannot be made or written to."""
    folder = path.parent.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest folder that exists: the rest is created
    if path.is_dir():
        problem = "is a folder"
    elif not folder.is_dir():
        problem = f"{folder} is not a folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"cannot write in {folder}"
    else:
        return
    raise UsageError(f"{param_hint} {path}: {problem}")
