"""Which numbers an embedding is: the model (a config and its weights, and their id), the
loading options that change vectors, and the cache key that holds all of it for one input.
Nothing here imports torch, so a caller can check a collection's model before loading one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from bindcli.errors import UsageError
from bindcli.modality import PREPROCESSING_VERSION, TOWERS
from bindcli.model.adapter import Adapter, read_adapter
from bindcli.model.config import ModelConfig, load_config

if TYPE_CHECKING:  # pragma: no cover
    from bindcli._util.hashing import Progress
    from bindcli.embed.inputs import Input
    from bindcli.media import MediaOptions
    from bindcli.weights import Notify


class CacheKey(NamedTuple):
    """Everything that decides an embedding's numbers."""

    sha256: str
    model_id: str
    preprocessing: str
    precision: str
    kind: str
    options: str = ""


def cache_key(
    inp: "Input", sha: str, model: str, precision: str, options: "MediaOptions | None",
    adapter: Adapter | None = None,
) -> CacheKey:
    """The embedding-cache key of `inp`, with content hash `sha`, as model id `model` computes
    it at `precision` from inputs loaded with `options` (`loading_options`). An adapter
    changes only its tower's vectors: the other kinds keep the base model's entries. A file
    read in segments keys on its window spec and reading too: its one entry holds every window."""
    kind = inp.kind.value
    if adapter is not None and inp.kind.tower == adapter.tower:
        model = with_adapter(model, adapter)
    text = options.cache_text(kind) if options else ""
    if inp.window is not None and inp.reading is not None:  # one entry holds all the file's windows
        text += f"|segments={inp.window.text}|reading={inp.reading.value}"
        if inp.span is not None:
            text += f"|at={inp.span[0]!r}-{inp.span[1]!r}"
        if options and inp.reading.value != kind:  # the sound of a video reads the audio options
            text += options.cache_text(_READ_OPTIONS.get(inp.reading.value, kind))
    return CacheKey(sha, model, PREPROCESSING_VERSION, precision, kind, text)


#: the loading options a reading of another kind's file reads (`MediaOptions.cache_text`)
_READ_OPTIONS = {"sound": "audio", "clips": "video", "frames": "image"}


def with_adapter(model: str, adapter: Adapter | None) -> str:
    """A model id with an adapter's id after it: what names its tuned tower's numbers."""
    return model if adapter is None else f"{model}+adapter={adapter.id}"


def model_id(config: ModelConfig, weights: Path) -> str:
    """Names the numbers a model computes: config name, a hash of its shape, and the weights
    (their recorded SHA-256 when `bind weights` fetched them, else size and mtime)."""
    from bindcli.weights import identifies, read_record

    stat = weights.stat()
    what = identifies(read_record(weights), stat.st_size)
    if what is None:
        what = hashlib.sha256(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{config_id(config)}:{what[:12]}"


def config_id(config: ModelConfig) -> str:
    """The start of a model id that names the config, its name and a hash of its shape: what
    a client without the weights can check of a server's model (`bindcli.embed.remote.served_model`)."""
    shape = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{config.name}:{shape[:8]}"


@dataclasses.dataclass(frozen=True)
class Model:
    """Which numbers are computed: a config and its weights file, resolved, with their id.

    Resolving needs no torch, so a caller can check a collection's model (or find that
    nothing needs embedding) before anything heavy is imported.
    """

    config: ModelConfig
    weights: Path
    id: str
    #: the server whose word the id is, for a client without the weights
    #: (`bindcli.embed.remote.served_model`); `weights` is then only the name of the server's file
    server: str | None = None
    #: the `bind tune` adapter put on the model, if any (its id is part of `vectors_id`)
    adapter: Adapter | None = None

    @classmethod
    def resolve(
        cls,
        model_config: "str | Path | ModelConfig" = "imagebind_huge",
        weights: str | Path | None = None,
        *,
        download: bool = True,
        progress: "Progress | None" = None,
        notify: "Notify | None" = None,
        adapter: "str | Path | Adapter | None" = None,
    ) -> "Model":
        """The config by name or file, and the weights: `weights`, else `$BIND_WEIGHTS`,
        else the cached download of the config's published weights (fetched now if missing
        and allowed; `progress` and `notify` hear it, see `bindcli.weights.download`).

        `download=False` raises `WeightsNotDownloaded` instead of fetching them: a caller that
        can ask a server for the model (`bindcli.embed.remote.borrow`) need not download it first.
        `adapter` (a file from `bind tune`) must have been tuned on this model.
        """
        from bindcli import weights as weight_files

        config = model_config if isinstance(model_config, ModelConfig) else load_config(model_config)
        if download:
            path = weight_files.resolve(weights, config=config, progress=progress, notify=notify)
        else:
            path = weight_files.find(weights, config)
        return cls(config, path, model_id(config, path)).adapted(adapter)

    def adapted(self, adapter: "str | Path | Adapter | None") -> "Model":
        """This model with `adapter` on it (None: as it is); one tuned on another model is a
        UsageError naming both ids."""
        if adapter is None:
            return self
        if not isinstance(adapter, Adapter):
            adapter = read_adapter(adapter)
        if adapter.tower not in TOWERS:
            raise UsageError(f"{adapter.path}: tunes an unknown tower {adapter.tower!r}")
        adapter.check_base(self.id)
        return dataclasses.replace(self, adapter=adapter)

    def describe(self) -> str:
        """e.g. `imagebind_huge (imagebind_huge.pth)`: how collections name their model."""
        tuned = f" + {self.adapter.path.name}" if self.adapter is not None else ""
        return f"{self.config.name} ({self.weights.name}{tuned})"

    def vectors_id(self, options: "MediaOptions | None" = None) -> str:
        """What a collection of this model's vectors, loaded with `options`, is pinned to
        (`vectors_id`)."""
        return vectors_id(self.id, self.config, options, self.adapter)


def vectors_id(
    model: str, config: ModelConfig, options: "MediaOptions | None", adapter: Adapter | None = None
) -> str:
    """Names how vectors were made: the model id, the adapter's id if one is on it
    (`+adapter=…`), plus each loading option that changes them (`+audio_upstream_quirks=False`
    for `--audio-mix mono`), so one collection never holds vectors made two ways and a server
    is used only when it makes them the run's way. With upstream's loading and no adapter,
    the model id."""
    model = with_adapter(model, adapter)
    chosen = loading_options(config, options)
    if chosen is None:
        return model
    usual = dataclasses.asdict(loading_options(config, None) or type(chosen)())
    return model + "".join(
        f"+{k}={v}" for k, v in dataclasses.asdict(chosen).items() if v != usual[k]
    )


def loading_options(config: ModelConfig, options: "MediaOptions | None") -> "MediaOptions | None":
    """The loading options, with the log-mel size this config's audio tower takes (None, the
    defaults, stays None for ImageBind's own size, so cache keys stay as they were)."""
    size = (config.audio_num_mel_bins, config.audio_target_len)
    if options is None and size == (ModelConfig.audio_num_mel_bins, ModelConfig.audio_target_len):
        return None
    from bindcli.media.options import MediaOptions

    return dataclasses.replace(options or MediaOptions(), audio_mel_bins=size[0], audio_frames=size[1])
