"""The server process: its sockets (a private Unix socket, and TCP when asked), uvicorn, and
its signals (SIGTERM or Ctrl-C stop taking connections, answer what is in flight, exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from bindcli.errors import BindError, UsageError
from bindcli.serve.protocol import is_loopback

GRACE_SECONDS = 60  # in-flight requests get this long to finish after SIGTERM


class AlreadyRunning(BindError):
    """A server already answers on the socket or port asked for."""


def check_host(host: str, token: str | None, *, tokenless: str | None = None, accepted: bool = False) -> None:
    """A server reachable from other machines must ask for a token; and routes that cannot
    (`tokenless`: Weaviate's, whose client sends none) are only served there when the
    operator `accepted` that anyone who reaches it may call them."""
    if is_loopback(host):
        return
    if not token:
        raise UsageError(f"--host {host} is reachable from other machines: give --token (or BIND_TOKEN)")
    if tokenless and not accepted:
        raise UsageError(
            f"--host {host} with --compat {tokenless}: {tokenless} sends no token, so its routes would answer "
            f"anyone who reaches {host}; give --{tokenless}-no-auth to accept that, or listen on loopback"
        )


@contextlib.contextmanager
def unix_socket(path: Path) -> Iterator[socket.socket]:
    """A listening socket at `path`, mode 0600 in a 0700 folder; refused when a server
    already answers there; a stale socket file (its server died) is replaced; removed on exit."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise UsageError(f"{path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: left by a server that was killed
        else:
            raise AlreadyRunning(f"{path}: a bind server is already running there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise BindError(f"{path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    mine = path.stat().st_ino
    sock.listen(128)
    try:
        yield sock
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == mine:
                path.unlink()


@contextlib.contextmanager
def tcp_socket(host: str, port: int) -> Iterator[socket.socket]:
    """A listening TCP socket; port 0 picks a free one (see `getsockname()`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AlreadyRunning(f"{host}:{port}: the port is taken (a server already running?)") from None
        raise BindError(f"{host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    try:
        yield sock
    finally:
        sock.close()


def run(app: object, sockets: list[socket.socket], on_ready: Callable[[], None] = lambda: None) -> None:
    """Serve `app` on `sockets` until SIGTERM or SIGINT; in-flight requests are answered, the
    app's lifespan shutdown runs, and this returns normally (the process exits 0)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            # uvicorn raises the signal again once drained, which would end the process with
            # the signal's status instead of 0
            self._captured_signals.clear()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_ready()

    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", access_log=False,
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    asyncio.run(Server(config).serve(sockets=sockets))
