"""The wire format of bind's own API (`/v1/embed`, `/v1/models`, errors), written once for
both ends: the client (`bindcli.embed.remote`) builds requests and reads answers with it,
the server (`bindcli.serve.app`) reads requests and builds answers with it.

Standard library only: the client imports this and nothing else of `bindcli.serve`, so it
needs neither the server's extra nor numpy's help here (vectors are little-endian float32
bytes, `FLOAT32`, which either side turns into arrays its own way).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Protocol

EMBED = "/v1/embed"
MODELS = "/v1/models"
#: how vectors travel: little-endian float32 (as base64 of the bytes, or a JSON list)
FLOAT32 = "<f4"


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: a peer that shares this machine's files."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- requests: the client writes them, the server reads them ------------------------------


def text_input(text: str) -> dict:
    return {"text": text}


def path_input(path: str, modality: str) -> dict:
    """A file the server reads itself (a server on this machine only)."""
    return {"path": path, "modality": modality}


def data_input(data: bytes, filename: str, modality: str) -> dict:
    """A file sent as its bytes."""
    return {"data": base64.b64encode(data).decode("ascii"), "filename": filename, "modality": modality}


def embed_request(inputs: Sequence[dict], *, cache: bool) -> dict:
    """What the client sends to `/v1/embed`: upstream's raw vectors, as base64."""
    return {"inputs": list(inputs), "encoding_format": "base64", "raw": True, "cache": cache}


@dataclasses.dataclass(frozen=True)
class Options:
    """How a `/v1/embed` request wants its vectors: `raw` (upstream's, not unit ones),
    `base64` (float32 bytes, not a list), and whether the embedding cache may be used."""

    raw: bool = False
    cache: bool = True
    base64: bool = False
    #: `--segments` of the request (`"2s:1s"`): each long file answers one vector per window
    segments: str | None = None
    #: how a video's windows are read (`clips`, `frames`, `sound`), with `segments`
    readings: tuple[str, ...] = ()


#: how a query string (or a JSON string) may say yes or no
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def read_options(body: dict, query: dict) -> Options:
    """A request's options, from its JSON body or else its query string; ValueError for an
    encoding format there is none of, or a yes-or-no option that is neither."""

    def flag(name: str, default: bool) -> bool:
        value = body.get(name, query.get(name, default))
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in FLAGS:
            return FLAGS[value.lower()]
        given = repr(value[:40]) if isinstance(value, str) else f"a {type(value).__name__}"
        raise ValueError(f"{name} must be true or false, not {given}")

    fmt = body.get("encoding_format", query.get("encoding_format", "float"))
    if fmt not in ("float", "base64"):
        raise ValueError("encoding_format must be float or base64")
    segments = body.get("segments", query.get("segments"))
    if segments is not None and not isinstance(segments, str):
        raise ValueError("segments must be a string such as \"2s:1s\"")
    readings = body.get("reading", query.get("reading", ()))
    readings = (readings,) if isinstance(readings, str) else readings
    if not isinstance(readings, (list, tuple)) or not all(isinstance(r, str) for r in readings):
        raise ValueError("reading must be a string or a list of them")
    return Options(raw=flag("raw", False), cache=flag("cache", True), base64=fmt == "base64",
                   segments=segments, readings=tuple(readings))


# --- answers: the server writes them, the client reads them -------------------------------


#: what a server refuses past (`bindcli.serve.limits.Limits`'s fields), published in its
#: `/v1/models` entry so that a client packs its requests to fit them
LIMITS = ("max_body_bytes", "max_file_bytes", "max_inputs", "max_text_chars")


def limits_field(limits: object) -> dict:
    """The `limits` field of a `/v1/models` entry."""
    return {"limits": {name: int(getattr(limits, name)) for name in LIMITS}}


def read_limits(info: dict) -> dict[str, int]:
    """The limits a `/v1/models` entry publishes, by name (those it gives as positive
    integers: a server of an older version publishes none)."""
    given = info.get("limits")
    given = given if isinstance(given, dict) else {}
    return {name: value for name in LIMITS
            if isinstance(value := given.get(name), int) and not isinstance(value, bool) and value > 0}


class Float32s(Protocol):
    """A vector as the server holds it (a numpy array of dtype `FLOAT32`)."""

    def tobytes(self) -> bytes: ...

    def tolist(self) -> list: ...


def vector(v: Float32s, *, b64: bool) -> "list[float] | str":
    """A vector as it travels: base64 of its `FLOAT32` bytes, or a list of numbers."""
    return base64.b64encode(v.tobytes()).decode("ascii") if b64 else v.tolist()


def vector_bytes(result: dict) -> bytes:
    """The `FLOAT32` bytes of a base64 result's vector."""
    return base64.b64decode(result["embedding"])


def warning(category: str, message: str) -> dict:
    """One warning raised while the server decoded an input (see `bindcli.serve.caught`)."""
    return {"category": category, "message": message}


def warnings_field(warned: Iterable[dict]) -> dict:
    """The `warnings` field of one input's answer, absent when there were none."""
    listed = list(warned)
    return {"warnings": listed} if listed else {}


def relayed(result: dict) -> list[dict]:
    """The warnings an input's answer carries (each a `warning`)."""
    return list(result.get("warnings", ()))


def read_warning(relayed: dict) -> tuple[str, str]:
    """(category, message) of one relayed `warning`."""
    return str(relayed.get("category")), str(relayed.get("message"))


def embedded(name: str, modality: str, embedding: "list[float] | str", sha256: str, cached: bool,
             warned: Iterable[dict] = ()) -> dict:
    """One input's answer when it was embedded."""
    return {"input": name, "modality": modality, "embedding": embedding, "sha256": sha256,
            "cached": cached, **warnings_field(warned)}


def segment(start: float, end: float, embedding: "list[float] | str") -> dict:
    """One window of a file embedded in segments, in its answer's `segments`."""
    return {"start": start, "end": end, "embedding": embedding}


def failed(name: str, reason: str, warned: Iterable[dict] = ()) -> dict:
    """One input's answer when it could not be embedded."""
    return {"input": name, "error": reason, **warnings_field(warned)}


def error_body(message: str, status: int) -> dict:
    """The body of an answer that refuses a whole request: OpenAI's `error`, and the same
    text as `detail`, where Jina's clients (Weaviate's multi2vec-jinaai) read it."""
    return {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error"},
            "detail": message}


def error_text(body: object, status: int) -> str:
    """What a refusal says, from its body (`error_body`, or the start of whatever came)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return f"HTTP {status}" + (f": {error}" if error else "")
