"""Answering, for every route: each input handed to the `Batcher` and its result awaited
(or dropped when the client goes away first), vectors as they travel, and JSON in ASCII."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse

from bindcli.errors import InputError
from bindcli.serve import protocol
from bindcli.serve.inputs import Refused

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.inputs import Input
    from bindcli.embed.stages import Embedding
    from bindcli.serve.batching import Batcher
    from bindcli.serve.caught import Caught

CLIENT_GONE = 499  # nginx's status for a client that closed the connection first


class Json(JSONResponse):
    """A JSON answer in ASCII: names and texts a client sent may hold lone surrogates (a
    file name that is not UTF-8, `"\\ud800"`), which JSON escapes but UTF-8 cannot hold."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def results(
    request: Request, batcher: "Batcher", named: list, *, use_cache: bool
) -> "tuple[list[Embedding | InputError], list[list[Caught]]] | None":
    """Each input's result and the warnings raised while it was decoded, in order; None
    when the client went away first (its inputs are then cancelled, which drops those still
    queued). `named` holds (name, Input or Refused) pairs."""
    slots = [n for n, (_, x) in enumerate(named) if not isinstance(x, Refused)]
    futures = batcher.submit([(named[n][1], named[n][0]) for n in slots], use_cache=use_cache)
    answers: list = [InputError(name, str(x)) if isinstance(x, Refused) else None for name, x in named]
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
                result = InputError(name, as_sent(result.reason, name, inp))
            answers[n] = result
            warned[n] = [dataclasses.replace(w, message=as_sent(w.message, name, inp)) for w in future.warned]
    return answers, warned


def as_sent(message: str, name: str, inp: "Input") -> str:
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


def vector(v: np.ndarray, *, b64: bool) -> "list[float] | str":
    return protocol.vector(np.asarray(v, dtype=protocol.FLOAT32), b64=b64)


def token_count(texts: list[str]) -> int:
    """Tokens the text tower read (start and end tokens included), for OpenAI's `usage`."""
    if not texts:
        return 0
    from bindcli import media

    return int((media.tokenize(texts) != 0).sum())
