"""The page of `bind serve --ui`: its files (`static/`, shipped in the package) and the JSON
routes it calls, over the collections of one collection file.

Search, compare and classify embed through the server's batcher, as `/v1/embed` does, and
take uploads under the same limits. Files go out only as items of a collection: a request
names an item by its id, the path comes from the collection, and the file is served only if
that path still resolves to itself (no symlink put in its place since). Everything the page
shows of the data it sets as text, never as HTML; the answers carry a Content-Security-Policy
that runs no script but the page's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from bindcli._util.paths import is_uri, path_text
from bindcli.errors import BindError, InputError
from bindcli.media.picture import PICTURED
from bindcli.serve import answers, inputs
from bindcli.serve.answers import Json
from bindcli.serve.app import Settings
from bindcli.serve.inputs import Refused
from bindcli.serve.thumbs import Thumbnails
from bindcli.vectors import combine, similarity

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.collections.collection import Collection
    from bindcli.serve.batching import Batcher

PREFIX = "/ui"
#: the routes anyone may fetch: the page's own files hold no data
PUBLIC = ("/ui", "/ui/", "/ui/login", "/ui/static/")
COOKIE = "bind_ui"
#: the header the page sends on its API calls: a cross-site form cannot set it, and a
#: cross-site script cannot without a preflight this server never grants
CALLER = "x-bind-ui"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
       "base-uri 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
)
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
#: the content types a file is served as; anything else (SVG, HTML: they could run script)
#: goes out as a download of bytes
SHOWN = ("image/", "audio/", "video/", "text/plain")
MOST_HITS = 200


@dataclasses.dataclass(frozen=True)
class Page:
    """What the page serves from: a collection file, and where the page is (for /health)."""

    db: Path
    url: str | None = None


def cookie_value(token: str) -> str:
    """What the login cookie holds: a digest of the token, not the token itself."""
    return hmac.new(token.encode(), b"bind serve --ui", hashlib.sha256).hexdigest()


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def refusal(path: str, headers: dict[str, str], token: str | None, host: str | None) -> tuple[int, str] | None:
    """Why a request under /ui is refused before it reaches its route, or None.

    Without a token the server listens on this machine only, and a page of another site
    could still reach it through a name of its own that resolves here (DNS rebinding): the
    Host must then be a loopback name. The API calls must carry the page's header, which
    another site's form cannot send."""
    if token is None:
        given = headers.get("host", "localhost")
        name = given[1:given.find("]")] if given.startswith("[") else given.rsplit(":", 1)[0]
        if name.lower() not in LOOPBACK_NAMES | ({host} if host else set()):
            return 403, f"this page answers on loopback names only, not {name!r}"
    if path.startswith(PREFIX + "/api/") and headers.get(CALLER) != "1":
        return 403, f"the page's API calls carry the {CALLER} header"
    return None


def logged_in(path: str, headers: dict[str, str], token: str) -> bool:
    """Whether a request under /ui passes without the bearer token: the page's own files
    (they hold no data), the login itself, or a request with the login cookie."""
    if path in PUBLIC[:3] or path.startswith(PUBLIC[3]):
        return True
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return False
    given = jar.get(COOKIE)
    return given is not None and hmac.compare_digest(given.value.encode(), cookie_value(token).encode())


def ui_routes(batcher: "Batcher", settings: Settings, page: Page) -> list[Route]:
    """The page's routes, all under /ui."""
    limits = settings.limits
    thumbs = Thumbnails(Path(f"{page.db}.thumbs"))

    async def index(request: Request) -> Response:
        return _static("index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        return _static(name)

    async def login(request: Request) -> Response:
        try:
            given = json.loads(await request.body()).get("token", "")
        except (ValueError, AttributeError):
            raise HTTPException(400, 'expected {"token": "..."}') from None
        token = settings.token
        if token is None:
            return Json({"ok": True})
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "wrong token")
        answer = Json({"ok": True})
        answer.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict", path=PREFIX)
        return answer

    async def collections(request: Request) -> Response:
        return Json(await asyncio.to_thread(_collections, page.db, batcher.embedder.vectors_id))

    async def search(request: Request) -> Response:
        with tempfile.TemporaryDirectory(prefix="bind-ui-") as spool:
            form = await _form(request, settings)
            try:
                terms = await _terms(form, Path(spool), settings)
                name = _field(form, "collection") or "default"
                k = _number(_field(form, "k") or "24", "k", int, 1, MOST_HITS)
                mode = _field(form, "mode") or "auto"
                if mode not in ("auto", "exact", "approximate"):
                    raise HTTPException(400, "mode: one of auto, exact, approximate")
                kinds = tuple(inputs.kind_named(v, "kind").value for v in form.getlist("kind") if v)  # type: ignore[union-attr]
                filters = (kinds, tuple(str(v) for v in form.getlist("under") if v),
                           tuple(str(v) for v in form.getlist("glob") if v))
            finally:
                await form.close()
            vectors = await _vectors(request, batcher, terms)
        found = await asyncio.to_thread(_search, page.db, name, batcher.embedder.vectors_id, terms, vectors,
                                        k, mode, filters)
        return Json(found)

    async def compare(request: Request) -> Response:
        with tempfile.TemporaryDirectory(prefix="bind-ui-") as spool:
            form = await _form(request, settings)
            try:
                terms = await _terms(form, Path(spool), settings)
            finally:
                await form.close()
            vectors = await _vectors(request, batcher, terms)
        if any(v is None for v in vectors):
            raise HTTPException(400, "compare takes files and texts")
        units = np.stack(vectors)  # type: ignore[arg-type]
        return Json({"names": [t.name for t in terms],
                      "matrix": np.round(similarity(units, units).astype(np.float64), 4).tolist()})

    async def classify(request: Request) -> Response:
        from bindcli.zeroshot import Classifier, prompts, templates_for

        with tempfile.TemporaryDirectory(prefix="bind-ui-") as spool:
            form = await _form(request, settings)
            try:
                labels = [str(v).strip() for v in form.getlist("label") if str(v).strip()]
                terms = await _terms(form, Path(spool), settings)
            finally:
                await form.close()
            if not labels:
                raise HTTPException(400, "give the candidate labels")
            if any(t.item is not None for t in terms):
                raise HTTPException(400, "classify takes files and texts")
            by_kind = templates_for({t.input.kind for t in terms if hasattr(t.input, "kind")}, ())
            asked = prompts(labels, by_kind)
            everything = terms + [_Term(p, inputs.text(p, limits)) for p in asked]
            embedded = await _embedded(request, batcher, everything)
        classifier = Classifier.from_prompts(labels, by_kind, dict(zip(asked, embedded[len(terms):])))
        return Json({"results": [
            {"input": t.name, "labels": [{"label": s.label, "probability": round(s.probability, 4),
                                          "score": round(s.score, 4)} for s in classifier.rank(e)]}
            for t, e in zip(terms, embedded)
        ]})

    async def item_file(request: Request) -> Response:
        item = await asyncio.to_thread(_served_item, page.db, request)
        path = item.path
        media = mimetypes.guess_type(path)[0] or ""
        if not media.startswith(SHOWN) or media == "image/svg+xml":
            return FileResponse(path, media_type="application/octet-stream",
                                filename=os.path.basename(path), content_disposition_type="attachment")
        if media == "text/plain":
            media = "text/plain; charset=utf-8"
        return FileResponse(path, media_type=media)

    async def thumbnail(request: Request) -> Response:
        item = await asyncio.to_thread(_served_item, page.db, request)
        try:
            data = await asyncio.to_thread(thumbs.get, item.path, item.kind)
        except InputError as exc:
            return Json({"error": exc.reason}, 422)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    return [
        Route(PREFIX, index), Route(PREFIX + "/", index), Route(PREFIX + "/static/{name}", static),
        Route(PREFIX + "/login", login, methods=["POST"]),
        Route(PREFIX + "/api/collections", collections),
        Route(PREFIX + "/api/search", search, methods=["POST"]),
        Route(PREFIX + "/api/compare", compare, methods=["POST"]),
        Route(PREFIX + "/api/classify", classify, methods=["POST"]),
        Route(PREFIX + "/file/{collection}/{item:int}", item_file),
        Route(PREFIX + "/thumb/{collection}/{item:int}", thumbnail),
    ]


def _static(name: str) -> Response:
    data = resources.files("bindcli.serve").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


# --- reading the page's requests ----------------------------------------------------------


@dataclasses.dataclass
class _Term:
    """One term of a query: an input to embed, or an item of the collection ("more like
    this", its stored vector), with its weight."""

    name: str
    input: object = None  # an Input, or the Refused that stopped it
    item: int | None = None
    weight: float = 1.0


async def _form(request: Request, settings: Settings):  # noqa: ANN202 - starlette's FormData
    limits = settings.limits
    try:
        return await request.form(max_files=limits.max_inputs, max_fields=2 * limits.max_inputs + 32,
                                  max_part_size=limits.max_file_bytes)
    except HTTPException:
        raise
    except Exception as exc:  # starlette's MultiPartException: a malformed body
        raise HTTPException(400, f"malformed multipart body: {exc}") from None


def _field(form, key: str) -> str | None:  # noqa: ANN001
    value = form.get(key)
    return value if isinstance(value, str) else None


def _number(text: str, what: str, kind: type, low: float, high: float):  # noqa: ANN202
    try:
        value = kind(text)
    except ValueError:
        raise HTTPException(400, f"{what}: not a number: {text!r}") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{what}: {value} is not between {low} and {high}")
    return value


async def _terms(form, spool: Path, settings: Settings) -> list[_Term]:  # noqa: ANN001
    """The `text`, `file` and `like` parts in the order sent; a `weight` right after one
    weighs it, a `modality` right after a file says its kind (a recording from the
    microphone comes as WebM, which would read as video). Files are spooled under the
    per-file limit; one that cannot be read as sent is kept as its refusal."""
    limits = settings.limits
    parts: list[list] = []  # [key, value, kind, weight]
    for key, value in form.multi_items():
        if key in ("text", "like") and isinstance(value, str) and value.strip():
            parts.append([key, value, None, 1.0])
        elif key == "file" and isinstance(value, UploadFile):
            parts.append([key, value, None, 1.0])
        elif key == "weight" and parts:
            parts[-1][3] = _number(str(value), "weight", float, -100, 100)
        elif key == "modality" and parts and parts[-1][0] == "file":
            parts[-1][2] = inputs.kind_named(value, "modality")
    if not parts:
        raise HTTPException(400, "nothing to search by: type a text, drop a file or pick a result")
    if len(parts) > limits.max_inputs:
        raise HTTPException(413, f"{len(parts)} inputs, over the {limits.max_inputs}-input limit")
    terms = []
    for n, (key, value, kind, weight) in enumerate(parts):
        if key == "like":
            terms.append(_Term(f"item {value}", item=_number(value, "like", int, 0, 2**62), weight=weight))
            continue
        name = value if key == "text" else value.filename or f"file {n}"
        try:
            found = inputs.text(value, limits) if key == "text" else inputs.spooled(
                spool, n, name, await value.read(), kind, limits)
        except Refused as refused:
            found = refused
        terms.append(_Term(name, found, weight=weight))
    return terms


async def _embedded(request: Request, batcher: "Batcher", terms: list[_Term]) -> list:
    """The Embeddings of these terms (422 naming the first that failed)."""
    answered = await answers.results(request, batcher, [(t.name, t.input) for t in terms], use_cache=True)
    if answered is None:
        raise HTTPException(499, "the page went away")
    results, _ = answered
    for term, result in zip(terms, results):
        if isinstance(result, InputError):
            raise HTTPException(422, f"{term.name}: {result.reason}")
    return results


async def _vectors(request: Request, batcher: "Batcher", terms: list[_Term]) -> list[np.ndarray | None]:
    """Each term's unit vector; None for a "more like this" item (read from the collection)."""
    asked = [t for t in terms if t.item is None]
    embedded = iter(await _embedded(request, batcher, asked) if asked else ())
    return [None if t.item is not None else next(embedded).unit for t in terms]


# --- the collection file (each call in a thread of its own, on a connection of its own) ----


@contextlib.contextmanager
def _opened(db: Path, name: str) -> "Iterator[Collection]":
    """Collection `name` of the file, on a connection of its own (404 when there is none)."""
    from bindcli.collections.collection import Collection

    try:
        coll = Collection.open(db, name, create=False)
    except BindError as exc:
        raise HTTPException(404, str(exc)) from None
    with coll:
        yield coll


def _collections(db: Path, vectors_id: str) -> dict:
    """Each collection of the file with its state, and whether this server's model made it
    (only then can it be searched by what the page sends)."""
    from bindcli.collections.collection import Collection
    from bindcli.collections.store import Store

    if not db.is_file():
        return {"file": path_text(str(db)), "collections": []}
    with Store.existing(db) as store:
        found = []
        for coll in Collection.all(store):
            info = coll.info()
            found.append({
                "name": info["name"], "files": info["files"], "per_modality": info["per_modality"],
                "model": info["model"], "model_id": info["model_id"], "search": info.get("search"),
                "updated": info["updated"], "created": info["created"],
                "searchable": coll.record.model_id == vectors_id,
            })
    return {"file": path_text(str(db)), "collections": found}


def _search(db: Path, name: str, vectors_id: str, terms: list[_Term], vectors: list, k: int,
            mode: str, filters: tuple) -> dict:
    from bindcli.collections.nearest import Filters
    from bindcli.collections.store import decode_vector

    with _opened(db, name) as coll:
        if coll.record.model_id != vectors_id:
            raise HTTPException(409, f"collection {name!r} was made by model {coll.record.model}, "
                                     "not this server's: its scores against this query would mean nothing")
        own = set()
        for n, term in enumerate(terms):
            if term.item is not None:
                item = coll.store.live_item(coll.record, term.item)
                if item is None:
                    raise HTTPException(404, f"collection {name!r} has no item {term.item}")
                vectors[n] = decode_vector(item.blob, coll.record.dtype)
                own.add(item.path)
        try:
            query = combine(vectors, [t.weight for t in terms])
        except BindError as exc:
            raise HTTPException(422, str(exc)) from None
        hits = coll.search_vector(query, k, Filters(*filters), mode=mode, leave_out=[frozenset(own)])
        ids = coll.store.item_ids(coll.record, [h.path for h in hits])
        return {"collection": name, "hits": [_hit(h, ids.get(h.path)) for h in hits]}


def _hit(hit, item: int | None) -> dict:  # noqa: ANN001 - a Hit
    """A hit as the page reads it; `start` and `end` (seconds) where the hit is a segment."""
    answer = {"id": item, "path": path_text(hit.path), "name": os.path.basename(path_text(hit.path)),
              "kind": hit.kind, "score": round(float(hit.score), 4), "pictured": hit.kind in PICTURED}
    if hit.start is not None:
        answer.update(start=float(hit.start), end=float(hit.end))
    return answer


def _served_item(db: Path, request: Request):  # noqa: ANN202 - a StoredItem
    """The item the request names by id, if its file may be served: a local file whose path
    resolves to the path the collection holds (no link put in its place since)."""
    with _opened(db, request.path_params["collection"]) as coll:
        item = coll.store.live_item(coll.record, request.path_params["item"])
    if item is None:
        raise HTTPException(404, "no such item in this collection")
    if is_uri(item.path) or os.path.realpath(item.path) != item.path or not os.path.isfile(item.path):
        raise HTTPException(404, f"{path_text(item.path)}: not a file this server can show")
    return item
