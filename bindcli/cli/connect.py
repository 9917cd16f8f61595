"""Whether a running `bind serve` embeds for this run: which server, one probe, one note.

The choice is made once per run (`Run.server`), when the run first needs it: without local
weights, to take the model from the server (`borrow`: nothing is downloaded); else when the
run first needs an embedder, to check that the server computes what this process would
(`connect`). Either way the server is asked once and the run says once what came of it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bindcli._util.paths import path_text
from bindcli.cli.output import Output

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.cli.options import Common
    from bindcli.embed.identity import Model
    from bindcli.embed.remote import Address, RemoteEmbedder
    from bindcli.errors import WeightsNotDownloaded


def server_address(common: "Common") -> "Address | None":
    """The server to ask: --server's, else the local socket if there is one; None with
    --no-server."""
    if common.no_server:
        return None
    from bindcli.embed.remote import server_address as address_of

    return address_of(common.server)


def choose_server(
    common: "Common", out: Output, here: "Model | WeightsNotDownloaded"
) -> "RemoteEmbedder | None":
    """The embedder of the server `server_address` names when it is fit for this run, else
    None (this process embeds); one probe, and one note or warning saying which.

    `here` is the model of the local weights, or why there are none: the server's model is
    then taken on its word (a server that computes otherwise is an error, since nothing can
    run here without downloading)."""
    address = server_address(common)
    if address is None:
        return None  # --no-server, or no local server: nothing to say
    from bindcli.embed.identity import Model
    from bindcli.embed.remote import TokenRefused, choose
    from bindcli.model.config import load_config

    try:
        embedder, why = choose(
            address, here, load_config(common.model_config), precision=common.precision.value,
            device=common.device, token=os.environ.get("BIND_TOKEN"), options=common.media_options,
            adapter=common.adapter,
        )
    except TokenRefused as exc:
        if common.server:  # the server asked for by name: a wrong token is a mistake to fix, not to route around
            raise
        embedder, why = None, str(exc)
    if embedder is None:
        # a warning for the server --server named, a note for the local socket
        (out.warn if common.server else out.note)(f"{why}; running in-process")
        return None
    embedder.use_cache, embedder.batch_size = not common.no_cache, common.batch_size
    if isinstance(here, Model):
        out.note(embedder.describe())
    else:
        where = f"no weights at {path_text(str(here.path))}" if here.path else "no local weights"
        out.note(f"{embedder.describe()}; the model id {embedder.model_id} is the server's ({where})")
    return embedder
