"""`bind serve`: keep one model warm for every command and for other programs (HTTP API)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from bindcli._util import extras
from bindcli.cli.options import DB_OPTION, command
from bindcli.cli.run import Run
from bindcli.errors import UsageError
from bindcli.modality import TOWERS


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
    ui: Annotated[bool, typer.Option(
        "--ui", help="Also serve a page to search, compare and classify the collections of --db "
        "at /ui/ (on --port; a free loopback port without one).",
    )] = False,
    db: DB_OPTION = None,
) -> None:
    """Serve the model over HTTP, warm: every command uses it when it runs the same model.

    Listens on a Unix socket, and on TCP with --port. Routes: POST /v1/embed (multipart or
    JSON; Accept: application/x-npy for .npy), POST /v1/embeddings (OpenAI-compatible),
    GET /v1/models, /health, /metrics (Prometheus). Inputs of concurrent requests are batched
    together. SIGTERM or Ctrl-C answers what is in flight, then exits 0.

    [dim]Examples:[/dim]
      bind serve --preload vision,audio,text
      bind serve --port 8080                     # http://127.0.0.1:8080
      bind serve --host 0.0.0.0 --port 8080 --token "$(openssl rand -hex 16)"
      bind serve --ui --port 8080                # the page: http://127.0.0.1:8080/ui/
    """
    if ui and port is None:
        port = 0
    serve_on(run, socket_path=socket_path, host=host, port=port, token=token, preload=preload,
             allow_dir=allow_dir, max_wait_ms=max_wait_ms, workers=workers, max_body_mb=max_body_mb,
             max_file_mb=max_file_mb, max_text_chars=max_text_chars, page_db=page_db_path(db) if ui else None)


def serve_on(
    run: Run, *, socket_path: Path | None = None, host: str | None = None, port: int | None = None,
    token: str | None = None, preload: str | None = None, allow_dir: list[Path] | None = None,
    max_wait_ms: float = 5.0, workers: int = 4, max_body_mb: float = 256, max_file_mb: float = 64,
    max_text_chars: int = 4096, page_db: Path | None = None,
    on_page: Callable[[str], None] = lambda url: None,
) -> None:
    """Run the server until SIGTERM or Ctrl-C (what `bind serve` and `bind ui` start); with
    `page_db`, the page over that collection file too, whose address `on_page` hears."""
    missing = extras.SERVE.missing()
    if missing:
        raise UsageError(extras.SERVE.hint(missing[:1]))
    from bindcli._util.folders import server_socket
    from bindcli.serve import server
    from bindcli.serve.app import Settings, build_app
    from bindcli.serve.batching import Batcher
    from bindcli.serve.limits import Limits
    from bindcli.serve.ui import Page

    towers = _towers(preload)
    if host is not None or port is not None:
        server.check_host(host or "127.0.0.1", token)
    path = (socket_path or server_socket()).expanduser().absolute()
    limits = Limits(_bytes(max_body_mb, "--max-body-mb"), _bytes(max_file_mb, "--max-file-mb"),
                    max_text_chars=max_text_chars)
    settings = Settings(limits, token or None, tuple(d.resolve() for d in allow_dir or ()), host=host)
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
                    f"bind: serving {embedder.model_id} ({embedder.placement.describe()}) on "
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


def _towers(preload: str | None) -> list[str]:
    if not preload:
        return []
    aliases = {"image": "vision", "video": "vision"}
    names = [aliases.get(t.strip().lower(), t.strip().lower()) for t in preload.split(",") if t.strip()]
    unknown = [n for n in names if n not in TOWERS]
    if unknown:
        raise typer.BadParameter(f"unknown tower {unknown[0]!r}; towers: {', '.join(TOWERS)}", param_hint="--preload")
    return sorted(set(names))
