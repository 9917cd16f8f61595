"""`bind doctor`: what a bug report needs, printed without loading a model (`bindcli.doctor`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import formats
from bindcli.cli.options import ModelConfigOption
from bindcli.cli.output import Output
from bindcli.cli.render import FORMAT_OPTION, InfoFormat, resolved

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.doctor import Report


def doctor(
    out: Output,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Hash the whole checkpoint (SHA-256; a minute or more for 4.8 GB) "
        "instead of comparing its size with the record made at download.",
    )] = False,
    weights_path: Annotated[Optional[Path], typer.Option(
        "--weights", metavar="PATH", show_default=False,
        help="Check this checkpoint. Default: $BIND_WEIGHTS, else the cached download.",
    )] = None,
    model_config: ModelConfigOption = "imagebind_huge",
    fmt: FORMAT_OPTION = InfoFormat.AUTO,
) -> None:
    """Versions, the optional extras, the device and precision a command picks here and why,
    where the weights are and whether they check out, bind's folders and their sizes, the
    server a command would use, and which `imagebind` Python imports here: what a bug report
    needs.

    Loads no model, so it works when a command fails. Exit status 1 when the weights fail
    their check.
    """
    from bindcli.doctor import diagnose

    with out.byte_progress("hashing {}") as progress:
        report = diagnose(weights_path, config=model_config, verify=verify, progress=progress)
    if resolved(fmt, out, InfoFormat.JSON) is InfoFormat.TABLE:
        _show(out, report)
    else:
        out.text(formats.json_text(report.as_dict()))
    if report.weights.ok is False:
        raise typer.Exit(1)


def _show(out: Output, report: "Report") -> None:
    """One titled two-column table per section."""
    from rich.filesize import decimal
    from rich.markup import escape
    from rich.table import Table

    d, w = report.device, report.weights
    size = "" if w.size_bytes is None else f"{decimal(w.size_bytes)} ({w.size_bytes:,} bytes)"
    sections = {
        "Versions": {k: v or "not installed" for k, v in report.versions.items()},
        f"Device and precision ({d.asked})": {
            "device": d.device,
            "precision": d.precision,
            "why": d.why,
            **({"warning": d.warning} if d.warning else {}),
            "GPUs": "\n".join(d.gpus) or "none",
            "torch built for": f"CUDA {d.torch_cuda}" if d.torch_cuda else "CPU only",
            "CPU bf16": ", ".join(d.cpu_bf16) or "none",
            "threads": str(d.threads),
        },
        "Weights": {
            "path": str(w.path or "—"),
            "chosen by": w.chosen_by,
            **({"size": size} if size else {}),
            "check": _CHECKS[w.check],
            "result": {True: "ok: ", False: "FAILED: ", None: ""}[w.ok] + w.detail,
            **({"SHA-256": w.sha256} if w.sha256 else {}),
        },
        "Folders": {
            _FOLDERS.get(name, name): f"{f.path} ({decimal(f.size_bytes) if f.exists else 'not created yet'})"
            for name, f in report.folders.items()
        },
        "Extras": report.extras,
        "Server": report.server,
        "Python imports": {"imagebind": report.imagebind},
        "Environment": report.environment or {"(none)": "no BIND_* or related variable is set"},
    }
    for n, (title, rows) in enumerate(sections.items()):
        table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None)
        for key, value in rows.items():
            table.add_row(escape(key), escape(value))
        if n:
            out.out.print()
        out.table(table)


_CHECKS = {"none": "none", "size": "size against the record", "sha256": "SHA-256 of the whole file"}
_FOLDERS = {"cache": "cache (checkpoints)", "data": "data (collections, embedding cache)"}
