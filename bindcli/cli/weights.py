"""`bind weights …`: where the checkpoint is, fetching it, checking it, describing and converting it.

Data (paths, hashes, tables) goes to stdout so it can be piped; notes go to stderr.
`--model-config` says whose weights: a JSON config's own `"weights"` (URL, SHA-256) or a
built-in's published ones, as for the commands that embed. Errors are
raised as BindError subclasses, which the error boundary (`options.guarded`) reports in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from bindcli import weights
from bindcli._util import formats
from bindcli.cli.options import ModelConfigOption, guarded
from bindcli.cli.output import Output
from bindcli.cli.render import FORMAT_OPTION, InfoFormat, resolved, show_record
from bindcli.errors import OutputError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.model.config import ModelConfig

app = typer.Typer(
    name="weights",
    help="Find, download, verify, describe and convert the ImageBind checkpoint.",
    no_args_is_help=True,
)

_PATH_ARG = typer.Argument(
    None, help="Checkpoint file (default: BIND_WEIGHTS, else the cached download).", show_default=False
)
_SHA_OPT = typer.Option(
    None, "--sha256", help="Expected SHA-256 (default: BIND_WEIGHTS_SHA256, else the published one).",
    show_default=False,
)


def _config(model_config: str) -> "ModelConfig":
    """The config `--model-config` names, loaded here (not at import: `bind doctor` and
    `--help` import no model code), so that a wrong one stops with exit status 2."""
    from bindcli.model.config import load_config

    return load_config(model_config)


@app.command("path")
@guarded
def path_command(out: Output, model_config: ModelConfigOption = weights.DEFAULT_CONFIG) -> None:
    """Print where the checkpoint is, or where `bind weights download` would put it."""
    located, source = weights.named_path(config=_config(model_config))
    out.text(f"{located}\n")
    if located.is_file():
        out.note(f"present ({'named by BIND_WEIGHTS' if source is weights.Source.ENV else 'in the cache'})")
    elif source is weights.Source.CACHE:
        out.note("not downloaded yet; run `bind weights download`")
    else:
        out.note("missing: BIND_WEIGHTS names a file that does not exist")


@app.command("download")
@guarded
def download_command(
    out: Output,
    url: Optional[str] = typer.Option(None, help="Where to fetch from (default: BIND_WEIGHTS_URL, else Meta's URL).", show_default=False),
    sha256: Optional[str] = _SHA_OPT,
    force: bool = typer.Option(False, "--force", help="Download again even if the file is there."),
    model_config: ModelConfigOption = weights.DEFAULT_CONFIG,
) -> None:
    """Download the checkpoint into the cache (resumable) and record its SHA-256; print its path."""
    config = _config(model_config)
    url = url or weights.weights_url(config)
    dest = weights.cached_path(url)
    if dest.is_file() and not force:
        out.note(f"already downloaded: {dest} (use --force to fetch it again)")
    with out.byte_progress() as progress:
        done = weights.download(
            url, dest, config=config, expected_sha256=sha256, force=force, progress=progress,
            notify=out.warn,
        )
    out.text(f"{done}\n")


@app.command("verify")
@guarded
def verify_command(
    out: Output,
    path: Optional[Path] = _PATH_ARG,
    sha256: Optional[str] = _SHA_OPT,
    model_config: ModelConfigOption = weights.DEFAULT_CONFIG,
) -> None:
    """Recompute the SHA-256 and size and compare them with the record made at download time
    and with the expected hash: --sha256, else BIND_WEIGHTS_SHA256, else the published one
    (for the config's published checkpoint)."""
    from rich.filesize import decimal

    config = _config(model_config)
    with out.byte_progress("hashing {}") as progress:
        result = weights.verify(weights.find(path, config), expected_sha256=sha256, config=config, progress=progress)
    out.text(f"{result.sha256}  {result.path}\n")
    if not result.ok:
        raise WeightsError(
            f"{result.path} is corrupt or was replaced: {'; '.join(result.problems)}. "
            "Delete it and run `bind weights download` again."
        )
    if result.checked:
        out.note(f"ok: {decimal(result.size)} matching {weights.against(result.record, result.expected_by)}")
    else:
        out.note(
            f"no record beside {result.path}, no expected hash and none published for it, so "
            "nothing to compare with; pass --sha256 or set BIND_WEIGHTS_SHA256 to check it"
        )
    if result.record is None:
        try:
            out.note(f"recorded its size and SHA-256 in {weights.record_verified(result)}")
        except OutputError as exc:  # a read-only folder: the check itself still stands
            out.warn(f"could not record the hash: {exc}")


@app.command("info")
@guarded
def info_command(
    out: Output,
    path: Optional[Path] = _PATH_ARG,
    fmt: FORMAT_OPTION = InfoFormat.AUTO,
    as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
    model_config: ModelConfigOption = weights.DEFAULT_CONFIG,
) -> None:
    """Show the towers in a checkpoint, their parameter counts, dtype, file size and hash."""
    from rich.filesize import decimal
    from rich.markup import escape
    from rich.table import Table

    from bindcli.model.checkpoint import info

    result = info(weights.find(path, _config(model_config)))
    data = {
        "path": str(result.path),
        "file_size": result.file_size,
        "dtypes": list(result.dtypes),
        "parameters": result.parameters,
        "sha256": result.sha256,
        "towers": {t.tower: {"tensors": t.tensors, "parameters": t.parameters, "bytes": t.bytes}
                   for t in result.towers},
    }
    if resolved(InfoFormat.JSON if as_json else fmt, out, InfoFormat.JSON) is not InfoFormat.TABLE:
        out.text(formats.json_text(data))
        return
    del data["towers"]  # a table of their own, below
    show_record(out, data, InfoFormat.TABLE, shown={
        "file_size": f"{decimal(result.file_size)} ({result.file_size:,} bytes)",
        "dtypes": ", ".join(result.dtypes),
        "parameters": f"{result.parameters:,}",
        "sha256": result.sha256 or "not recorded (run `bind weights verify` to compute it)",
    })
    towers = Table()
    towers.add_column("tower")
    for column in ("tensors", "parameters", "size"):
        towers.add_column(column, justify="right")
    for t in result.towers:
        towers.add_row(escape(t.tower), str(t.tensors), f"{t.parameters:,}", decimal(t.bytes))
    out.table(towers)


@app.command("convert")
@guarded
def convert_command(
    out: Output,
    path: Optional[Path] = _PATH_ARG,
    output_path: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Where to write (default: beside the source, named after the dtype).", show_default=False
    ),
    dtype: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (default: keep the source's).", show_default=False),
    model_config: ModelConfigOption = weights.DEFAULT_CONFIG,
) -> None:
    """Write a safetensors copy (optionally bf16/fp16: half the size) that loads faster; print its path."""
    from rich.filesize import decimal

    from bindcli.model.checkpoint import convert

    src = weights.find(path, _config(model_config))
    dst = output_path or src.with_name(f"{src.stem}-{dtype or 'copy'}.safetensors")
    out.note(f"converting {src} to {dst} ...")
    written = convert(src, dst, dtype)
    out.text(f"{written}\n")
    out.note(f"wrote {decimal(written.stat().st_size)}; use it with --weights {written} or BIND_WEIGHTS={written}")

