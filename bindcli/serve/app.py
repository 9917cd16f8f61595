"""The HTTP API of `bind serve` (Starlette): `/v1/embed` (bind's own, multipart or JSON),
`/v1/embeddings` (OpenAI's, and what Jina-, infinity- and LangChain-style clients send: see
`openai`), `/v1/models`, `/health`, `/metrics`, and with `--compat weaviate` the routes of
Weaviate's inference container (`weaviate`). Browsers may call it from the origins the
operator allows (`--cors-origin`).

Requests only parse, check and answer: every input becomes a Future of the `Batcher`, so
requests share batches, an input that fails fails alone, and a client that goes away before
its answer is ready has its inputs dropped from the queue. The warnings raised while an
input was decoded come back with it (`warnings`: category and message), which is how
`RemoteEmbedder` warns as an in-process run would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bindcli._util.paths import not_a_file
from bindcli.errors import InputError
from bindcli.modality import Kind
from bindcli.serve import inputs, openai, protocol, weaviate
from bindcli.serve.answers import CLIENT_GONE, Json, as_sent, results, token_count, vector
from bindcli.serve.inputs import Refused as _Refused
from bindcli.serve.limits import Limits
from bindcli.serve.protocol import is_loopback
from bindcli.serve.urls import UrlPolicy

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.stages import Embedding
    from bindcli.serve.batching import Batcher
    from bindcli.serve.caught import Caught
    from bindcli.serve.ui import Page

NPY = "application/x-npy"
#: the APIs of other programs that `--compat` turns on
COMPAT = ("weaviate",)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the app needs besides the batcher."""

    limits: Limits = Limits()
    token: str | None = None
    allow_dirs: tuple[Path, ...] = ()  # path inputs only under these (when given)
    compat: frozenset[str] = frozenset()  # of COMPAT
    cors_origins: tuple[str, ...] = ()  # browsers' origins that may call the API ("*": any)
    urls: UrlPolicy | None = None  # http(s) URL inputs, when the operator allows them
    ui: "Page | None" = None  # the page over a collection file (`bind serve --ui`)
    host: str | None = None  # the TCP address listened on, a name the page may be reached by


def build_app(batcher: "Batcher", settings: Settings) -> Starlette:
    """The ASGI app over one batcher; closing it (lifespan shutdown) drains the batcher."""
    metrics = batcher.metrics
    started = int(time.time())

    async def health(request: Request) -> Response:
        if not batcher.alive:
            return Json({"status": "error", "error": "the model thread stopped"}, 503)
        page = {"ui": settings.ui.url} if settings.ui is not None and settings.ui.url else {}
        return Json({"status": "ok", "model": batcher.embedder.model_id, **page})

    def entry() -> dict:
        e = batcher.embedder
        return {
            "id": e.model_id, "object": "model", "created": started, "owned_by": "bind",
            "config": e.config.name, "weights": e.weights.name,
            "towers": sorted(getattr(e.encoder, "towers", ())), "device": str(e.placement.device),
            "precision": e.placement.precision, "dimensions": e.config.out_embed_dim,
            "vectors_id": e.vectors_id,  # the model id and any loading option that changes it
            **protocol.limits_field(settings.limits),  # so that clients pack requests to fit
        }

    async def models(request: Request) -> Response:
        return Json({"object": "list", "data": [entry()]})

    async def model(request: Request) -> Response:
        asked = request.path_params["model_id"]
        if asked != batcher.embedder.model_id:
            raise HTTPException(404, f"no model {asked!r} here; this server serves {batcher.embedder.model_id}")
        return Json(entry())

    async def metrics_text(request: Request) -> Response:
        towers = sorted(getattr(batcher.embedder.encoder, "towers", ()))
        return PlainTextResponse(metrics.text(towers), media_type="text/plain; version=0.0.4")

    async def embed(request: Request) -> Response:
        with tempfile.TemporaryDirectory(prefix="bind-serve-") as spool:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                named, options = await _multipart(request, settings, Path(spool))
            else:
                named, options = _json_inputs(await inputs.json_body(request), request, settings, Path(spool))
            if options.segments is None:
                answered = await results(request, batcher, named, use_cache=options.cache)
            else:
                named, answered = await _segment_results(batcher, named, options)
        if answered is None:
            return Response(status_code=CLIENT_GONE)
        got, warned = answered
        if NPY in request.headers.get("accept", ""):
            return _npy(named, got, warned, raw=options.raw)
        return Json({
            "model": batcher.embedder.model_id,
            "results": [_result(name, r, w, raw=options.raw, b64=options.base64)
                        for (name, _), r, w in zip(named, got, warned)],
        })

    async def embeddings(request: Request) -> Response:
        body = await inputs.json_body(request)
        with tempfile.TemporaryDirectory(prefix="bind-serve-") as spool:
            asked = await openai.read(request, body, settings, Path(spool), batcher.embedder.config.out_embed_dim)
            answered = await results(request, batcher, asked.named, use_cache=True)
        if answered is None:
            return Response(status_code=CLIENT_GONE)
        got, warned = answered
        for n, ((name, _), r) in enumerate(zip(asked.named, got)):
            if isinstance(r, InputError):
                raise HTTPException(400, f"input {n} ({name}): {r.reason}")
        texts = [e.source for _, e in asked.named if e.literal]
        tokens = await asyncio.to_thread(token_count, texts)
        data = [
            {"object": "embedding", "index": n,
             "embedding": vector(r.raw if asked.raw else r.unit, b64=asked.b64),  # type: ignore[union-attr]
             # an extra field, which OpenAI's clients keep and ignore
             **protocol.warnings_field(x.answer() for x in w)}
            for n, (r, w) in enumerate(zip(got, warned))
        ]
        return Json({"object": "list", "data": data, "model": batcher.embedder.model_id,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _refusal(request.url.path, exc.status_code, exc.detail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(batcher.close)  # in-flight requests are answered by now

    routes = [
        Route("/health", health), Route(protocol.MODELS, models), Route("/models", models),
        Route(protocol.MODELS + "/{model_id:path}", model), Route("/models/{model_id:path}", model),
        Route("/metrics", metrics_text),
        Route(protocol.EMBED, embed, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]), Route("/embeddings", embeddings, methods=["POST"]),
    ]
    if "weaviate" in settings.compat:
        routes += weaviate.routes(batcher, settings)
    if settings.ui is not None:
        from bindcli.serve.ui import ui_routes

        routes += ui_routes(batcher, settings, settings.ui)
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    # Weaviate sends no token: its routes are open (serve --weaviate-no-auth says so beyond loopback)
    tokenless = weaviate.PATHS if "weaviate" in settings.compat else frozenset()
    app.add_middleware(_Guard, settings=settings, metrics=metrics,  # type: ignore[arg-type]
                       routes={r.path for r in routes if "{" not in r.path}, tokenless=tokenless)
    if settings.cors_origins:  # outside the guard: a preflight carries no token
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),  # type: ignore[arg-type]
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
                           max_age=600)
    return app


def _refusal(path: str, status: int, message: str) -> Response:
    """A refused request, in the shape the route's clients read."""
    if path in weaviate.PATHS:
        return Json(weaviate.error_body(message), status)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Json(protocol.error_body(message, status), status, headers=headers)


class _Guard:
    """ASGI middleware in front of every route: the bearer token (401; not on `tokenless`
    paths; the page's login cookie stands for it under /ui), the body-size limit (413, from
    Content-Length or while the body streams in), the request counters, and with the page the
    headers that keep a browser from running anything but the page's own script."""

    def __init__(self, app, settings: Settings, metrics, routes: set[str], tokenless: frozenset[str]) -> None:  # noqa: ANN001
        self.app, self.settings, self.metrics, self.routes = app, settings, metrics, routes
        self.tokenless = tokenless
        if settings.ui is not None:
            from bindcli.serve import ui

            self.ui = ui

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in self.routes else "models/{id}" if path.startswith(("/v1/models/", "/models/")) else "other"
        status = [500]

        async def counted_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if self.settings.ui is not None:
                    message["headers"] = [*message.get("headers", []), *self.ui.SECURITY_HEADERS]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                return await _refusal(path, *refusal)(scope, receive, counted_send)
            await self.app(scope, self._limited(receive), counted_send)
        finally:
            self.metrics.request(route, status[0])

    def _refusal(self, scope: dict) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token, path = self.settings.token, scope["path"]
        page = self.settings.ui is not None and (path == "/ui" or path.startswith("/ui/"))
        if page:
            refused = self.ui.refusal(path, headers, token, self.settings.host)
            if refused is not None:
                return refused
        if token is not None and path not in self.tokenless and not (page and self.ui.logged_in(path, headers, token)):
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


# --- reading bind's own requests ---------------------------------------------------------------


def _options(source: dict, query: dict) -> protocol.Options:
    try:
        return protocol.read_options(source, query)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


async def _multipart(request: Request, settings: Settings, spool: Path) -> tuple[list, protocol.Options]:
    """`file` parts (a `modality` field right after one applies to it; `?modality=` to all)
    and `text` fields, in the order sent."""
    limits = settings.limits
    every = inputs.kind_named(request.query_params.get("modality"), "modality")
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
                parts[-1][2] = inputs.kind_named(value, parts[-1][0])
        inputs.check_count(len(parts), limits)
        named = []
        for n, (name, value, kind) in enumerate(parts):
            try:
                if isinstance(value, str):
                    named.append((name, inputs.text(value, limits)))
                else:
                    named.append((name, inputs.spooled(spool, n, name, await value.read(), kind, limits)))
            except _Refused as refused:
                named.append((name, refused))
    finally:
        await form.close()
    return named, _options({}, dict(request.query_params))


def _json_inputs(body: dict, request: Request, settings: Settings, spool: Path) -> tuple[list, protocol.Options]:
    """`{"inputs": [{"text"} | {"path"} | {"data", "filename"}], "modality": ...}`."""
    from bindcli.embed.inputs import Input

    entries = body.get("inputs")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise HTTPException(400, 'expected {"inputs": [{"text": ...} | {"path": ...} | {"data": ..., "filename": ...}]}')
    limits = settings.limits
    inputs.check_count(len(entries), limits)
    every = inputs.kind_named(body.get("modality"), "modality")
    # a Unix socket's peer has no address (and is on this machine); TCP peers must be loopback
    local = request.client is None or not request.client.host or is_loopback(request.client.host)
    named = []
    for n, entry in enumerate(entries):
        kind = inputs.kind_named(entry.get("modality"), f"input {n}") or every
        wrong = next((k for k in ("text", "path", "data", "filename") if not isinstance(entry.get(k, ""), str)), None)
        if wrong:
            raise HTTPException(400, f"input {n}: {wrong} must be a string")
        name = entry.get("path") or entry.get("filename") or entry.get("text") or f"input {n}"
        try:
            if "text" in entry and kind in (None, Kind.TEXT):
                named.append((name, inputs.text(entry["text"], limits)))
            elif "path" in entry:
                named.append((name, Input(_allowed_path(entry["path"], local, settings),
                                          inputs.detected(name, kind))))
            elif "data" in entry:
                data = inputs.decoded(entry["data"], "data")
                named.append((name, inputs.spooled(spool, n, entry.get("filename") or name, data, kind, limits)))
            else:
                raise HTTPException(400, f"input {n}: give text, path or data")
        except _Refused as refused:
            named.append((name, refused))
    return named, _options(body, dict(request.query_params))


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
            results[n] = InputError(name, as_sent(result.reason, name, x)) if isinstance(result, InputError) else result
    return expanded, (results, [[] for _ in expanded])


# --- answering bind's own requests -------------------------------------------------------------


def _result(name: str, r: "Embedding | InputError", warned: "list[Caught]", *, raw: bool, b64: bool) -> dict:
    answers = [w.answer() for w in warned]
    if isinstance(r, InputError):
        return protocol.failed(name, r.reason, answers)
    from bindcli.embed.stages import Segments

    if isinstance(r, Segments):
        answer = protocol.embedded(name, r.input.kind.value, [], r.sha256, r.cached, answers)
        del answer["embedding"]
        answer["reading"] = r.input.reading.value  # type: ignore[union-attr]
        answer["segments"] = [protocol.segment(e.start, e.end, vector(e.raw if raw else e.unit, b64=b64))
                              for e in r.parts]
        return answer
    return protocol.embedded(name, r.input.kind.value, vector(r.raw if raw else r.unit, b64=b64),
                             r.sha256, r.cached, answers)


def _npy(named: Sequence, results: list, warned: list, *, raw: bool) -> Response:
    """The vectors of the inputs that succeeded, one row each, as `.npy`; failures are named
    in the `X-Bind-Errors` header (JSON), warnings in `X-Bind-Warnings`."""
    import numpy as np

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
