"""Where a config's checkpoint is: the path `--weights` or `BIND_WEIGHTS` names, else its
place in bind's cache, under the file name of its published URL.

Where a config's weights are published is `bindcli.model.pretrained`'s registry, or a JSON
config's own `"weights"`. Nothing here touches the network or the file's contents.
"""

from __future__ import annotations

import enum
import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Union

from bindcli._util.folders import cache_dir
from bindcli.errors import WeightsError, WeightsNotDownloaded
from bindcli.model.pretrained import REGISTRY, Pretrained

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.model.config import ModelConfig

#: the config whose weights `bind weights` and `resolve()` fetch unless told otherwise
DEFAULT_CONFIG = "imagebind_huge"
#: a config as `--model-config` names it (a built-in name or a JSON file's path), or loaded
Config = Union[str, "ModelConfig"]
OFFLINE_VARS = ("BIND_OFFLINE", "HF_HUB_OFFLINE")


class Source(enum.Enum):
    """Who named the checkpoint: each is a different mistake when the file is missing."""

    OPTION = "--weights"
    ENV = "BIND_WEIGHTS"
    CACHE = "cache"


#: what to do when the file a source names is missing
HINTS = {
    Source.OPTION: "check the path given",
    Source.ENV: "fix or unset BIND_WEIGHTS",
    Source.CACHE: "run `bind weights download`",
}


def published(config: Config = DEFAULT_CONFIG) -> Pretrained | None:
    """Where `config`'s weights are published: its JSON file's `"weights"`, else the registry's
    entry for its name; None where neither says."""
    if isinstance(config, str):
        if config in REGISTRY:
            return REGISTRY[config]
        if not Path(config).expanduser().is_file():
            return None
        from bindcli.model.config import load_config  # only for a JSON file: doctor imports no model code

        config = load_config(config)
    return config.weights or REGISTRY.get(config.name)


def config_name(config: Config) -> str:
    return config if isinstance(config, str) else config.name


def weights_url(config: Config = DEFAULT_CONFIG) -> str:
    """`BIND_WEIGHTS_URL` (a mirror), else where `config`'s weights are published."""
    if os.environ.get("BIND_WEIGHTS_URL"):
        return os.environ["BIND_WEIGHTS_URL"]
    entry = published(config)
    if entry is None:
        raise WeightsError(
            f"no published weights are known for the model config {config_name(config)!r}; pass --weights "
            "PATH or set BIND_WEIGHTS to its checkpoint (or BIND_WEIGHTS_URL to download one, or "
            'give a JSON config a "weights": {"url": ...}).'
        )
    return entry.url


def offline_var() -> str | None:
    """The variable that turned offline mode on, or None when the network may be used."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return var
    return None


def cached_path(url: str | None = None) -> Path:
    """Where the download of `url` is (or would be) kept: the cache, under the URL's file name."""
    name = Path(urllib.parse.urlsplit(url or weights_url()).path).name
    return cache_dir() / (name or REGISTRY[DEFAULT_CONFIG].file_name)


def named_path(weights: str | Path | None = None, config: Config = DEFAULT_CONFIG) -> tuple[Path, Source]:
    """Where the checkpoint is or would be, and who said so: --weights, BIND_WEIGHTS or the cache.

    Never downloads; the path may not exist yet.
    """
    if weights is not None:
        return Path(weights).expanduser(), Source.OPTION
    if os.environ.get("BIND_WEIGHTS"):
        return Path(os.environ["BIND_WEIGHTS"]).expanduser(), Source.ENV
    return cached_path(weights_url(config)), Source.CACHE


def find(weights: str | Path | None = None, config: Config = DEFAULT_CONFIG) -> Path:
    """The checkpoint `resolve` would load, without downloading; a WeightsError if it is not
    there (`WeightsNotDownloaded` where `resolve` would download it, or could not: no URL is
    known for `config`)."""
    try:
        path, source = named_path(weights, config)
    except WeightsError as err:  # only `weights_url` raises: the cache cannot hold them either
        raise WeightsNotDownloaded(None, str(err)) from None
    if source is Source.CACHE and not path.is_file():
        raise WeightsNotDownloaded(path, _missing(path, HINTS[source]))
    return existing(path, HINTS[source])


def existing(path: Path, hint: str = "") -> Path:
    """`path` if it is a file, else a WeightsError naming it (and `hint`, what to do about it)."""
    if not path.is_file():
        raise WeightsError(_missing(path, hint))
    return path


def _missing(path: Path, hint: str) -> str:
    what = "is not a file" if path.exists() else "does not exist"
    return f"the weights file {path} {what}" + (f"; {hint}." if hint else ".")
