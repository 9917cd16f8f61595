"""The commands' side of `bind serve`: find a running server, check that it computes what this
run would, and embed through it with the `Embedder`'s own `embed`/`stream` interface.

Standard library only (`http.client` over a Unix socket or TCP) and no torch, so a command
that talks to a warm server starts as fast as `bind --help`. Files go as paths when the server
shares this machine (a Unix socket or loopback: it reads them itself), else as their bytes.
The warnings the server raised while decoding an input are raised again here, naming the
input as this run does, so a command prints what it prints in-process.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import dataclasses
import functools
import http.client
import json
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

import bindcli.serve.protocol as protocol
from bindcli._util.chunks import batched
from bindcli._util.paths import is_uri
from bindcli.embed.embedder import BaseEmbedder
from bindcli.embed.identity import Model, config_id
from bindcli.embed.stages import LOCAL_URI, Embedding
from bindcli.errors import BindError, InputError, InputWarning, UsageError, attributed_to
from bindcli.serve.protocol import is_loopback

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.inputs import Input
    from bindcli.media.options import MediaOptions
    from bindcli.model.config import ModelConfig

#: inputs per request: enough to fill the server's batches, small enough to stream results
CHUNK = 32
#: requests in flight at once, so the server decodes one chunk while it encodes another
IN_FLIGHT = 2
PROBE_TIMEOUT = 2.0
ENCODE_TIMEOUT = 3600.0  # a big chunk on a CPU-only huge model takes minutes, not hours


class ServerError(BindError):
    """A server that was chosen but then failed to answer as it should."""


@dataclasses.dataclass(frozen=True)
class Address:
    """Where a server listens: a Unix socket path, or a TCP host and port."""

    unix: str | None = None
    host: str = "127.0.0.1"
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> "Address":
        """`unix:PATH`, a path (`/run/bind.sock`, `./s.sock`), `http://HOST:PORT` or `HOST:PORT`."""
        if text.startswith("unix:"):
            return cls(unix=text[len("unix:"):])
        if text.startswith(("/", "./", "~")) or text.endswith(".sock"):
            return cls(unix=str(Path(text).expanduser()))
        parts = urlsplit(text if "://" in text else f"http://{text}")
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"--server {text}: expected http://HOST:PORT, HOST:PORT or a socket path")
        try:
            port = parts.port or 80
        except ValueError:
            raise UsageError(f"--server {text}: the port is not a number") from None
        return cls(host=parts.hostname, port=port)

    @property
    def local(self) -> bool:
        """The server shares this machine's files (it may read inputs by path)."""
        return self.unix is not None or is_loopback(self.host)

    def __str__(self) -> str:
        return f"unix:{self.unix}" if self.unix else f"http://{self.host}:{self.port}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.unix is not None:
            return _UnixConnection(self.unix, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    """JSON over HTTP to one server; one connection, kept alive (one per thread)."""

    def __init__(self, address: Address, token: str | None = None, timeout: float = ENCODE_TIMEOUT) -> None:
        self.address = address
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """(status, decoded JSON body); raises OSError when the server cannot be reached."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more
            if self._conn is None:
                self._conn = self.address.connection(self.timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
        try:
            return response.status, json.loads(payload or b"{}")
        except ValueError:
            return response.status, {"error": payload[:200].decode("utf-8", "replace")}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def abort(self) -> None:
        """Wake a request waiting for its answer on another thread (it then fails); the
        server sees the disconnect and drops that request's queued inputs."""
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclasses.dataclass(frozen=True)
class ServedPlacement:
    """The server's device and precision, as the commands read a `Placement`."""

    device: str
    precision: str
    warning: str | None = None

    def describe(self) -> str:
        return f"{self.device}, {self.precision}"


def model_info(client: Client) -> dict:
    """The server's `/v1/models` entry for its one model."""
    status, body = client.request("GET", protocol.MODELS)
    if status != 200:
        raise ServerError(f"server at {client.address}: {protocol.error_text(body, status)}")
    return body["data"][0]


def probe(address: Address, token: str | None = None) -> tuple[dict | None, str]:
    """(the server's `/v1/models` entry, "") when a server answers at `address`, else
    (None, why not)."""
    client = Client(address, token, timeout=PROBE_TIMEOUT)
    try:
        return model_info(client), ""
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no server answers at {address} ({_os_reason(exc)})"
    except (ServerError, KeyError, IndexError, TypeError) as exc:
        return None, str(exc) if isinstance(exc, ServerError) else f"server at {address}: unexpected answer"
    finally:
        client.close()


def connect(
    address: Address, model: Model, *, precision: str, device: str, token: str | None = None,
    options: "MediaOptions | None" = None, info: dict | None = None,
) -> "tuple[RemoteEmbedder | None, str]":
    """(an embedder through the server at `address`, "") when it is up and computes what
    this run would (the same model id and loading options; the same precision and device
    kind unless `auto`), else (None, why not). `info`: its `probe` answer, when known."""
    if info is None:
        info, why = probe(address, token)
        if info is None:
            return None, why
    served = f"{info.get('id')} at {info.get('precision')} on {info.get('device')}"
    if info.get("id") != model.id:
        return None, f"the server at {address} serves {served}, not {model.id}"
    if info.get("vectors_id") != model.vectors_id(options):
        return None, f"the server at {address} loads files with other options (--audio-mix?)"
    if precision != "auto" and info.get("precision") != precision:
        return None, f"the server at {address} serves {served}, not {precision}"
    if device != "auto" and str(info.get("device", "")).split(":")[0] != device.split(":")[0]:
        return None, f"the server at {address} serves {served}, not on {device}"
    placement = ServedPlacement(str(info["device"]), str(info["precision"]))
    return RemoteEmbedder(address, model, placement, token=token), ""


def served_model(address: Address, info: dict, config: "ModelConfig") -> Model:
    """The model a server runs, on its word (`info`: its `probe` answer), for a client that
    has no weights to compute the id from: the server's id then names the vectors, so a
    collection indexed through it stays pinned to it. The config the client asked for must
    be the server's, by name and by shape, or a UsageError says so."""
    served, model_id = str(info.get("config")), str(info.get("id"))
    if served != config.name:
        raise UsageError(
            f"--model-config {config.name}: the server at {address} serves {served}, and "
            f"without local weights {config.name} cannot run in-process"
        )
    if not model_id.startswith(config_id(config) + ":"):
        raise UsageError(
            f"--model-config {config.name}: the server at {address} serves a {served} of "
            f"another shape ({model_id}, not {config_id(config)}:...)"
        )
    return Model(config, Path(str(info.get("weights") or config.name)), model_id, server=str(address))


def borrow(
    address: Address, config: "ModelConfig", *, precision: str, device: str,
    token: str | None = None, options: "MediaOptions | None" = None,
) -> "tuple[RemoteEmbedder | None, str]":
    """For a client without local weights: (an embedder through the server at `address`,
    its model the server's, see `served_model`; "") when a server answers there, else
    (None, why not), and the weights must come the usual way. A server that answers but
    computes otherwise than the run asks (another config, precision, device or loading
    options) is an error: there is nothing to fall back on without downloading."""
    info, why = probe(address, token)
    if info is None:
        return None, why
    model = served_model(address, info, config)
    embedder, why = connect(address, model, precision=precision, device=device, token=token,
                            options=options, info=info)
    if embedder is None:
        raise ServerError(f"{why}, and without local weights it cannot run in-process "
                          "(`bind weights download` fetches them)")
    return embedder, ""


class RemoteEmbedder(BaseEmbedder):
    """`Embedder.embed` and `Embedder.stream` answered by a server: the same `Embedding`s
    (the same raw float32 vectors, content hashes and cache flags) for the same inputs."""

    def __init__(
        self, address: Address, model: Model, placement: ServedPlacement, *,
        token: str | None = None, use_cache: bool = True, batch_size: int = 8,
    ) -> None:
        self.address = address
        self.model = model
        self.placement = placement
        self.token = token
        self.use_cache = use_cache
        self.batch_size = batch_size
        self.options = None  # the server decodes with its own options

    @property
    def config(self) -> "ModelConfig":
        return self.model.config

    @property
    def weights(self) -> Path:
        return self.model.weights

    @property
    def model_id(self) -> str:
        return self.model.id

    def __enter__(self) -> "RemoteEmbedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held between calls."""

    def describe(self) -> str:
        """The note a command prints when it uses the server."""
        return f"{self.config.name} on {self.placement.describe()}, served at {self.address}"

    def _results(
        self, todo: "list[tuple[int, Input, str | None]]", progress: Callable[[int], None]
    ) -> "Iterator[tuple[int, Embedding | InputError]]":
        """Each chunk's results as the server answers it (known hashes are not needed: the
        server hashes what it reads)."""
        inputs = [(i, x) for i, x, _ in todo]
        chunks = list(batched(inputs, CHUNK))
        clients: dict[int, Client] = {}

        def ask(chunk: list[tuple[int, "Input"]]) -> list[tuple[int, "Embedding | InputError"]]:
            client = clients.setdefault(threading.get_ident(), Client(self.address, self.token))
            return self._ask(client, chunk)

        pool = concurrent.futures.ThreadPoolExecutor(min(IN_FLIGHT, len(chunks)), thread_name_prefix="bind-remote")
        waiting = [pool.submit(ask, chunk) for chunk in chunks]
        try:
            for future in waiting:
                done = future.result()
                progress(len(done))
                yield from done
        finally:  # also when the caller stops early (Ctrl-C, an error, a consumer that breaks off)
            for future in waiting:
                future.cancel()
            for client in list(clients.values()):
                client.abort()
            pool.shutdown(wait=True)
            for client in clients.values():
                client.close()

    def _ask(self, client: Client, chunk: "list[tuple[int, Input]]") -> "list[tuple[int, Embedding | InputError]]":
        sent, out = [], []
        for slot, inp in chunk:
            entry = self._entry(inp)
            if isinstance(entry, InputError):
                out.append((slot, entry))
            else:
                sent.append((slot, inp, entry))
        if not sent:
            return out
        body = protocol.embed_request([e for *_, e in sent], cache=self.use_cache)
        try:
            status, answer = client.request("POST", protocol.EMBED, body)
        except (OSError, http.client.HTTPException) as exc:
            raise ServerError(f"server at {self.address}: {_os_reason(exc)}") from None
        if status != 200:
            raise ServerError(f"server at {self.address}: {protocol.error_text(answer, status)}")
        for (slot, inp, _), result in zip(sent, answer["results"]):
            _warn(inp, protocol.relayed(result))
            if "error" in result:
                out.append((slot, InputError(inp.source, result["error"])))
            else:
                raw = np.frombuffer(protocol.vector_bytes(result), dtype=protocol.FLOAT32).astype(np.float32)
                out.append((slot, Embedding(inp, result["sha256"], raw, cached=bool(result.get("cached")))))
        return out

    def _entry(self, inp: "Input") -> "dict | InputError":
        """How one input travels: a text as itself, a file by path to a server on this
        machine, else its bytes."""
        if inp.literal:
            return protocol.text_input(inp.source)
        if is_uri(inp.source):
            return InputError(inp.source, LOCAL_URI)
        if self.address.local:
            return protocol.path_input(os.path.abspath(inp.source), inp.kind.value)
        try:
            data = Path(inp.source).read_bytes()
        except OSError as exc:
            return InputError(inp.source, exc.strerror or str(exc))
        return protocol.data_input(data, Path(inp.source).name, inp.kind.value)


def _warn(inp: "Input", relayed: Iterable[dict]) -> None:
    """The server's warnings about `inp` (see `bindcli.serve.caught`), raised as the loaders
    raise them in-process: an `InputWarning` of this run's name for it, any other attributed
    to it."""
    for w in relayed:
        name, message = protocol.read_warning(w)
        category = _category(name)
        if category is InputWarning:
            warnings.warn(InputWarning(inp.source, message), stacklevel=2)
        else:
            with attributed_to(inp.source):
                warnings.warn(message, category, stacklevel=2)


@functools.cache
def _category(name: str) -> type[Warning]:
    """The class of a relayed warning: bind's and Python's own by name; another (Pillow's)
    a UserWarning of its name, which is all the CLI reads of it."""
    if name == InputWarning.__name__:
        return InputWarning
    known = getattr(builtins, name, None)
    if isinstance(known, type) and issubclass(known, Warning):
        return known
    return type(name, (UserWarning,), {"__module__": __name__})


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
