"""OpenAI's embeddings API as `bind serve` speaks it, and what other clients of that shape
send: `POST /v1/embeddings` (also `/embeddings`), `GET /v1/models` (also `/models`) and
`GET /v1/models/{id}`.

`input` is a string or a list of items, each one of:
  * a text (a string), or the token ids a client made of one (LangChain; see `tokens`);
  * a data URL of a file (`data:image/png;base64,...`, `;name=x.wav` read for its suffix),
    or, with a top-level `modality` (infinity's field), bare base64 or an http(s) URL;
  * an object naming its kind (Jina's API, Weaviate's multi2vec-jinaai): `{"text": ...}` or
    one of `{"image"|"audio"|"video"|"depth"|"thermal"|"imu": data URL, bare base64 or URL}`.
Vectors are unit length unless `normalized` is false (then upstream's raw ones), as floats or
base64 (`encoding_format`, or Jina's `embedding_type`). `dimensions` may only be the model's
width (or 0): bind does not shorten vectors. One bad item refuses the request (400), naming it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bindcli.modality import Kind
from bindcli.serve import inputs, tokens, urls
from bindcli.serve.inputs import Refused

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.inputs import Input
    from bindcli.serve.app import Settings

#: the field of an object item (Jina's) names its kind
ITEM_KINDS = {k.value: k for k in Kind}


@dataclasses.dataclass
class Asked:
    """What one `/v1/embeddings` request asks for."""

    named: list  # (name, Input)
    b64: bool
    raw: bool


def _flag(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise HTTPException(400, f"{name} must be true or false")
    return value


def _encoding(body: dict) -> bool:
    """Whether vectors go as base64: OpenAI's `encoding_format`, or Jina's `embedding_type`."""
    for field in ("embedding_type", "encoding_format"):
        fmt = body.get(field)
        if fmt is not None:
            if fmt not in ("float", "base64"):
                raise HTTPException(400, f"{field} must be float or base64")
            return fmt == "base64"
    return False


def _check_dimensions(body: dict, width: int) -> None:
    asked = body.get("dimensions")
    if asked is None or (type(asked) is int and asked in (0, width)):
        return
    raise HTTPException(400, f"dimensions {asked!r}: this model's vectors have {width} dimensions, and bind does "
                             f"not shorten them; leave dimensions out, or give 0 or {width}")


async def read(request: Request, body: dict, settings: "Settings", spool: Path, width: int) -> Asked:
    """The request's inputs and options; a 400 (or 413) for anything it cannot be."""
    given = body.get("input")
    if isinstance(given, str) or tokens.is_token_ids(given):
        items = [given]
    elif isinstance(given, list):
        items = given
    else:
        raise HTTPException(400, "input must be a string, a list of strings, token-id arrays or objects "
                                 '({"text": ...} or {"image": ...})')
    _check_dimensions(body, width)
    b64, raw = _encoding(body), not _flag(body, "normalized", True)
    inputs.check_count(len(items), settings.limits)
    every = inputs.kind_named(body.get("modality"), "modality")
    model = body.get("model") if isinstance(body.get("model"), str) else ""
    named = []
    for n, item in enumerate(items):
        try:
            named.append(await _item(n, item, every, model, settings, spool))
        except (Refused, urls.UrlRefused, tokens.TokensRefused) as refused:
            raise HTTPException(400, f"input {n}: {refused}") from None
    return Asked(named, b64, raw)


async def _item(n: int, item: object, every: Kind | None, model: str, settings: "Settings",
                spool: Path) -> "tuple[str, Input]":
    limits = settings.limits
    if isinstance(item, dict):
        if len(item) != 1 or next(iter(item)) not in ITEM_KINDS:
            raise Refused("an object item holds one field: text, or " + ", ".join(k for k in ITEM_KINDS if k != "text"))
        (field, value), = item.items()
        if not isinstance(value, str):
            raise Refused(f"{field} must be a string")
        kind = ITEM_KINDS[field]
        if kind is Kind.TEXT:
            return value, inputs.text(value, limits)
        return f"input {n}", await _media(n, value, kind, settings, spool)
    if tokens.is_token_ids(item):
        text = await asyncio.to_thread(tokens.decode, item, model)  # type: ignore[arg-type]
        return text, inputs.text(text, limits)
    if not isinstance(item, str):
        raise Refused("each item is a string, a token-id array or an object")
    if inputs.is_data_url(item) or every not in (None, Kind.TEXT):
        return f"input {n}", await _media(n, item, every, settings, spool)
    return item, inputs.text(item, limits)


async def _media(n: int, value: str, kind: Kind | None, settings: "Settings", spool: Path) -> "Input":
    """A file given as a data URL, bare base64 or (when the operator allows) an http(s) URL."""
    if not urls.is_url(value):
        return inputs.media(spool, n, value, kind, settings.limits)
    if settings.urls is None:
        raise Refused("URL inputs are off on this server (bind serve --url-inputs); send the file as base64")
    data, mime, final = await asyncio.to_thread(urls.fetch, value, settings.urls)
    kind = kind or inputs.MIME_KINDS.get(mime.split("/")[0])
    if kind is None:
        raise Refused(f"{mime or 'no MIME type'}: say which modality with the modality field")
    suffix = Path(urlsplit(final).path).suffix.lower() or inputs.mime_suffix(mime)
    return inputs.spooled(spool, n, f"input-{n}{suffix or inputs.sniffed_suffix(data, kind)}", data, kind,
                          settings.limits)
