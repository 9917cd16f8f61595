"""`bind weights …`: where the checkpoint is, fetching it, checking it, describing and converting it.

Data (paths, hashes, tables) goes to stdout so it can be piped; notes go to stderr. Errors are
raised as BindError subclasses for the app's main to report in one line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.filesize import decimal

from bindcli import weights
from bindcli.errors import WeightsError

app = typer.Typer(
    name="weights",
    help="Find, download, verify, describe and convert the ImageBind checkpoint.",
    no_args_is_help=True,
)

_PATH_ARG = typer.Argument(
    None, help="Checkpoint file (default: BIND_WEIGHTS, else the cached download).", show_default=False
)
_SHA_OPT = typer.Option(None, "--sha256", help="Expected SHA-256 (default: BIND_WEIGHTS_SHA256).", show_default=False)
_QUIET_OPT = typer.Option(False, "--quiet", "-q", help="No progress bar or notes on stderr.")


def _note(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr)


@app.command("path")
def path_command() -> None:
    """Print where the checkpoint is, or where `bind weights download` would put it."""
    located, source = weights.locate()
    print(located)
    if located.is_file():
        _note(f"present ({'named by BIND_WEIGHTS' if source == 'BIND_WEIGHTS' else 'in the cache'})")
    elif source == "cache":
        _note("not downloaded yet; run `bind weights download`")
    else:
        _note("missing: BIND_WEIGHTS names a file that does not exist")


@app.command("download")
def download_command(
    url: Optional[str] = typer.Option(None, help="Where to fetch from (default: BIND_WEIGHTS_URL, else Meta's URL).", show_default=False),
    sha256: Optional[str] = _SHA_OPT,
    force: bool = typer.Option(False, "--force", help="Download again even if the file is there."),
    quiet: bool = _QUIET_OPT,
) -> None:
    """Download the checkpoint into the cache (resumable) and record its SHA-256; print its path."""
    url = url or weights.weights_url()
    dest = weights.cached_path(url)
    if dest.is_file() and not force:
        _note(f"already downloaded: {dest} (use --force to fetch it again)", quiet)
    print(weights.download(url, dest, expected_sha256=sha256, force=force, progress=not quiet))


@app.command("verify")
def verify_command(path: Optional[Path] = _PATH_ARG, sha256: Optional[str] = _SHA_OPT, quiet: bool = _QUIET_OPT) -> None:
    """Recompute the SHA-256 and size and compare them with the record made at download time."""
    result = weights.verify(weights.find(path), expected_sha256=sha256, progress=not quiet)
    print(f"{result.sha256}  {result.path}")
    if not result.ok:
        raise WeightsError(
            f"{result.path} is corrupt or was replaced: {'; '.join(result.problems)}. "
            "Delete it and run `bind weights download` again."
        )
    if result.checked:
        against = f"the record of {result.record['created']}" if result.record else "the expected SHA-256"
        _note(f"ok: {decimal(result.size)} matching {against}", quiet)
    else:
        _note(
            f"no record beside {result.path} and no expected hash, so nothing to compare with; "
            "pass --sha256 or set BIND_WEIGHTS_SHA256 to check it",
            quiet,
        )


@app.command("info")
def info_command(
    path: Optional[Path] = _PATH_ARG,
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
) -> None:
    """Show the towers in a checkpoint, their parameter counts, dtype, file size and hash."""
    result = weights.info(weights.find(path))
    if as_json:
        print(json.dumps({
            "path": str(result.path),
            "file_size": result.file_size,
            "dtypes": list(result.dtypes),
            "parameters": result.parameters,
            "sha256": result.sha256,
            "towers": {t.tower: {"tensors": t.tensors, "parameters": t.parameters, "bytes": t.bytes} for t in result.towers},
        }, indent=2))
        return
    print(f"file        {result.path}")
    print(f"size        {decimal(result.file_size)} ({result.file_size:,} bytes)")
    print(f"dtype       {', '.join(result.dtypes)}")
    print(f"sha256      {result.sha256 or 'not recorded (run `bind weights verify` to compute it)'}")
    print(f"parameters  {result.parameters:,}")
    print()
    print(f"{'tower':<10}{'tensors':>8}{'parameters':>16}{'size':>12}")
    for t in result.towers:
        print(f"{t.tower:<10}{t.tensors:>8}{t.parameters:>16,}{decimal(t.bytes):>12}")


@app.command("convert")
def convert_command(
    path: Optional[Path] = _PATH_ARG,
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Where to write (default: beside the source, named after the dtype).", show_default=False
    ),
    dtype: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (default: keep the source's).", show_default=False),
) -> None:
    """Write a safetensors copy (optionally bf16/fp16: half the size) that loads faster; print its path."""
    src = weights.find(path)
    dst = output or src.with_name(f"{src.stem}-{dtype or 'copy'}.safetensors")
    _note(f"converting {src} to {dst} ...")
    written = weights.convert(src, dst, dtype)
    print(written)
    _note(f"wrote {decimal(written.stat().st_size)}; use it with --weights {written} or BIND_WEIGHTS={written}")
