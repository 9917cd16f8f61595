"""CLIP's byte-level BPE tokeniser, as upstream ImageBind's `SimpleTokenizer` applies it.

Rows are SOT + BPE ids cut to 76 + EOT, zero-padded to 77: upstream's rule since PR #142
(2025-11-21). The older rule cut *after* appending EOT, so long texts lost it and the text
tower's `argmax` pooling (which finds EOT, the highest id) picked an arbitrary token.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.resources
from collections.abc import Sequence

import ftfy
import regex
import torch

from bindcli.model.config import TEXT_CONTEXT_LENGTH

CONTEXT_LENGTH = TEXT_CONTEXT_LENGTH
SOT = 49406  # <|startoftext|>
EOT = 49407  # <|endoftext|>
_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
_N_MERGES = 49152 - 256 - 2  # merge lines used after the header line
_WORD_END = "</w>"
_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def _byte_alphabet() -> dict[int, str]:
    """Each byte -> a printable unicode character (printable Latin-1 bytes map to themselves).

    BPE then works on strings with no whitespace or control characters in them.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Tokenizer:
    """Text -> CLIP BPE ids. Built once (see `_tokenizer`); `encode` is cached per word."""

    def __init__(self) -> None:
        self.byte_alphabet = _byte_alphabet()
        raw = importlib.resources.files("bindcli.media").joinpath(_VOCAB_FILE).read_bytes()
        lines = gzip.decompress(raw).decode("utf-8").split("\n")[1 : _N_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        symbols = list(self.byte_alphabet.values())
        vocab = symbols + [s + _WORD_END for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.bpe = functools.lru_cache(maxsize=65536)(self._bpe)

    def _bpe(self, word: str) -> tuple[str, ...]:
        """Merge the characters of `word` by merge rank, lowest first, until none applies."""
        parts = [*word[:-1], word[-1] + _WORD_END]
        while len(parts) > 1:
            pairs = set(zip(parts, parts[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        """BPE ids of `text` after CLIP's cleaning, without SOT/EOT."""
        ids: list[int] = []
        for word in _PATTERN.findall(clean(text)):
            symbols = "".join(self.byte_alphabet[b] for b in word.encode("utf-8"))
            ids.extend(self.ids[piece] for piece in self.bpe(symbols))
        return ids


def clean(text: str) -> str:
    """CLIP's normalisation: fix mojibake, unescape HTML twice, collapse whitespace, lowercase."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer()


def tokenize(texts: Sequence[str]) -> torch.Tensor:
    """(N, 77) int64 token rows: SOT, ids (cut so SOT + ids fit 76), EOT, zero padding."""
    if isinstance(texts, str):
        raise TypeError("tokenize takes a sequence of strings; wrap a single text in a list")
    tok = _tokenizer()
    rows = torch.zeros(len(texts), CONTEXT_LENGTH, dtype=torch.int64)
    for i, text in enumerate(texts):
        ids = ([SOT] + tok.encode(text))[: CONTEXT_LENGTH - 1] + [EOT]
        rows[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return rows
