"""`.txt` files -> one (77,) row of CLIP token ids."""

from __future__ import annotations

from pathlib import Path

import torch

from bindcli.errors import InputError
from bindcli.media.source import existing_file
from bindcli.media.tokenizer import tokenize


def load_text(source: str | Path, options: object = None) -> torch.Tensor:
    """The whole file, read as UTF-8 (a BOM is dropped), tokenised as one text (`options`:
    the loaders' common signature; texts have none)."""
    try:
        text = existing_file(source).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(source, f"text file is not UTF-8 (byte {exc.start})") from None
    return tokenize([text])[0]
