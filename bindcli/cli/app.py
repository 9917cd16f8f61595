"""The `bind` command: one Typer app, each command in its own module.

Importing this module (which `bind --help` and shell completion do) must not import torch:
commands import the model, media and runtime inside their bodies.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Optional

import typer
from typer.core import TyperOption

from bindcli import __version__
from bindcli.cli import (
    arith,
    cache,
    classify,
    collections,
    compare,
    doctor,
    embed,
    generate,
    imagebind,
    index,
    locate,
    score,
    search,
    serve,
    tune,
    ui,
)
from bindcli.cli.eval import eval_
from bindcli.cli.options import guarded
from bindcli.cli.weights import app as weights_app

app = typer.Typer(
    name="bind",
    help="ImageBind from the shell: embed, compare, classify and combine images, video, audio, "
    "text, depth, thermal and IMU recordings in one embedding space.",
    epilog="Data goes to stdout, messages to stderr. Exit status: 0 all inputs done, 1 some "
    "failed, 2 usage error. BIND_DEBUG=1 shows tracebacks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"bind {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Show the version and exit.",
    )] = None,
) -> None:
    """ImageBind from the shell."""


app.command("embed")(embed.embed)
app.command("compare")(compare.compare)
app.command("classify")(classify.classify)
app.command("eval")(eval_)
app.command("score")(score.score)
app.command("arith")(arith.arith)
app.command("index")(index.index)
app.command("search")(search.search)
app.command("locate")(locate.locate)
app.command("generate")(generate.generate)
app.command("serve")(serve.serve)
app.command("tune")(tune.tune)
app.command("ui")(ui.ui)
app.add_typer(collections.app)
app.add_typer(cache.app)
app.add_typer(weights_app, name="weights")
app.add_typer(imagebind.app)
app.command("doctor")(guarded(doctor.doctor))


def _help_as_prose(typer_app: typer.Typer) -> None:
    """Rich help keeps a docstring's line breaks, so a paragraph wrapped for the source breaks
    mid-sentence on a terminal of another width. Each command's paragraphs become one line
    each, for the terminal to wrap; indented lines (examples) keep theirs."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = re.sub(r"(?<=\S)\n(?=\S)", " ", inspect.getdoc(info.callback) or "")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _help_as_prose(group.typer_instance)


def _no_type_beside_flags() -> None:
    """Typer 0.29's Rich help writes `<bool>` beside every flag, as if it took a value (0.27
    wrote nothing there). A flag's type column is left empty, on every command and `--help`."""
    type_of = getattr(TyperOption, "display_type_rich", None)
    if type_of is None:  # a Typer that never showed one
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else type_of(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_help_as_prose(app)
_no_type_beside_flags()


def main() -> None:
    """Console-script entry point; every command reports its own errors (`common.error_boundary`)."""
    app()
