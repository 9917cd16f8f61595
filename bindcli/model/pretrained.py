"""Published checkpoints, by the name of the built-in config they fit: where each is fetched
from, about what it weighs, under which licence, and its SHA-256 where its publisher gives one.

Data only (no torch), so finding where weights come from stays cheap. A config without an
entry (any JSON file) has no weights to download: they must be named (`--weights`).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import PurePosixPath


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """One published checkpoint."""

    url: str
    #: bytes, for messages: the tensors' share of the file, which adds a small pickled index
    size: int
    #: whose weights they are, and the licence's name, terms and text
    owner: str
    licence: str
    terms: str
    licence_url: str
    #: the SHA-256 its publisher states, None where none is published
    sha256: str | None = None

    @property
    def file_name(self) -> str:
        return PurePosixPath(urllib.parse.urlsplit(self.url).path).name

    @property
    def size_text(self) -> str:
        return f"about {self.size / 1e9:.1f} GB"

    @property
    def notice(self) -> str:
        """What a download says before it starts: accepting the licence is downloading."""
        return (
            f"The ImageBind weights are {self.owner}'s, licensed {self.licence} ({self.terms}; "
            f"{self.licence_url}). By downloading them you accept those terms; they also "
            "govern the embeddings you make with them."
        )


REGISTRY: dict[str, Pretrained] = {
    "imagebind_huge": Pretrained(
        url="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
        size=4_803_147_960,  # 1,200,786,990 float32 numbers
        owner="Meta",
        licence="CC BY-NC-SA 4.0",
        terms="non-commercial, share-alike",
        licence_url="https://creativecommons.org/licenses/by-nc-sa/4.0/",
    ),
}
