"""Files and strings -> the exact tensors ImageBind's encoders expect (upstream `data.py`).

`load` turns one input into one tensor without a batch dimension; `load_many` does it for
many inputs on a few threads, ahead of the consumer, so decoding overlaps encoding;
`tokenize` turns strings into CLIP token rows. This package knows files and transforms, not
the model.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.model.config (the sizes the
towers take), bindcli.windows (the windows of `segments`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from bindcli.errors import InputError, attributed_to
from bindcli.media.options import MediaOptions
from bindcli.media.tokenizer import tokenize
from bindcli.modality import PREPROCESSING_VERSION, Kind

__all__ = ["PREPROCESSING_VERSION", "MediaOptions", "load", "load_many", "tokenize"]

def load(source: str | Path, kind: Kind, options: MediaOptions | None = None) -> torch.Tensor:
    """One input's tensor, no batch dim, on CPU: float32, or int64 token ids for text.

    IMAGE (3,224,224); VIDEO (clips*3,3,2,224,224); AUDIO (clips,1,128,204); TEXT (77,);
    DEPTH and THERMAL (1,224,224); IMU (S,6,2000). Any unusable input raises InputError.
    Warnings raised meanwhile are attributed to `source` (`bindcli.errors.attributed_to`).
    """
    with attributed_to(source):
        return Kind(kind).modality.load(source, options or MediaOptions())


def load_or_error(
    source: str | Path, kind: Kind, options: MediaOptions | None
) -> torch.Tensor | InputError:
    """One input's tensor, or the InputError saying why it has none (never raises for a bad file)."""
    try:
        return load(source, kind, options)
    except InputError as exc:
        return exc
    except Exception as exc:  # a decoder bug on one odd file must not end the whole run
        error = InputError(source, f"could not be loaded ({type(exc).__name__}: {exc})")
        error.__cause__ = exc
        return error


def load_many(
    items: Iterable[tuple[str | Path, Kind]],
    options: MediaOptions | None = None,
    workers: int = 2,
    lookahead: int | None = None,
) -> Iterator[tuple[int, torch.Tensor | InputError]]:
    """(index, tensor or InputError) for each item, in input order, loaded on `workers` threads.

    At most `lookahead` items (default 2 x `workers`) are loaded or waiting ahead of the
    consumer, so memory stays bounded however long the input list is; a consumer that stops
    for long (an encoder's forward pass) wants enough of them to keep the workers busy
    meanwhile. A bad input is yielded as its error instead of stopping the run.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    lookahead = max(lookahead or 2 * workers, workers)
    pending: collections.deque[tuple[int, Future[torch.Tensor | InputError]]] = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bind-load") as pool:
        try:
            for index, (source, kind) in enumerate(items):
                pending.append((index, pool.submit(load_or_error, source, kind, options)))
                if len(pending) >= lookahead:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
