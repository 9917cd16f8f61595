"""Published checkpoints, by the name of the built-in config they fit: where each is fetched
from, about what it weighs, under which licence, and its SHA-256 where its publisher gives one.

Data only (no torch), so finding where weights come from stays cheap. A JSON config names
its own in a `"weights"` object of the same fields (`from_json`); a config with neither has no
weights to download: they must be named (`--weights`).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import PurePosixPath
from typing import Any

from bindcli.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """One published checkpoint."""

    url: str
    #: bytes, for messages: the tensors' share of the file, which adds a small pickled index;
    #: 0 where not given
    size: int = 0
    #: whose weights they are, and the licence's name, terms and text ("" where not given)
    owner: str = ""
    licence: str = ""
    terms: str = ""
    licence_url: str = ""
    #: the SHA-256 its publisher states, None where none is published
    sha256: str | None = None

    @property
    def file_name(self) -> str:
        return PurePosixPath(urllib.parse.urlsplit(self.url).path).name

    @property
    def size_text(self) -> str:
        return f"about {self.size / 1e9:.1f} GB" if self.size else "size not given"

    @property
    def notice(self) -> str | None:
        """What a download says before it starts: accepting the licence is downloading (None
        where no owner is named, as in a JSON config that gives only a URL)."""
        if not self.owner:
            return None
        return (
            f"The ImageBind weights are {self.owner}'s, licensed {self.licence} ({self.terms}; "
            f"{self.licence_url}). By downloading them you accept those terms; they also "
            "govern the embeddings you make with them."
        )


def from_json(data: Any, where: str) -> Pretrained:
    """The `"weights"` object of the JSON config `where`: `url` required, the other fields
    optional; anything else is a ConfigError naming the config."""
    fields = {f.name for f in dataclasses.fields(Pretrained)}
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not data["url"]:
        raise ConfigError(f"config {where!r}: \"weights\" must be an object with a \"url\"")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"config {where!r}: unknown key(s) {', '.join(unknown)} in \"weights\"; keys are "
            f"{', '.join(sorted(fields))}"
        )
    sha256 = data.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and len(sha256) == 64
                                   and all(c in "0123456789abcdefABCDEF" for c in sha256)):
        raise ConfigError(f"config {where!r}: \"weights\".sha256 must be 64 hex digits, not {sha256!r}")
    return Pretrained(**{**data, "sha256": sha256.lower() if sha256 else None})


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
