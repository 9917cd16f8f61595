"""The HTTP API of `bind serve` (Starlette): `/v1/embed` (bind's own, multipart or JSON),
`/v1/embeddings` (OpenAI's), `/v1/models`, `/health` and `/metrics`.

Requests only parse, check and answer: every input becomes a Future of the `Batcher`, so
requests share batches, an input that fails fails alone, and a client that goes away before
its answer is ready has its inputs dropped from the queue. The warnings raised while an
input was decoded come back with it (`warnings`: category and message), which is how
`RemoteEmbedder` warns as an in-process run would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hmac
import json
import mimetypes
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bindcli._util.paths import not_a_file
from bindcli.errors import InputError
from bindcli.modality import Kind, detect
from bindcli.serve import protocol
from bindcli.serve.limits import Limits
from bindcli.serve.protocol import is_loopback

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.inputs import Input
    from bindcli.embed.stages import Embedding
    from bindcli.serve.batching import Batcher
    from bindcli.serve.caught import Caught

NPY = "application/x-npy"
CLIENT_GONE = 499  # nginx's status for a client that closed the connection first
#: MIME major types of data URLs that name a kind by themselves
MIME_KINDS = {"image": Kind.IMAGE, "audio": Kind.AUDIO, "video": Kind.VIDEO, "text": Kind.TEXT}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the app needs besides the batcher."""

    limits: Limits = Limits()
    token: str | None = None
    allow_dirs: tuple[Path, ...] = ()  # path inputs only under these (when given)


class _Json(JSONResponse):
    """A JSON answer in ASCII: names and texts a client sent may hold lone surrogates (a
    file name that is not UTF-8, `"\\ud800"`), which JSON escapes but UTF-8 cannot hold."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class _Refused(Exception):
    """One input that cannot be embedded, found while reading the request."""


def build_app(batcher: "Batcher", settings: Settings) -> Starlette:
    """The ASGI app over one batcher; closing it (lifespan shutdown) drains the batcher."""
    metrics = batcher.metrics
    started = int(time.time())

    async def health(request: Request) -> Response:
        if not batcher.alive:
            return _Json({"status": "error", "error": "the model thread stopped"}, 503)
        return _Json({"status": "ok", "model": batcher.embedder.model_id})

    async def models(request: Request) -> Response:
        e = batcher.embedder
        entry = {
            "id": e.model_id, "object": "model", "created": started, "owned_by": "bind",
            "config": e.config.name, "weights": e.weights.name,
            "towers": sorted(getattr(e.encoder, "towers", ())), "device": str(e.placement.device),
            "precision": e.placement.precision,
            "vectors_id": e.vectors_id,  # the model id and any loading option that changes it
            **protocol.limits_field(settings.limits),  # so that clients pack requests to fit
        }
        return _Json({"object": "list", "data": [entry]})

    async def metrics_text(request: Request) -> Response:
        towers = sorted(getattr(batcher.embedder.encoder, "towers", ()))
        return PlainTextResponse(metrics.text(towers), media_type="text/plain; version=0.0.4")

    async def embed(request: Request) -> Response:
        with tempfile.TemporaryDirectory(prefix="bind-serve-") as spool:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                named, options = await _multipart(request, settings, Path(spool))
            else:
                named, options = _json_inputs(await _json_body(request), request, settings, Path(spool))
            if options.segments is None:
                answered = await _results(request, batcher, named, use_cache=options.cache)
            else:
                named, answered = await _segment_results(batcher, named, options)
        if answered is None:
            return Response(status_code=CLIENT_GONE)
        results, warned = answered
        if NPY in request.headers.get("accept", ""):
            return _npy(named, results, warned, raw=options.raw)
        return _Json({
            "model": batcher.embedder.model_id,
            "results": [_result(name, r, w, raw=options.raw, b64=options.base64)
                        for (name, _), r, w in zip(named, results, warned)],
        })

    async def embeddings(request: Request) -> Response:
        body = await _json_body(request)
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise HTTPException(400, "encoding_format must be float or base64")
        with tempfile.TemporaryDirectory(prefix="bind-serve-") as spool:
            named = _openai_inputs(body, settings, Path(spool))
            answered = await _results(request, batcher, named, use_cache=True)
        if answered is None:
            return Response(status_code=CLIENT_GONE)
        results, warned = answered
        for n, ((name, _), r) in enumerate(zip(named, results)):
            if isinstance(r, InputError):
                raise HTTPException(400, f"input {n} ({name}): {r.reason}")
        texts = [e.source for _, e in named if not isinstance(e, _Refused) and e.literal]
        tokens = await asyncio.to_thread(_token_count, texts)
        data = [
            {"object": "embedding", "index": n,
             "embedding": _vector(r.unit, b64=fmt == "base64"),  # type: ignore[union-attr]
             # an extra field, which OpenAI's clients keep and ignore
             **protocol.warnings_field(x.answer() for x in w)}
            for n, (r, w) in enumerate(zip(results, warned))
        ]
        return _Json({"object": "list", "data": data, "model": batcher.embedder.model_id,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _Json(protocol.error_body(exc.detail, exc.status_code), exc.status_code, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(batcher.close)  # in-flight requests are answered by now

    routes = [
        Route("/health", health), Route(protocol.MODELS, models), Route("/metrics", metrics_text),
        Route(protocol.EMBED, embed, methods=["POST"]), Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.add_middleware(_Guard, settings=settings, metrics=metrics, routes={r.path for r in routes})  # type: ignore[arg-type]
    return app


class _Guard:
    """ASGI middleware in front of every route: the bearer token (401), the body-size limit
    (413, from Content-Length or while the body streams in) and the request counters."""

    def __init__(self, app, settings: Settings, metrics, routes: set[str]) -> None:  # noqa: ANN001
        self.app, self.settings, self.metrics, self.routes = app, settings, metrics, routes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in self.routes else "other"
        status = [500]

        async def counted_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                code, text = refusal
                headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
                response = _Json(protocol.error_body(text, code), code, headers=headers)
                return await response(scope, receive, counted_send)
            await self.app(scope, self._limited(receive), counted_send)
        finally:
            self.metrics.request(route, status[0])

    def _refusal(self, scope: dict) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = self.settings.token
        if token is not None:
            scheme, _, given = headers.get("authorization", "").strip().partition(" ")
            # the scheme's case does not matter (RFC 7235); the token's does
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return 401, "a bearer token is required (Authorization: Bearer TOKEN)"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.limits.max_body_bytes:
            return 413, f"the request body is over the {self.settings.limits.max_body_bytes}-byte limit"
        return None

    def _limited(self, receive):  # noqa: ANN001, ANN202
        limit, seen = self.settings.limits.max_body_bytes, 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the request body is over the {limit}-byte limit")
            return message

        return limited


# --- reading requests ----------------------------------------------------------------------


class _Duplicate(ValueError):
    """A JSON object that names one field twice: which one was meant is not ours to guess."""


def _unique(pairs: list[tuple[str, object]]) -> dict:
    fields: dict = {}
    for key, value in pairs:
        if key in fields:
            raise _Duplicate(key)
        fields[key] = value
    return fields


async def _json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body(), object_pairs_hook=_unique)
    except _Duplicate as exc:
        raise HTTPException(400, f"the body names the field {exc} twice") from None
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"the body is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not JSON: not UTF-8") from None
    except ValueError:  # an integer of more digits than Python converts
        raise HTTPException(400, "the body is not JSON this server reads: a number too long") from None
    except RecursionError:
        raise HTTPException(400, "the body is not JSON this server reads: nested too deeply") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def _kind(value: object, what: str) -> Kind | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HTTPException(400, f"{what}: modality must be a string")
    try:
        return Kind(value.lower())
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise HTTPException(400, f"{what}: unknown modality {value!r}; one of {known}") from None


def _options(source: dict, query: dict) -> protocol.Options:
    try:
        return protocol.read_options(source, query)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def _spooled(spool: Path, n: int, name: str, data: bytes, kind: Kind | None, limits: Limits) -> "Input":
    """An uploaded file, written where the loaders can read it, under a name that keeps its
    suffix (the kind when none is given)."""
    from bindcli.embed.inputs import Input

    if len(data) > limits.max_file_bytes:
        raise HTTPException(413, f"{name}: over the {limits.max_file_bytes}-byte per-file limit")
    kind = _detect(name, kind)
    suffix = Path(name).suffix.lower()
    path = spool / f"{n}{suffix if suffix[1:].isalnum() else ''}"  # not the client's NUL or slash
    path.write_bytes(data)
    return Input(str(path), kind)


def _text(text: str, limits: Limits) -> "Input":
    from bindcli.embed.inputs import Input

    if len(text) > limits.max_text_chars:
        raise _Refused(f"text of {len(text)} characters, over this server's {limits.max_text_chars}-character "
                       "limit (bind serve --max-text-chars)")
    return Input.text(text)


def _check_count(n: int, limits: Limits) -> None:
    if n == 0:
        raise HTTPException(400, "no inputs")
    if n > limits.max_inputs:
        raise HTTPException(413, f"{n} inputs, over the {limits.max_inputs}-input limit")


async def _multipart(request: Request, settings: Settings, spool: Path) -> tuple[list, dict]:
    """`file` parts (a `modality` field right after one applies to it; `?modality=` to all)
    and `text` fields, in the order sent."""
    limits = settings.limits
    every = _kind(request.query_params.get("modality"), "modality")
    try:
        form = await request.form(max_files=limits.max_inputs, max_fields=2 * limits.max_inputs + 8,
                                  max_part_size=limits.max_file_bytes)
    except HTTPException:
        raise
    except Exception as exc:  # starlette's MultiPartException: a malformed body
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    parts: list[list] = []  # [name, UploadFile or text, kind]
    try:
        for key, value in form.multi_items():
            if key == "file" and isinstance(value, UploadFile):
                parts.append([value.filename or f"file {len(parts)}", value, every])
            elif key == "text" and isinstance(value, str):
                parts.append([value, value, Kind.TEXT])
            elif key == "modality" and isinstance(value, str) and parts and isinstance(parts[-1][1], UploadFile):
                parts[-1][2] = _kind(value, parts[-1][0])
        _check_count(len(parts), limits)
        named = []
        for n, (name, value, kind) in enumerate(parts):
            try:
                if isinstance(value, str):
                    named.append((name, _text(value, limits)))
                else:
                    named.append((name, _spooled(spool, n, name, await value.read(), kind, limits)))
            except _Refused as refused:
                named.append((name, refused))
    finally:
        await form.close()
    return named, _options({}, dict(request.query_params))


def _json_inputs(body: dict, request: Request, settings: Settings, spool: Path) -> tuple[list, dict]:
    """`{"inputs": [{"text"} | {"path"} | {"data", "filename"}], "modality": ...}`."""
    from bindcli.embed.inputs import Input

    entries = body.get("inputs")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise HTTPException(400, 'expected {"inputs": [{"text": ...} | {"path": ...} | {"data": ..., "filename": ...}]}')
    limits = settings.limits
    _check_count(len(entries), limits)
    every = _kind(body.get("modality"), "modality")
    # a Unix socket's peer has no address (and is on this machine); TCP peers must be loopback
    local = request.client is None or not request.client.host or is_loopback(request.client.host)
    named = []
    for n, entry in enumerate(entries):
        kind = _kind(entry.get("modality"), f"input {n}") or every
        wrong = next((k for k in ("text", "path", "data", "filename") if not isinstance(entry.get(k, ""), str)), None)
        if wrong:
            raise HTTPException(400, f"input {n}: {wrong} must be a string")
        name = entry.get("path") or entry.get("filename") or entry.get("text") or f"input {n}"
        try:
            if "text" in entry and kind in (None, Kind.TEXT):
                named.append((name, _text(entry["text"], limits)))
            elif "path" in entry:
                named.append((name, Input(_allowed_path(entry["path"], local, settings), _detect(name, kind))))
            elif "data" in entry:
                try:
                    data = base64.b64decode(entry["data"], validate=True)
                except ValueError:  # binascii.Error, or characters that are not ASCII
                    raise _Refused("data is not valid base64") from None
                named.append((name, _spooled(spool, n, entry.get("filename") or name, data, kind, limits)))
            else:
                raise HTTPException(400, f"input {n}: give text, path or data")
        except _Refused as refused:
            named.append((name, refused))
    return named, _options(body, dict(request.query_params))


def _detect(name: str, kind: Kind | None) -> Kind:
    try:
        return detect(name, kind, choose="send a modality field with")
    except InputError as exc:
        raise _Refused(exc.reason) from None


def _allowed_path(path: str, local: bool, settings: Settings) -> str:
    """A path input, if this peer may name one: it shares this machine, and the file lies under
    an `--allow-dir` folder when any were given."""
    if not local:
        raise _Refused("path inputs are only taken over the Unix socket or loopback; send data")
    if "\0" in path:
        raise _Refused("no path holds a NUL character")
    resolved = Path(path).resolve()
    if settings.allow_dirs and not any(resolved.is_relative_to(d) for d in settings.allow_dirs):
        raise _Refused("not under a folder the server allows (--allow-dir)")
    if not resolved.is_file():
        raise _Refused(not_a_file(resolved))
    return str(resolved)


def _openai_inputs(body: dict, settings: Settings, spool: Path) -> list:
    """OpenAI's `input` (a string or a list of strings): texts, or data URLs of files;
    `modality` (an extra field) names the kind of data a MIME type cannot say."""
    given = body.get("input")
    items = [given] if isinstance(given, str) else given
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise HTTPException(400, "input must be a string or a list of strings (token arrays are not taken)")
    limits = settings.limits
    _check_count(len(items), limits)
    every = _kind(body.get("modality"), "modality")
    named = []
    for n, item in enumerate(items):
        try:
            if item.startswith("data:"):
                named.append((f"input {n}", _data_url(spool, n, item, every, limits)))
            elif every not in (None, Kind.TEXT):
                raise HTTPException(400, f"input {n}: modality {every.value} needs a data URL")
            else:
                named.append((item, _text(item, limits)))
        except _Refused as refused:
            raise HTTPException(400, f"input {n}: {refused}") from None
    return named


def _data_url(spool: Path, n: int, url: str, kind: Kind | None, limits: Limits) -> "Input":
    """`data:MIME;base64,...` as a spooled file of that MIME type's suffix."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise _Refused("expected a data URL: data:MIME;base64,DATA")
    mime = header[len("data:"):-len(";base64")].lower()
    kind = kind or MIME_KINDS.get(mime.split("/")[0])
    if kind is None:
        raise _Refused(f"{mime or 'no MIME type'}: say which modality with the modality field")
    suffix = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/mpeg": ".mp3", "image/jpeg": ".jpg",
              "application/x-npy": ".npy"}.get(mime) or mimetypes.guess_extension(mime) or ""
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:  # binascii.Error, or characters that are not ASCII
        raise _Refused("the data URL is not valid base64") from None
    return _spooled(spool, n, f"input-{n}{suffix}", data, kind, limits)


# --- answering -----------------------------------------------------------------------------


async def _results(
    request: Request, batcher: "Batcher", named: list, *, use_cache: bool
) -> "tuple[list[Embedding | InputError], list[list[Caught]]] | None":
    """Each input's result and the warnings raised while it was decoded, in order; None
    when the client went away first (its inputs are then cancelled, which drops those still
    queued)."""
    slots = [n for n, (_, x) in enumerate(named) if not isinstance(x, _Refused)]
    futures = batcher.submit([(named[n][1], named[n][0]) for n in slots], use_cache=use_cache)
    results: list = [InputError(name, str(x)) if isinstance(x, _Refused) else None for name, x in named]
    warned: list[list[Caught]] = [[] for _ in named]
    if futures:
        answered = asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({answered, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not answered.done():
            answered.cancel()
            answered.add_done_callback(_retrieved)
            for future in futures:
                future.cancel()
            return None
        gone.cancel()
        for n, future, result in zip(slots, futures, answered.result()):
            name, inp = named[n]
            if isinstance(result, InputError):
                result = InputError(name, _as_sent(result.reason, name, inp))
            results[n] = result
            warned[n] = [dataclasses.replace(w, message=_as_sent(w.message, name, inp)) for w in future.warned]
    return results, warned


async def _segment_results(batcher: "Batcher", named: list, options: protocol.Options) -> tuple[list, tuple]:
    """A request with `segments`: its files read in windows (one answer per file and reading,
    each with its windows' vectors and times), embedded by the server's embedder through the
    segment pipeline on a thread beside the batcher (`Embedder._encode_segments`), with the
    server's embedding cache whatever `cache` says."""
    from bindcli.embed.inputs import in_segments
    from bindcli.errors import UsageError
    from bindcli.windows import Reading, Window

    try:
        window = Window.parse(options.segments)  # type: ignore[arg-type]
        readings = [Reading(r) for r in options.readings]
        expanded = []
        for name, x in named:
            expanded += [(name, y) for y in ([x] if isinstance(x, _Refused) else in_segments([x], window, readings))]
    except (UsageError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None
    live = [(n, x) for n, (_, x) in enumerate(expanded) if not isinstance(x, (_Refused, InputError))]
    results: list = [InputError(name, str(x)) if isinstance(x, _Refused) else x if isinstance(x, InputError)
                     else None for name, x in expanded]
    if live:
        found = await asyncio.to_thread(batcher.embedder.embed, [x for _, x in live])
        for (n, x), result in zip(live, found):
            name = expanded[n][0]
            results[n] = InputError(name, _as_sent(result.reason, name, x)) if isinstance(result, InputError) else result
    return expanded, (results, [[] for _ in expanded])


def _as_sent(message: str, name: str, inp: "Input") -> str:
    """A message about `inp` in the client's words: a file it sent named as it named it, not
    as the spool file the server wrote (`/tmp/bind-serve-XXXX/0.jpg`)."""
    return message if inp.literal else message.replace(inp.source, name)


def _retrieved(future: asyncio.Future) -> None:
    """Reads a cancelled gather's outcome, which asyncio would otherwise log as "never
    retrieved" for each client that went away."""
    if not future.cancelled():
        future.exception()


async def _disconnected(request: Request) -> None:
    """Returns once the client has closed its connection (the body was read already, so the
    next ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _vector(v: np.ndarray, *, b64: bool) -> "list[float] | str":
    return protocol.vector(np.asarray(v, dtype=protocol.FLOAT32), b64=b64)


def _result(name: str, r: "Embedding | InputError", warned: "list[Caught]", *, raw: bool, b64: bool) -> dict:
    answers = [w.answer() for w in warned]
    if isinstance(r, InputError):
        return protocol.failed(name, r.reason, answers)
    from bindcli.embed.stages import Segments

    if isinstance(r, Segments):
        answer = protocol.embedded(name, r.input.kind.value, [], r.sha256, r.cached, answers)
        del answer["embedding"]
        answer["reading"] = r.input.reading.value  # type: ignore[union-attr]
        answer["segments"] = [protocol.segment(e.start, e.end, _vector(e.raw if raw else e.unit, b64=b64))
                              for e in r.parts]
        return answer
    return protocol.embedded(name, r.input.kind.value, _vector(r.raw if raw else r.unit, b64=b64),
                             r.sha256, r.cached, answers)


def _npy(named: Sequence, results: list, warned: list, *, raw: bool) -> Response:
    """The vectors of the inputs that succeeded, one row each, as `.npy`; failures are named
    in the `X-Bind-Errors` header (JSON), warnings in `X-Bind-Warnings`."""
    from bindcli._util.formats import npy_bytes

    rows = [row for r in results if not isinstance(r, InputError)
            for row in (np.atleast_2d(r.raw if raw else r.unit))]  # a file in segments: a row per window
    errors = [{"input": name, "error": r.reason} for (name, _), r in zip(named, results) if isinstance(r, InputError)]
    if not rows:
        raise HTTPException(422, "; ".join(f"{e['input']}: {e['error']}" for e in errors))
    body = npy_bytes(np.stack(rows).astype(np.float32))
    notes = [{"input": name, **w.answer()} for (name, _), ws in zip(named, warned) for w in ws]
    headers = {"X-Bind-Errors": json.dumps(errors, ensure_ascii=True)} if errors else {}
    if notes:
        headers["X-Bind-Warnings"] = json.dumps(notes, ensure_ascii=True)
    return Response(body, media_type=NPY, headers=headers)


def _token_count(texts: list[str]) -> int:
    """Tokens the text tower read (start and end tokens included), for OpenAI's `usage`."""
    if not texts:
        return 0
    from bindcli import media

    return int((media.tokenize(texts) != 0).sum())
