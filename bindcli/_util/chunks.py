"""Work in pieces of bounded size: consecutive slices of a sequence (`batched`) or the
(start, stop) bounds of such slices (`spans`), where a loop writes into a preallocated array.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

S = TypeVar("S", bound=Sequence)


def batched(items: S, size: int) -> Iterator[S]:
    """Consecutive slices of `items`, each of at most `size` (a numpy array slices as views)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]  # type: ignore[misc]


def spans(length: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive runs of at most `size` in `range(length)`."""
    for start in range(0, length, size):
        yield start, min(start + size, length)
