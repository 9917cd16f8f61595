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
import ssl
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

import bindcli.serve.protocol as protocol
from bindcli._util.paths import is_uri
from bindcli.embed import stages
from bindcli.embed.embedder import BaseEmbedder
from bindcli.embed.identity import CacheKey, Model, cache_key, config_id, loading_options
from bindcli.embed.stages import LOCAL_URI, Embedding, EmbeddingCache
from bindcli.errors import (
    BindError,
    InputError,
    InputWarning,
    UsageError,
    WeightsNotDownloaded,
    attributed_to,
)
from bindcli.serve.protocol import is_loopback

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.inputs import Input
    from bindcli.media.options import MediaOptions
    from bindcli.model.adapter import Adapter
    from bindcli.model.config import ModelConfig

#: files per request: enough to fill the server's batches, small enough to stream results;
#: texts go up to the server's `max_inputs` per request (they are small and quick)
CHUNK = 32
#: requests in flight at once, so the server decodes one chunk while it encodes another
IN_FLIGHT = 2
PROBE_TIMEOUT = 2.0
ENCODE_TIMEOUT = 3600.0  # a big chunk on a CPU-only huge model takes minutes, not hours


class ServerError(BindError):
    """A server that was chosen but then failed to answer as it should."""


class TokenRefused(ServerError):
    """A server that answers but refuses this client's token (HTTP 401 or 403)."""


@dataclasses.dataclass(frozen=True)
class Address:
    """Where a server listens: a Unix socket path, or a TCP host and port."""

    unix: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = False  # https: a server behind a TLS proxy

    @classmethod
    def parse(cls, text: str) -> "Address":
        """`unix:PATH`, a path (`/run/bind.sock`, `./s.sock`), `http(s)://HOST:PORT` or `HOST:PORT`."""
        if text.startswith("unix:"):
            return cls(unix=text[len("unix:"):])
        if text.startswith(("/", "./", "~")) or text.endswith(".sock"):
            return cls(unix=str(Path(text).expanduser()))
        parts = urlsplit(text if "://" in text else f"http://{text}")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"--server {text}: expected http(s)://HOST:PORT, HOST:PORT or a socket path")
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise UsageError(f"--server {text}: the port is not a number") from None
        return cls(host=parts.hostname, port=port, tls=tls)

    @property
    def local(self) -> bool:
        """The server shares this machine's files (it may read inputs by path)."""
        return self.unix is not None or is_loopback(self.host)

    def __str__(self) -> str:
        if self.unix:
            return f"unix:{self.unix}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.unix is not None:
            return _UnixConnection(self.unix, timeout)
        if self.tls:  # the system's CA certificates and host name check, as curl's defaults
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
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
    if status in (401, 403):
        raise TokenRefused(f"the server at {client.address} refuses this client's token "
                      f"({protocol.error_text(body, status)}; set BIND_TOKEN to the server's --token)")
    if status != 200:
        raise ServerError(f"server at {client.address}: {protocol.error_text(body, status)}")
    return body["data"][0]


def probe(address: Address, token: str | None = None) -> tuple[dict | None, str]:
    """(the server's `/v1/models` entry, "") when a server answers at `address`, else
    (None, why not); `TokenRefused` when it answers but refuses the token, which the caller
    decides about (an explicit --server is an error, the local socket a note)."""
    client = Client(address, token, timeout=PROBE_TIMEOUT)
    try:
        return model_info(client), ""
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no server answers at {address} ({_os_reason(exc)})"
    except TokenRefused:
        raise
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
        served_adapter, ours = _adapter_of(str(info.get("vectors_id"))), _adapter_of(model.vectors_id())
        if served_adapter != ours:
            return None, (f"the server at {address} serves {served_adapter or 'no adapter'}, "
                          f"not {ours or 'no adapter'} (--adapter)")
        return None, f"the server at {address} loads files with other options (--audio-mix?)"
    if precision != "auto" and info.get("precision") != precision:
        return None, f"the server at {address} serves {served}, not {precision}"
    if device != "auto" and str(info.get("device", "")).split(":")[0] != device.split(":")[0]:
        return None, f"the server at {address} serves {served}, not on {device}"
    placement = ServedPlacement(str(info["device"]), str(info["precision"]))
    return RemoteEmbedder(address, model, placement, token=token, limits=protocol.read_limits(info),
                          options=options), ""


def server_address(named: str | None = None) -> Address | None:
    """The server to ask: `named` (`--server`, `BIND_SERVER`), else the local server's socket
    when there is one; None: no server to ask."""
    if named:
        return Address.parse(named)
    from bindcli._util.folders import server_socket

    socket = server_socket()
    return Address(unix=str(socket)) if socket.exists() else None


def choose(
    address: Address, here: "Model | WeightsNotDownloaded", config: "ModelConfig", *,
    precision: str, device: str, token: str | None = None, options: "MediaOptions | None" = None,
    adapter: Path | None = None,
) -> "tuple[RemoteEmbedder | None, str]":
    """(the embedder of the server at `address` when it is fit for this caller, ""), else
    (None, why not: this process embeds). `here` is the model of the local weights (`connect`
    checks the server computes the same), or why there are none: the server's model is then
    taken on its word (`borrow`, for `config`)."""
    asked = {"precision": precision, "device": device, "token": token, "options": options}
    if isinstance(here, Model):
        return connect(address, here, **asked)
    return borrow(address, config, adapter=adapter, **asked)


def _adapter_of(vectors: str) -> str:
    """The adapter part of a vectors id (`adapter=…`), or "" for none."""
    return next((part for part in vectors.split("+") if part.startswith("adapter=")), "")


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
    token: str | None = None, options: "MediaOptions | None" = None, adapter: "Path | None" = None,
) -> "tuple[RemoteEmbedder | None, str]":
    """For a client without local weights: (an embedder through the server at `address`,
    its model the server's, see `served_model`; "") when a server answers there, else
    (None, why not), and the weights must come the usual way. A server that answers but
    computes otherwise than the run asks (another config, precision, device, adapter or
    loading options) is an error: there is nothing to fall back on without downloading."""
    info, why = probe(address, token)
    if info is None:
        return None, why
    model = served_model(address, info, config).adapted(adapter)
    embedder, why = connect(address, model, precision=precision, device=device, token=token,
                            options=options, info=info)
    if embedder is None:
        raise ServerError(f"{why}, and without local weights it cannot run in-process "
                          "(`bind weights download` fetches them)")
    return embedder, ""


class RemoteEmbedder(BaseEmbedder):
    """`Embedder.embed` and `Embedder.stream` answered by a server: the same `Embedding`s
    (the same raw float32 vectors, content hashes and cache flags) for the same inputs.

    With a `cache` (this machine's embedding cache, which `close` closes), the cache lookup
    stage runs here, under the keys the server's own embedder uses: what this machine has
    embedded before is not sent, so thousands of cached prompts cost what they cost
    in-process rather than a round trip each."""

    def __init__(
        self, address: Address, model: Model, placement: ServedPlacement, *,
        token: str | None = None, use_cache: bool = True, batch_size: int = 8,
        limits: dict[str, int] | None = None, options: "MediaOptions | None" = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.address = address
        self.model = model
        self.placement = placement
        self.token = token
        self.use_cache = use_cache
        self.batch_size = batch_size
        self.options = None  # the server decodes with its own options
        self.cache = cache
        #: the loading options the server was checked to use (`connect`), part of cache keys
        self._loading = loading_options(model.config, options)
        #: what the server refuses past (`protocol.read_limits`): requests are packed to fit
        self.limits = dict(limits or {})
        #: this process's embedder, made on first need, for the inputs a server that went
        #: away did not answer (None: they fail, each saying so); `notify` says it is used
        self.fallback: Callable[[], BaseEmbedder] | None = None
        self.notify: Callable[[str], None] = lambda message: None

    @property
    def config(self) -> "ModelConfig":
        return self.model.config

    @property
    def weights(self) -> Path:
        return self.model.weights

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def adapter(self) -> "Adapter | None":
        """The adapter the server puts on its model (checked by `connect`)."""
        return self.model.adapter

    def __enter__(self) -> "RemoteEmbedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the cache file, if this embedder was given one (nothing else is held)."""
        if self.cache is not None:
            self.cache.close()  # type: ignore[attr-defined]
            self.cache = None

    def cache_key(self, inp: "Input", sha: str) -> CacheKey:
        """An input's key in the embedding cache: the server's embedder's key for it."""
        return cache_key(inp, sha, self.model.id, self.placement.precision, self._loading, self.adapter)

    def describe(self) -> str:
        """The note a command prints when it uses the server."""
        return f"{self.config.name} on {self.placement.describe()}, served at {self.address}"

    def _results(
        self, todo: "list[tuple[int, Input, str | None]]", progress: Callable[[int], None]
    ) -> "Iterator[tuple[int, Embedding | InputError]]":
        """Each request's results as the server answers it (known hashes are not needed: the
        server hashes what it reads); when the server goes away, the inputs it did not answer
        go to `_without_server`, and every answered one is kept."""
        if self.cache is not None and self.use_cache:
            todo, known = self._look_up(todo)
            progress(len(known))
            yield from known
        requests, refused = self._plan([(i, x) for i, x, _ in todo])
        progress(len(refused))
        yield from refused
        if not requests:
            return
        clients: dict[int, Client] = {}
        gone: list[str] = []  # why the server went away, once it did: later requests are not sent

        def ask(request: list[_Sending]) -> list[tuple[int, "Embedding | InputError"]]:
            if gone:
                raise _Gone(gone[0])
            client = clients.setdefault(threading.get_ident(), Client(self.address, self.token))
            try:
                return self._ask(client, request)
            except _Gone as exc:
                gone.append(str(exc))
                raise

        pool = concurrent.futures.ThreadPoolExecutor(min(IN_FLIGHT, len(requests)), thread_name_prefix="bind-remote")
        waiting = [(pool.submit(ask, request), request) for request in requests]
        unanswered: list[_Sending] = []
        try:
            for future, request in waiting:
                try:
                    done = future.result()
                except _Gone:
                    unanswered.extend(request)
                    continue
                progress(len(done))
                yield from done
        finally:  # also when the caller stops early (Ctrl-C, an error, a consumer that breaks off)
            for future, _ in waiting:
                future.cancel()
            for client in list(clients.values()):
                client.abort()
            pool.shutdown(wait=True)
            for client in clients.values():
                client.close()
        if unanswered:
            yield from self._without_server(unanswered, gone[0], progress)

    def _look_up(
        self, todo: "list[tuple[int, Input, str | None]]"
    ) -> "tuple[list[tuple[int, Input, str | None]], list[tuple[int, Embedding | InputError]]]":
        """(the inputs to send; the results known here: unreadable inputs, each failing as
        it fails in-process, and cache hits)."""
        shas = stages.digests([x for _, x, _ in todo], [sha for *_, sha in todo])
        known: list[tuple[int, Embedding | InputError]] = [
            (i, sha) for (i, _, _), sha in zip(todo, shas) if isinstance(sha, InputError)
        ]
        readable = [(i, x, sha) for (i, x, _), sha in zip(todo, shas) if not isinstance(sha, InputError)]
        found = stages.look_up(self.cache, self.cache_key, [(x, sha) for _, x, sha in readable])
        known += [(i, hit) for (i, _, _), hit in zip(readable, found) if hit is not None]
        return [job for job, hit in zip(readable, found) if hit is None], known

    def _without_server(
        self, unanswered: "list[_Sending]", reason: str, progress: Callable[[int], None]
    ) -> "Iterator[tuple[int, Embedding | InputError]]":
        """The inputs a server that went away did not answer: embedded by `fallback` (this
        process's embedder, when there are local weights) after one note, else each failed."""
        why = f"the server at {self.address} went away ({reason})"
        if self.fallback is None:
            progress(len(unanswered))
            for item in unanswered:
                yield item.slot, InputError(item.input.source, f"not embedded: {why}")
            return
        self.notify(f"{why}; embedding the {len(unanswered)} inputs it did not answer in-process")
        slots = [item.slot for item in unanswered]
        for j, result in self.fallback().stream([item.input for item in unanswered], progress):
            yield slots[j], result

    def _plan(
        self, inputs: "list[tuple[int, Input]]"
    ) -> "tuple[list[list[_Sending]], list[tuple[int, InputError]]]":
        """(the requests to send, each within the server's limits; the inputs refused here:
        one the server cannot take whatever it is sent with fails alone, unsent)."""
        max_body = self.limits.get("max_body_bytes")
        max_file = self.limits.get("max_file_bytes")
        overhead = len(json.dumps(protocol.embed_request([], cache=self.use_cache)))
        sending, refused = [], []
        for slot, inp in inputs:
            item = self._sizing(slot, inp)
            if isinstance(item, InputError):
                refused.append((slot, item))
            elif item.file_bytes is not None and max_file is not None and item.file_bytes > max_file:
                refused.append((slot, InputError(inp.source, f"{item.file_bytes} bytes, over the server's "
                                                 f"{max_file}-byte per-file limit (bind serve --max-file-mb)")))
            elif max_body is not None and overhead + item.size > max_body:
                refused.append((slot, InputError(inp.source, "too large to send: over the server's "
                                                 f"{max_body}-byte request limit (bind serve --max-body-mb)")))
            else:
                sending.append(item)
        # a server that publishes no limits is sent what servers took before they did
        return pack(sending, max_body=max_body, max_inputs=self.limits.get("max_inputs", CHUNK),
                    overhead=overhead), refused

    def _sizing(self, slot: int, inp: "Input") -> "_Sending | InputError":
        """How one input travels, and what it adds to a request: a text as itself, a file
        by path to a server on this machine, else its bytes (read when its request is sent)."""
        if inp.literal:
            return _Sending(slot, inp, _text_size(inp.source))
        if is_uri(inp.source):
            return InputError(inp.source, LOCAL_URI)
        if self.address.local:
            return _Sending(slot, inp, _size(protocol.path_input(os.path.abspath(inp.source), inp.kind.value)))
        try:
            length = os.stat(inp.source).st_size
        except OSError as exc:
            return InputError(inp.source, exc.strerror or str(exc))
        entry = protocol.data_input(b"", Path(inp.source).name, inp.kind.value)
        return _Sending(slot, inp, _size(entry) + 4 * ((length + 2) // 3), length)

    def _ask(self, client: Client, request: "list[_Sending]") -> "list[tuple[int, Embedding | InputError]]":
        """One request's results; one the server refuses as too large is sent again in
        halves, until an input refused alone fails alone."""
        sent, out = [], []
        for item in request:
            entry = self._entry(item)
            if isinstance(entry, InputError):
                out.append((item.slot, entry))
            else:
                sent.append((item, entry))
        if not sent:
            return out
        body = protocol.embed_request([e for _, e in sent], cache=self.use_cache)
        try:
            status, answer = client.request("POST", protocol.EMBED, body)
        except (OSError, http.client.HTTPException) as exc:
            raise _Gone(_os_reason(exc)) from None
        if status == 413 and len(sent) > 1:
            half = len(sent) // 2
            return out + self._ask(client, [i for i, _ in sent[:half]]) + self._ask(client, [i for i, _ in sent[half:]])
        if status == 413:
            return out + [(sent[0][0].slot, InputError(sent[0][0].input.source, protocol.error_text(answer, status)))]
        if status != 200:
            raise ServerError(f"server at {self.address}: {protocol.error_text(answer, status)}")
        for (item, _), result in zip(sent, answer["results"]):
            inp = item.input
            _warn(inp, protocol.relayed(result))
            if "error" in result:
                out.append((item.slot, InputError(inp.source, result["error"])))
            else:
                raw = np.frombuffer(protocol.vector_bytes(result), dtype=protocol.FLOAT32).astype(np.float32)
                out.append((item.slot, Embedding(inp, result["sha256"], raw, cached=bool(result.get("cached")))))
        return out

    def _entry(self, item: "_Sending") -> "dict | InputError":
        """The request entry `_sizing` planned for an input (a file sent as bytes is read now)."""
        inp = item.input
        if inp.literal:
            return protocol.text_input(inp.source)
        if item.file_bytes is None:
            return protocol.path_input(os.path.abspath(inp.source), inp.kind.value)
        try:
            data = Path(inp.source).read_bytes()
        except OSError as exc:
            return InputError(inp.source, exc.strerror or str(exc))
        return protocol.data_input(data, Path(inp.source).name, inp.kind.value)


class _Gone(Exception):
    """The server stopped answering (refused, reset or closed the connection)."""


@dataclasses.dataclass(frozen=True)
class _Sending:
    """One input to send: its position, what its entry adds to a request body, and the
    size of the file it sends as bytes (None for a text, or a file sent by path)."""

    slot: int
    input: "Input"
    size: int
    file_bytes: int | None = None

    @property
    def file(self) -> bool:
        return not self.input.literal


def _size(entry: dict) -> int:
    """What an entry adds to a JSON request body (its separator included)."""
    return len(json.dumps(entry)) + 2


#: what a text entry adds to a request besides the text itself, quoted
TEXT_ENTRY = _size(protocol.text_input(""))


def _text_size(text: str) -> int:
    """`_size` of a text's entry, without encoding a plain one (eval sends 80,000)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return TEXT_ENTRY + len(text)
    return _size(protocol.text_input(text))


def pack(items: "Iterable[_Sending]", *, max_body: int | None, max_inputs: int, overhead: int) -> "list[list[_Sending]]":
    """`items` in order, in requests of at most `max_inputs` inputs (of them at most `CHUNK`
    files, so results stream back while later files decode) and `max_body` bytes of body."""
    requests: list[list[_Sending]] = []
    current: list[_Sending] = []
    size = files = 0
    for item in items:
        full = (len(current) >= max_inputs or (item.file and files >= CHUNK)
                or (max_body is not None and overhead + size + item.size > max_body))
        if current and full:
            requests.append(current)
            current, size, files = [], 0, 0
        current.append(item)
        size += item.size
        files += item.file
    if current:
        requests.append(current)
    return requests


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
