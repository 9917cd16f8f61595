"""`bind serve`: keep one model warm for every command and for other programs (HTTP API)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import extras
from bindcli.cli.options import DB_OPTION, command
from bindcli.cli.run import Run
from bindcli.errors import UsageError
from bindcli.modality import TOWERS

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.serve.limits import Limits
    from bindcli.serve.urls import UrlPolicy


@command(without=("as_kind", "server", "no_server"))
def serve(
    run: Run,
    socket_path: Annotated[Optional[Path], typer.Option(
        "--socket", metavar="PATH", dir_okay=False, show_default=False,
        help="Unix socket to listen on (mode 0600). Default: where the commands look for it "
        "($XDG_RUNTIME_DIR/bind/serve.sock, or serve.sock in the data folder).",
    )] = None,
    host: Annotated[Optional[str], typer.Option(
        "--host", show_default=False,
        help="Also listen on TCP at this address (127.0.0.1 when only --port is given); any "
        "other than loopback needs --token.",
    )] = None,
    port: Annotated[Optional[int], typer.Option(
        "--port", "-p", min=0, max=65535, show_default=False,
        help="Also listen on this TCP port (0: a free one, printed when ready).",
    )] = None,
    token: Annotated[Optional[str], typer.Option(
        "--token", envvar="BIND_TOKEN", show_default=False,
        help="Require `Authorization: Bearer TOKEN` on every request (the commands send $BIND_TOKEN).",
    )] = None,
    preload: Annotated[Optional[str], typer.Option(
        "--preload", metavar="TOWERS", show_default=False,
        help="Load these towers before listening, e.g. vision,audio,text (image and video "
        "are vision). Default: each on its first input.",
    )] = None,
    allow_dir: Annotated[Optional[list[Path]], typer.Option(
        "--allow-dir", metavar="DIR", file_okay=False, show_default=False,
        help="Take path inputs only under this folder (repeatable). Paths are only ever taken "
        "over the socket and loopback.",
    )] = None,
    max_wait_ms: Annotated[float, typer.Option(
        "--max-wait-ms", min=0,
        help="How long an input may wait for others to share its batch (--batch-size is the most "
        "a batch holds).",
    )] = 5.0,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Loader threads that hash, look up and decode inputs.",
    )] = 4,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body (413 past it).")] = 256,
    max_file_mb: Annotated[float, typer.Option("--max-file-mb", help="Largest uploaded file (413 past it).")] = 64,
    max_text_chars: Annotated[int, typer.Option(
        "--max-text-chars", min=1, help="Longest text input (longer ones fail alone).",
    )] = 4096,
    max_inputs: Annotated[int, typer.Option(
        "--max-inputs", min=1, help="Most inputs one request may hold (413 past it; OpenAI's limit by default).",
    )] = 2048,
    compat: Annotated[Optional[list[str]], typer.Option(
        "--compat", metavar="API", show_default=False,
        help="Also speak another program's API: weaviate (the routes of Weaviate's multi2vec-bind "
        "inference container: /vectorize, /meta, /.well-known/ready; they take no token).",
    )] = None,
    weaviate_no_auth: Annotated[bool, typer.Option(
        "--weaviate-no-auth",
        help="With --compat weaviate and a --host beyond loopback: accept that anyone who reaches "
        "the port may embed through /vectorize without a token (Weaviate sends none).",
    )] = False,
    cors_origin: Annotated[Optional[list[str]], typer.Option(
        "--cors-origin", metavar="ORIGIN", show_default=False,
        help="Let web pages from this origin call the API (repeatable; * for any): answers CORS "
        "preflights (OPTIONS). The token is still asked for.",
    )] = None,
    url_inputs: Annotated[bool, typer.Option(
        "--url-inputs",
        help="Fetch http(s) URLs given as file inputs of /v1/embeddings. Private, loopback and "
        "link-local addresses are refused (and redirects to them).",
    )] = False,
    url_allow_net: Annotated[Optional[list[str]], typer.Option(
        "--url-allow-net", metavar="CIDR", show_default=False,
        help="With --url-inputs: also fetch from this network, e.g. 10.0.0.0/8 (repeatable).",
    )] = None,
    url_timeout: Annotated[float, typer.Option(
        "--url-timeout", min=0.1, help="With --url-inputs: seconds one fetch may take, redirects included.",
    )] = 20.0,
    ui: Annotated[bool, typer.Option(
        "--ui", help="Also serve a page to search, compare and classify the collections of --db "
        "at /ui/ (on --port; a free loopback port without one).",
    )] = False,
    db: DB_OPTION = None,
) -> None:
    """Serve the model over HTTP, warm: every command uses it when it runs the same model.

    Listens on a Unix socket, and on TCP with --port. Routes: POST /v1/embed (multipart or
    JSON; Accept: application/x-npy for .npy), POST /v1/embeddings (OpenAI's, Jina's objects,
    token ids), GET /v1/models, /health, /metrics (Prometheus). Requests are batched together.

    SIGTERM or Ctrl-C answers what is in flight, then exits 0.

    [dim]Examples:[/dim]
      bind serve --preload vision,audio,text
      bind serve --port 8080                     # http://127.0.0.1:8080
      bind serve --host 0.0.0.0 --port 8080 --token "$(openssl rand -hex 16)"
      bind serve --port 8080 --compat weaviate   # Weaviate's BIND_INFERENCE_API
      bind serve --ui --port 8080                # the page: http://127.0.0.1:8080/ui/
    """
    if ui and port is None:
        port = 0
    serve_on(run, socket_path=socket_path, host=host, port=port, token=token, preload=preload,
             allow_dir=allow_dir, max_wait_ms=max_wait_ms, workers=workers, max_body_mb=max_body_mb,
             max_file_mb=max_file_mb, max_text_chars=max_text_chars, page_db=page_db_path(db) if ui else None,
             max_inputs=max_inputs, compat=compat, weaviate_no_auth=weaviate_no_auth, cors_origin=cors_origin,
             url_inputs=url_inputs, url_allow_net=url_allow_net, url_timeout=url_timeout)


def serve_on(
    run: Run, *, socket_path: Path | None = None, host: str | None = None, port: int | None = None,
    token: str | None = None, preload: str | None = None, allow_dir: list[Path] | None = None,
    max_wait_ms: float = 5.0, workers: int = 4, max_body_mb: float = 256, max_file_mb: float = 64,
    max_text_chars: int = 4096, page_db: Path | None = None,
    on_page: Callable[[str], None] = lambda url: None, max_inputs: int = 2048,
    compat: list[str] | None = None, weaviate_no_auth: bool = False, cors_origin: list[str] | None = None,
    url_inputs: bool = False, url_allow_net: list[str] | None = None, url_timeout: float = 20.0,
) -> None:
    """Run the server until SIGTERM or Ctrl-C (what `bind serve` and `bind ui` start); with
    `page_db`, the page over that collection file too, whose address `on_page` hears."""
    missing = extras.SERVE.missing()
    if missing:
        raise UsageError(extras.SERVE.hint(missing[:1]))
    from bindcli._util.folders import server_socket
    from bindcli.embed.identity import with_adapter
    from bindcli.serve import server
    from bindcli.serve.app import Settings, build_app
    from bindcli.serve.batching import Batcher
    from bindcli.serve.limits import Limits
    from bindcli.serve.ui import Page

    towers = _towers(preload)
    apis = _compat(compat)
    if weaviate_no_auth and "weaviate" not in apis:
        raise typer.BadParameter("only applies with --compat weaviate", param_hint="--weaviate-no-auth")
    if host is not None or port is not None:
        server.check_host(host or "127.0.0.1", token, tokenless="weaviate" if "weaviate" in apis else None,
                          accepted=weaviate_no_auth)
    path = (socket_path or server_socket()).expanduser().absolute()
    limits = Limits(_bytes(max_body_mb, "--max-body-mb"), _bytes(max_file_mb, "--max-file-mb"),
                    max_inputs=max_inputs, max_text_chars=max_text_chars)
    settings = Settings(limits, token or None, tuple(d.resolve() for d in allow_dir or ()), apis,
                        tuple(cors_origin or ()), _url_policy(url_inputs, url_allow_net, url_timeout, limits),
                        host=host)
    with server.unix_socket(path) as unix:  # refused first if a server already runs there
        tcp = server.tcp_socket(host or "127.0.0.1", port or 0) if port is not None or host else None
        with tcp or contextlib.nullcontext() as tcp_sock:
            embedder = run.local_embedder
            batcher = Batcher(
                embedder, max_batch=run.common.batch_size, max_wait=max_wait_ms / 1000,
                workers=workers,
            )
            if towers:
                run.out.note(f"loading {', '.join(towers)}")
                batcher.preload(towers)
            where = [f"unix:{path}"]
            if tcp_sock is not None:
                bound_host, bound_port = tcp_sock.getsockname()[:2]
                where.append(f"http://[{bound_host}]:{bound_port}" if ":" in bound_host else f"http://{bound_host}:{bound_port}")
            page = None
            if page_db is not None and tcp_sock is not None:
                page = f"{where[-1]}/ui/"
                settings = dataclasses.replace(settings, ui=Page(page_db, page))
            app = build_app(batcher, settings)
            sockets = [unix] + ([tcp_sock] if tcp_sock is not None else [])

            def ready() -> None:
                # the one line a supervisor (or a test) waits for; shown even with -q
                run.out.err.print(
                    f"bind: serving {with_adapter(embedder.model_id, embedder.adapter)} "
                    f"({embedder.placement.describe()}) on "
                    f"{' and '.join(where)}", markup=False,
                )
                if page is not None:
                    run.out.err.print(f"bind: the page is at {page}", markup=False)
                    on_page(page)

            server.run(app, sockets, on_ready=ready)
    run.out.note("stopped")


def page_db_path(db: Path | None) -> Path:
    """The collection file the page shows (it may not exist yet: the page then says so)."""
    from bindcli._util.folders import default_db_path

    return (db or default_db_path()).expanduser().resolve()


def _bytes(megabytes: float, option: str) -> int:
    """A size limit in bytes; one of none (0, or less than a byte) would refuse every request."""
    from bindcli.serve.limits import MIB

    limit = int(megabytes * MIB) if math.isfinite(megabytes) else 0
    if limit < 1:
        raise typer.BadParameter(f"{megabytes:g} MB: give a finite size above 0", param_hint=option)
    return limit


def _compat(names: list[str] | None) -> frozenset[str]:
    from bindcli.serve.app import COMPAT

    unknown = [n for n in names or () if n.lower() not in COMPAT]
    if unknown:
        raise typer.BadParameter(f"unknown API {unknown[0]!r}; one of: {', '.join(COMPAT)}", param_hint="--compat")
    return frozenset(n.lower() for n in names or ())


def _url_policy(on: bool, nets: list[str] | None, timeout: float, limits: "Limits") -> "UrlPolicy | None":
    """What URL inputs may reach, when they are on (a file's size limit bounds a fetch too)."""
    import ipaddress

    from bindcli.serve.urls import UrlPolicy

    if not on:
        if nets:
            raise typer.BadParameter("only applies with --url-inputs", param_hint="--url-allow-net")
        return None
    try:
        allowed = tuple(ipaddress.ip_network(n, strict=False) for n in nets or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url-allow-net") from None
    return UrlPolicy(max_bytes=limits.max_file_bytes, timeout=timeout, allowed=allowed)


def _towers(preload: str | None) -> list[str]:
    if not preload:
        return []
    aliases = {"image": "vision", "video": "vision"}
    names = [aliases.get(t.strip().lower(), t.strip().lower()) for t in preload.split(",") if t.strip()]
    unknown = [n for n in names if n not in TOWERS]
    if unknown:
        raise typer.BadParameter(f"unknown tower {unknown[0]!r}; towers: {', '.join(TOWERS)}", param_hint="--preload")
    return sorted(set(names))
