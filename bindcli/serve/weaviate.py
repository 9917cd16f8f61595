"""Weaviate's `multi2vec-bind` inference container, as `bind serve --compat weaviate` speaks
it: Weaviate (its `BIND_INFERENCE_API`) then embeds through bind.

  * `GET /.well-known/ready`, `/.well-known/live`: 204 while the model thread runs.
  * `GET /meta`: what model this is, as a JSON object.
  * `POST /vectorize`: `{"texts", "images", "audio", "video", "imu", "thermal", "depth"}`, each
    a list (absent is empty); files as bare base64 (the kind is the field's) or data URLs.
    The answer has all seven `*Vectors` lists, always, of upstream's raw vectors (Weaviate
    weighs and averages the fields of an object itself); one input that fails refuses the
    request (Weaviate needs every vector), with `{"error": "images[1]: ..."}`.

Weaviate sends no Content-Type and no Authorization header, so these routes take JSON
whatever the Content-Type and are never behind the token (see `bind serve --weaviate-no-auth`).
Depth is bind's (a 16-bit PNG in millimetres or a float array in metres): the 8-bit pictures
the container's examples send are refused with a message saying so, rather than embedded into
vectors that mean something else than bind's depth vectors.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bindcli.errors import InputError
from bindcli.modality import Kind
from bindcli.serve import inputs
from bindcli.serve.answers import CLIENT_GONE, Json, results, vector
from bindcli.serve.inputs import Refused

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.serve.app import Settings
    from bindcli.serve.batching import Batcher

#: request field -> (kind, answer field), in the container's order
FIELDS = {
    "texts": (Kind.TEXT, "textVectors"), "images": (Kind.IMAGE, "imageVectors"),
    "audio": (Kind.AUDIO, "audioVectors"), "video": (Kind.VIDEO, "videoVectors"),
    "imu": (Kind.IMU, "imuVectors"), "thermal": (Kind.THERMAL, "thermalVectors"),
    "depth": (Kind.DEPTH, "depthVectors"),
}
READY, LIVE, META, VECTORIZE = "/.well-known/ready", "/.well-known/live", "/meta", "/vectorize"
PATHS = frozenset((READY, LIVE, META, VECTORIZE))


def error_body(message: str) -> dict:
    """How the container refuses: `{"error": TEXT}` (Weaviate reads a string there)."""
    return {"error": message}


def routes(batcher: "Batcher", settings: "Settings") -> list[Route]:
    async def alive(request: Request) -> Response:
        if not batcher.alive:
            return Json(error_body("the model thread stopped"), 503)
        return Response(status_code=204)

    async def meta(request: Request) -> Response:
        e = batcher.embedder
        return Json({"model": e.model_id, "config": e.config.name, "weights": e.weights.name,
                     "dimensions": e.config.out_embed_dim, "vectors": "raw", "served_by": "bind serve"})

    async def vectorize(request: Request) -> Response:
        body = await inputs.json_body(request)
        with tempfile.TemporaryDirectory(prefix="bind-serve-") as spool:
            named, fields = _read(body, settings, Path(spool))
            answered = await results(request, batcher, named, use_cache=True)
        if answered is None:
            return Response(status_code=CLIENT_GONE)
        got, _ = answered
        failed = [f"{name}: {r.reason}" for (name, _), r in zip(named, got) if isinstance(r, InputError)]
        if failed:
            raise HTTPException(400, "; ".join(failed))
        answer: dict[str, list] = {key: [] for _, key in FIELDS.values()}
        for field, r in zip(fields, got):
            answer[FIELDS[field][1]].append(vector(r.raw, b64=False))  # type: ignore[union-attr]
        return Json(answer)

    return [Route(READY, alive), Route(LIVE, alive), Route(META, meta),
            Route(VECTORIZE, vectorize, methods=["POST"])]


def _read(body: dict, settings: "Settings", spool: Path) -> tuple[list, list[str]]:
    """(name, Input or Refused) for every item of every field, and each one's field."""
    lists = {}
    for field in FIELDS:
        given = body.get(field)
        if given is None:
            given = []
        if not isinstance(given, list) or not all(isinstance(x, str) for x in given):
            raise HTTPException(400, f"{field} must be a list of strings")
        lists[field] = given
    count = sum(len(v) for v in lists.values())
    if count > settings.limits.max_inputs:
        inputs.check_count(count, settings.limits)
    named, fields = [], []
    for field, items in lists.items():
        kind = FIELDS[field][0]
        for i, item in enumerate(items):
            name = f"{field}[{i}]"
            try:
                if kind is Kind.TEXT:
                    named.append((name, inputs.text(item, settings.limits)))
                else:
                    named.append((name, inputs.media(spool, len(named), item, kind, settings.limits)))
            except Refused as refused:
                named.append((name, refused))
            fields.append(field)
    return named, fields
