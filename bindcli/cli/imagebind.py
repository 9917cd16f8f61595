"""`bind imagebind …`: the `imagebind` import name for bind's drop-in, in this environment.

The work is `bindcli.imagebind_alias` (a tiny distribution handed to this environment's pip);
these commands say what came of it. Loads no model and no torch.
"""

from __future__ import annotations

import typer

from bindcli import imagebind_alias
from bindcli.cli.options import guarded
from bindcli.cli.output import Output

app = typer.Typer(
    name="imagebind",
    help="Make `import imagebind` (LanceDB's imagebind function, scripts written for upstream) "
    "load bind's drop-in, in the Python environment bind runs in.",
    no_args_is_help=True,
)


@app.command("install")
@guarded
def install_command(out: Output) -> None:
    """Install `bindcli-imagebind-alias` with this environment's pip, so that `import imagebind`
    loads `bindcli.imagebind`. Refused where another `imagebind` (upstream's, imagebind-packaged,
    imagebind-unofficial, a checkout on the path) is there: bind never shadows it."""
    found = imagebind_alias.install()
    out.note(f"installed {imagebind_alias.DISTRIBUTION}: `import imagebind` loads {found.describe()}; "
             "`bind imagebind uninstall` removes it")


@app.command("status")
@guarded
def status_command(out: Output) -> None:
    """Print which `imagebind` a Python process of this environment would import: bind's
    drop-in, another one (with its file and distribution), or none."""
    out.text(f"{imagebind_alias.status().describe()}\n")


@app.command("uninstall")
@guarded
def uninstall_command(out: Output) -> None:
    """Remove `bindcli-imagebind-alias` with pip (nothing else: an upstream `imagebind` is
    left as it is)."""
    if imagebind_alias.uninstall():
        out.note(f"removed {imagebind_alias.DISTRIBUTION}; `import imagebind`: "
                 f"{imagebind_alias.status().describe()}")
    else:
        out.note(f"{imagebind_alias.DISTRIBUTION} is not installed here; nothing to do")
