"""Token-id arrays back to the texts they were made from.

LangChain's `OpenAIEmbeddings` tokenises with tiktoken before it sends (its default
`check_embedding_ctx_length=True`), and sends the ids. The server decodes them with the
encoding the client used: tiktoken's for the request's `model` (as LangChain picks it from
its `model`), else `cl100k_base`, LangChain's fallback. tiktoken downloads an encoding's
file the first time and keeps it in `TIKTOKEN_CACHE_DIR` (by default a folder in the
temporary directory); a server without network needs the file put there beforehand.
"""

from __future__ import annotations

import functools

FALLBACK = "cl100k_base"
INSTEAD = "or send texts (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))"


class TokensRefused(Exception):
    """Token ids that cannot be turned back into text here, and what to do instead."""


@functools.lru_cache(maxsize=8)
def _encoding(model: str):  # noqa: ANN202 (tiktoken.Encoding, imported lazily)
    try:
        import tiktoken
    except ImportError:
        raise TokensRefused(f"token-id input needs tiktoken on the server (pip install tiktoken), {INSTEAD}") from None
    try:
        try:
            return tiktoken.encoding_for_model(model)
        except KeyError:
            return tiktoken.get_encoding(FALLBACK)
    except Exception as exc:  # no network for its first download: requests', urllib's or a hash error
        raise TokensRefused(
            f"could not load tiktoken's encoding for model {model!r} ({type(exc).__name__}: {exc}); tiktoken "
            f"downloads it once into TIKTOKEN_CACHE_DIR, {INSTEAD}"
        ) from None


def is_token_ids(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int for t in value)


def decode(ids: list[int], model: str) -> str:
    """The text `ids` encode in the client's encoding; TokensRefused when they are not ids
    of it, or not UTF-8 text."""
    encoding = _encoding(model)
    try:
        data = encoding.decode_bytes(ids)
    except (KeyError, ValueError, OverflowError, TypeError):
        raise TokensRefused(f"token ids that are not of the {encoding.name} encoding") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TokensRefused(f"token ids that do not decode to UTF-8 text in the {encoding.name} encoding") from None
