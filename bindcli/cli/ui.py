"""`bind ui`: the page over a collection file, from the server that already shows it or from
one started here."""

from __future__ import annotations

import os
import webbrowser
from typing import Annotated, Optional

import typer

from bindcli.cli.connect import server_address
from bindcli.cli.options import DB_OPTION, command
from bindcli.cli.run import Run
from bindcli.cli.serve import page_db_path, serve_on
from bindcli.errors import UsageError


@command(without=("as_kind", "no_server"))
def ui(
    run: Run,
    port: Annotated[int, typer.Option(
        "--port", "-p", min=0, max=65535,
        help="The loopback port of a server started here (0: a free one).",
    )] = 0,
    token: Annotated[Optional[str], typer.Option(
        "--token", envvar="BIND_TOKEN", show_default=False,
        help="The token the server asks for (the page asks for it once).",
    )] = None,
    browser: Annotated[bool, typer.Option(
        "--browser/--no-browser", help="Open the page in the web browser.",
    )] = True,
    db: DB_OPTION = None,
) -> None:
    """Open the page to search, compare and classify a collection file's items by words, files
    or the microphone.

    Asks the running server (--server, else the local socket) for its page; when none
    answers, serves one here on 127.0.0.1 until Ctrl-C, as `bind serve --ui` does.

    [dim]Examples:[/dim]
      bind ui
      bind ui --db ~/photos.sqlite3 --port 8080 --no-browser
    """
    found = _running_page(run, token)
    if found is not None:
        run.out.err.print(f"bind: the page is at {found}", markup=False)
        if browser:
            webbrowser.open(found)
        return
    serve_on(run, port=port, token=token, page_db=page_db_path(db),
             on_page=webbrowser.open if browser else lambda url: None)


def _running_page(run: Run, token: str | None) -> str | None:
    """The page of the server that answers, None when none does; a server that answers
    without a page is an error (a second one could not take its socket)."""
    from bindcli.embed.remote import PROBE_TIMEOUT, Client

    address = server_address(run.common)
    if address is None:
        return None
    client = Client(address, token or os.environ.get("BIND_TOKEN"), timeout=PROBE_TIMEOUT)
    try:
        status, body = client.request("GET", "/health")
    except OSError:
        return None  # a socket left behind: serve_on replaces it
    finally:
        client.close()
    if status == 200 and body.get("ui"):
        return str(body["ui"])
    if run.common.server:
        raise UsageError(f"the server at {address} serves no page: start it with `bind serve --ui`")
    raise UsageError(f"a server without the page answers at {address}: stop it, or start it "
                     "with `bind serve --ui`")

