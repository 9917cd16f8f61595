"""Reading what a request asks to embed, for every route: its JSON body, a modality's name,
texts, and files sent as data URLs or bare base64 (written to the request's spool folder
under a suffix the loaders read), each an `Input` or the `Refused` reason it is not one.

A file that comes without a name (bare base64, as Weaviate sends it) gets its suffix from
its bytes where the kind's loader reads more than one format (`.npy`, `.npz` or `.csv` for
IMU, an array or an image for depth); images, sounds and videos are read by their content.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bindcli.errors import InputError
from bindcli.modality import Kind, detect
from bindcli.serve.limits import Limits

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.inputs import Input

#: MIME major types of data URLs that name a kind by themselves
MIME_KINDS = {"image": Kind.IMAGE, "audio": Kind.AUDIO, "video": Kind.VIDEO, "text": Kind.TEXT}
#: suffixes Python's `mimetypes` does not give, or gives oddly
MIME_SUFFIXES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/mpeg": ".mp3",
                 "image/jpeg": ".jpg", "application/x-npy": ".npy", "text/csv": ".csv"}
NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


class Refused(Exception):
    """One input that cannot be embedded, found while reading the request."""


class _Duplicate(ValueError):
    """A JSON object that names one field twice: which one was meant is not ours to guess."""


def _unique(pairs: list[tuple[str, object]]) -> dict:
    fields: dict = {}
    for key, value in pairs:
        if key in fields:
            raise _Duplicate(key)
        fields[key] = value
    return fields


async def json_body(request: Request) -> dict:
    """The body as a JSON object, whatever its Content-Type (Weaviate sends none); a 400
    saying what is wrong otherwise."""
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


def kind_named(value: object, what: str) -> Kind | None:
    """The kind a `modality` field names (None when absent); a 400 for one there is not."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise HTTPException(400, f"{what}: modality must be a string")
    try:
        return Kind(value.lower())
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise HTTPException(400, f"{what}: unknown modality {value!r}; one of {known}") from None


def check_count(n: int, limits: Limits) -> None:
    if n == 0:
        raise HTTPException(400, "no inputs")
    if n > limits.max_inputs:
        raise HTTPException(413, f"{n} inputs, over the {limits.max_inputs}-input limit (bind serve --max-inputs)")


def text(value: str, limits: Limits) -> "Input":
    """A text input; an empty or blank one is refused, as the commands refuse it."""
    from bindcli.embed.inputs import Input

    if not value.strip():
        raise Refused("empty text")
    if len(value) > limits.max_text_chars:
        raise Refused(f"text of {len(value)} characters, over this server's {limits.max_text_chars}-character "
                      "limit (bind serve --max-text-chars)")
    return Input.text(value)


def detected(name: str, kind: Kind | None) -> Kind:
    try:
        return detect(name, kind, choose="send a modality field with")
    except InputError as exc:
        raise Refused(exc.reason) from None


def spooled(spool: Path, n: int, name: str, data: bytes, kind: Kind | None, limits: Limits) -> "Input":
    """An uploaded file, written where the loaders can read it, under a name that keeps its
    suffix (the kind when none is given)."""
    from bindcli.embed.inputs import Input

    if len(data) > limits.max_file_bytes:
        raise HTTPException(413, f"{name}: over the {limits.max_file_bytes}-byte per-file limit")
    kind = detected(name, kind)
    suffix = Path(name).suffix.lower()
    path = spool / f"{n}{suffix if suffix[1:].isalnum() else ''}"  # not the client's NUL or slash
    path.write_bytes(data)
    return Input(str(path), kind)


def sniffed_suffix(data: bytes, kind: Kind) -> str:
    """The suffix a nameless file of `kind` is read by, from its first bytes."""
    if data.startswith(NPY_MAGIC) and kind in (Kind.IMU, Kind.DEPTH):
        return ".npy"
    if data.startswith(ZIP_MAGIC) and kind in (Kind.IMU, Kind.DEPTH):
        return ".npz"
    return ".csv" if kind is Kind.IMU else ""


def mime_suffix(mime: str) -> str:
    return MIME_SUFFIXES.get(mime) or mimetypes.guess_extension(mime) or ""


def is_data_url(value: str) -> bool:
    return value[:5].lower() == "data:"


def decoded(payload: str, what: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):  # or characters that are not ASCII
        raise Refused(f"{what} is not valid base64") from None


def data_url(url: str) -> tuple[str, str | None, bytes]:
    """(MIME type, the `name=` it gives or None, bytes) of `data:MIME[;name=N][;...];base64,DATA`
    (the scheme and MIME type in any case)."""
    header, comma, payload = url.partition(",")
    params = header[len("data:"):].split(";")
    if not comma or params[-1].strip().lower() != "base64":
        raise Refused("expected a data URL: data:MIME;base64,DATA")
    mime = params[0].strip().lower()
    named = next((p.partition("=")[2].strip('"') for p in params[1:-1] if p.strip().lower().startswith("name=")), None)
    return mime, named, decoded(payload, "the data URL")


def media(spool: Path, n: int, value: str, kind: Kind | None, limits: Limits) -> "Input":
    """A file sent as a data URL or as bare base64 (then `kind` must be known): spooled under
    the suffix its MIME type, its `name=` or its bytes say."""
    if is_data_url(value):
        mime, named, data = data_url(value)
        kind = kind or MIME_KINDS.get(mime.split("/")[0])
        if kind is None:
            raise Refused(f"{mime or 'no MIME type'}: say which modality with the modality field")
        suffix = Path(named).suffix.lower() if named else ""
        suffix = suffix or mime_suffix(mime)
    elif kind is None:
        raise Refused("say which modality with the modality field, or send a data URL")
    else:
        data = decoded(value, "the data")
        suffix = ""
    return spooled(spool, n, f"input-{n}{suffix or sniffed_suffix(data, kind)}", data, kind, limits)
