"""Cross-modal generation: an ImageBind query vector conditions Stable unCLIP.

ImageBind's vision tower is OpenCLIP ViT-H/14, frozen, and every other modality was trained
to land beside it; Stable Diffusion 2.1 unCLIP (`stabilityai/stable-diffusion-2-1-unclip`) is
conditioned on ViT-H/14 image embeddings. So the vector of a bark, a depth map or `bird.wav +
fruit.jpg` can stand in for an image embedding. The pipeline is diffusers' stock
`StableUnCLIPImg2ImgPipeline`, called with `image_embeds=`; bind wraps it and forks nothing.

The scale. A query vector is unit length (`vectors.combine`), but unCLIP was trained on raw,
un-normalised CLIP image embeddings, and the community disagrees on what to hand it (audio at
norm 20, raw image vectors, a "strength"). The checkpoint itself answers: its
`image_normalizer` holds the per-dimension mean and standard deviation of the embeddings it
was trained on (it standardises them as `(x - mean) / std` before noising them). For a
training embedding, E||x||^2 = sum_i E[x_i^2] = sum_i (mean_i^2 + std_i^2), so the unit query
is scaled to sqrt(sum(mean^2 + std^2)): the typical norm of what the model saw, computed from
the loaded pipeline at run time (right for any unCLIP checkpoint, without running it).
`embedding_scale` overrides it. The direction is ImageBind's; only the length is unCLIP's.

Everything heavy (torch, diffusers, transformers) is imported inside the functions: they are
the optional extra `bindcli[generate]`, and no other command may pay for them.

Imports: bindcli._util, bindcli.errors, bindcli.model, bindcli.weights, bindcli.query.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib.util
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bindcli import __version__
from bindcli._util import atomic, extras
from bindcli.errors import UsageError, WeightsError
from bindcli.model.placement import Placement, Precision, place
from bindcli.weights import offline_var

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

    from bindcli.query import Query

#: the unCLIP checkpoint conditioned on OpenCLIP ViT-H/14, ImageBind's vision tower
DEFAULT_MODEL = "stabilityai/stable-diffusion-2-1-unclip"


class Offload(str, enum.Enum):
    """What `--offload` accepts, for GPUs too small to hold the whole pipeline: `model` keeps
    each component in CPU memory until it runs (diffusers' model CPU offload, little slower),
    `sequential` moves one layer at a time (least GPU memory, much slower); both need
    accelerate and a GPU."""

    NONE = "none"
    MODEL = "model"
    SEQUENTIAL = "sequential"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How an image is made; `size` None is the model's own (768 px for SD 2.1 unCLIP),
    `embedding_scale` None is the checkpoint's expected norm (see the module docstring)."""

    steps: int = 20
    guidance: float = 10.0
    noise_level: int = 0
    size: tuple[int, int] | None = None  # (width, height) in pixels
    prompt: str = ""
    negative_prompt: str = ""
    embedding_scale: float | None = None


def require_extra() -> None:
    """Refuses, naming the pip install, when diffusers or transformers is missing."""
    missing = extras.GENERATE.missing()
    if missing:
        raise UsageError(extras.GENERATE.hint(missing))


#: the largest side `--size` takes: past it a few steps need tens of GB, and SD 2.1 unCLIP,
#: trained at 768, draws repeated fragments rather than a larger picture
MAX_SIDE = 2048


def parse_size(text: str) -> tuple[int, int]:
    """`768` or `768x512` (width x height), each a positive multiple of 8 (the VAE's)."""
    parts = text.lower().split("x")
    try:
        width, height = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        width = height = 0
    if width <= 0 or height <= 0 or width % 8 or height % 8:
        raise UsageError(f"--size {text}: give N or WxH in pixels, multiples of 8 (e.g. 768)")
    if max(width, height) > MAX_SIDE:
        raise UsageError(f"--size {text}: at most {MAX_SIDE} pixels a side (the model was trained at 768)")
    return width, height


def check_output(path: str | Path) -> None:
    """The image is a PNG (its text chunks record how it was made): a name that promises
    another format is refused before anything is loaded, rather than holding PNG bytes."""
    if Path(path).suffix.lower() != ".png":
        raise UsageError(f"-o {path}: bind generate writes PNG files (they record how the image was "
                         "made); name it .png, and convert it afterwards for another format")


def _looks_local(model: str) -> bool:
    """A folder path rather than a Hub id (`owner/name`): absolute, ./, ~ or existing."""
    return os.path.isdir(model) or model.startswith((".", "/", "~")) or model.count("/") != 1


def _hub_cache() -> str:
    """The Hugging Face cache folder, read from the environment now (huggingface_hub reads
    it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def locate_model(model: str = DEFAULT_MODEL, *, progress: bool = True) -> Path:
    """The pipeline's folder: a local folder as is, else its snapshot in the Hugging Face
    cache, downloaded now when missing (the Hub's own progress bars on stderr, unless
    `progress` is false). Only the diffusers files are fetched, not the repo's .ckpt files.
    Offline (HF_HUB_OFFLINE or BIND_OFFLINE) nothing is fetched: a missing model is a
    WeightsError saying what to download and where."""
    if _looks_local(model):
        folder = Path(model).expanduser()
        if not (folder / "model_index.json").is_file():
            reason = "no model_index.json in it" if folder.is_dir() else "no such folder"
            raise WeightsError(f"{model}: {reason} (--diffusion-model takes a Hub id such as "
                               f"{DEFAULT_MODEL} or a folder saved by diffusers)")
        return folder
    from diffusers import StableUnCLIPImg2ImgPipeline
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    offline = offline_var()
    were_disabled = are_progress_bars_disabled()
    (enable_progress_bars if progress else disable_progress_bars)()
    try:
        with _quiet_loading():  # diffusers logs its own fallback to the cache
            return Path(StableUnCLIPImg2ImgPipeline.download(
                model, local_files_only=bool(offline), cache_dir=_hub_cache(),
            ))
    except Exception as exc:  # the Hub's errors have no common base: OSError, HTTP, network
        raise WeightsError(_not_fetched(model, exc, offline)) from exc
    finally:
        (disable_progress_bars if were_disabled else enable_progress_bars)()


def _not_fetched(model: str, exc: BaseException, offline: str | None) -> str:
    where = _hub_cache()
    get = (f"run `hf download {model} --exclude '*.ckpt'` on a machine with network access "
           f"and copy its cache folder to {where}, or pass --diffusion-model FOLDER")
    if offline:
        return (f"diffusion model {model} is not in the Hugging Face cache ({where}) and "
                f"offline mode is on ({offline}=1), so it was not downloaded: {get}")
    while exc.__cause__ is not None:  # diffusers re-raises the Hub's error as "see above"
        exc = exc.__cause__
    lines = str(exc).strip().splitlines()
    reason = lines[0][:200] if lines else type(exc).__name__
    return (f"diffusion model {model} is not in the Hugging Face cache ({where}) and could "
            f"not be downloaded ({reason}): {get}")


def embedding_width(folder: Path) -> int:
    """The image-embedding width the pipeline takes, from its normalizer's config (no
    weights loaded), so a mismatch is refused before anything heavy runs."""
    config = folder / "image_normalizer" / "config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["embedding_dim"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{config}: not a Stable unCLIP image normalizer ({exc})") from None


def check_settings(folder: Path, settings: Settings) -> None:
    """Refuses settings the pipeline cannot run, from its configs, before any work."""
    config = folder / "image_noising_scheduler" / "scheduler_config.json"
    try:
        top = int(json.loads(config.read_text(encoding="utf-8")).get("num_train_timesteps", 1000)) - 1
    except (OSError, ValueError, TypeError) as exc:
        raise WeightsError(f"{config}: not a Stable unCLIP noising scheduler ({exc})") from None
    if not 0 <= settings.noise_level <= top:
        raise UsageError(f"--noise-level {settings.noise_level}: use 0..{top}")
    if settings.steps < 1:
        raise UsageError(f"--steps {settings.steps}: use at least 1")
    if settings.embedding_scale is not None and not settings.embedding_scale > 0:
        raise UsageError(f"--embedding-scale {settings.embedding_scale}: use a positive norm")


def check_width(query_width: int, model_width: int, model: str) -> None:
    """ImageBind's embedding width must be the one unCLIP was trained on."""
    if query_width != model_width:
        raise UsageError(
            f"--diffusion-model {model} takes {model_width}-wide image embeddings and the "
            f"ImageBind model makes {query_width}-wide ones; use a matching pair "
            f"(imagebind_huge with {DEFAULT_MODEL}: both 1024)"
        )


def diffusion_placement(device: str = "auto", precision: str = "auto") -> Placement:
    """bind's rules (`placement.place`), but int8 is ImageBind's alone: the diffusion model
    then runs fp32 on the CPU."""
    if precision.strip().lower() == Precision.INT8.value:
        precision = Precision.FP32.value
        device = "cpu" if device.strip().lower() == "auto" else device
    return place(device, precision)


class ImageGenerator:
    """A loaded unCLIP pipeline at one placement, turning query vectors into images."""

    def __init__(self, pipeline: Any, model: str, placement: Placement, revision: str = "") -> None:
        self.pipeline = pipeline
        self.model = model
        self.placement = placement
        self.revision = revision  # the Hub commit of a cached snapshot, else ""

    @classmethod
    def open(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        folder: Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        offload: Offload | str = Offload.NONE,
        progress: bool = True,
    ) -> "ImageGenerator":
        """Loads `model` (a Hub id or folder; `folder` when `locate_model` already found it)
        with diffusers, in the placement's dtype, on its device or offloaded."""
        require_extra()
        offload = Offload(offload)
        placement = diffusion_placement(device, precision)
        check_offload(offload, placement)
        folder = folder or locate_model(model, progress=progress)
        from diffusers import StableUnCLIPImg2ImgPipeline

        try:
            with _quiet_loading():
                pipeline = StableUnCLIPImg2ImgPipeline.from_pretrained(folder, dtype=placement.dtype)
        except Exception as exc:  # diffusers raises OSError, ValueError, TypeError... here
            raise WeightsError(f"{model}: not a loadable Stable unCLIP pipeline ({exc})") from exc
        pipeline.set_progress_bar_config(disable=True)
        if offload is Offload.MODEL:
            pipeline.enable_model_cpu_offload(device=placement.device)
        elif offload is Offload.SEQUENTIAL:
            pipeline.enable_sequential_cpu_offload(device=placement.device)
        else:
            pipeline.to(placement.device)
        revision = folder.name if folder.parent.name == "snapshots" else ""
        return cls(pipeline, model, placement, revision)

    @property
    def width(self) -> int:
        """The image-embedding width the UNet takes (1024 for SD 2.1 unCLIP-H)."""
        return int(self.pipeline.image_normalizer.config.embedding_dim)

    @property
    def expected_norm(self) -> float:
        """sqrt(sum(mean^2 + std^2)) of the checkpoint's normalizer: the root-mean-square
        norm of the embeddings unCLIP was trained on."""
        norm = self.pipeline.image_normalizer
        second_moment = norm.mean.detach().double().pow(2) + norm.std.detach().double().pow(2)
        return math.sqrt(float(second_moment.sum()))

    def image_embeds(self, vector: "np.ndarray", scale: float | None = None) -> Any:
        """The `image_embeds` input: the query's direction at `scale` (default: the expected
        norm), one row, in the pipeline's dtype and device."""
        import numpy as np
        import torch

        vector = np.asarray(vector, dtype=np.float64).reshape(-1)
        check_width(vector.shape[0], self.width, self.model)
        length = float(np.linalg.norm(vector))
        if not math.isfinite(length) or length == 0.0:
            raise UsageError("the query's vector is zero (its terms cancel out): nothing to draw")
        scaled = vector / length * (self.expected_norm if scale is None else scale)
        return torch.from_numpy(scaled[None]).to(self.placement.device, self.pipeline.unet.dtype)

    def generate(
        self,
        vector: "np.ndarray",
        settings: Settings,
        seed: int,
        step: Callable[[], None] | None = None,
    ) -> "Image.Image":
        """One image for `vector`; the same seed and settings make the same image (the noise
        is drawn on the CPU, so also across devices, up to their arithmetic). `step` is
        called after each diffusion step."""
        import torch

        width, height = settings.size or (None, None)
        result = self.pipeline(
            image_embeds=self.image_embeds(vector, settings.embedding_scale),
            prompt=settings.prompt,
            negative_prompt=settings.negative_prompt or None,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            noise_level=settings.noise_level,
            width=width,
            height=height,
            generator=torch.Generator("cpu").manual_seed(seed),
            callback=(lambda i, t, latents: step()) if step else None,
            callback_steps=1,
        )
        return result.images[0]

    def describe_model(self) -> str:
        """The model id as recorded in a PNG: the Hub id with its commit, or the folder."""
        return f"{self.model}@{self.revision}" if self.revision else self.model

    def metadata(
        self, query: "Query", settings: Settings, seed: int, image: "Image.Image", imagebind_model: str
    ) -> dict[str, str]:
        """The PNG text chunks that say how `image` was made, enough to make it again: each
        setting under its own key (`bind:seed`...), as text (JSON for the query), and
        `Software`."""
        scale = self.expected_norm if settings.embedding_scale is None else settings.embedding_scale
        record: dict[str, object] = {
            "query": query.describe(), "prompt": settings.prompt,
            "negative_prompt": settings.negative_prompt, "seed": seed, "steps": settings.steps,
            "guidance": settings.guidance, "noise_level": settings.noise_level,
            "embedding_scale": scale, "size": f"{image.width}x{image.height}",
            "imagebind_model": imagebind_model, "diffusion_model": self.describe_model(),
            "placement": f"{self.placement.device}, {self.placement.precision}",
        }
        chunks = {"Software": f"bind {__version__}"}
        for key, value in record.items():
            chunks[f"bind:{key}"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return chunks


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """diffusers and transformers draw a bar per component while loading and log advice
    (install accelerate); bind says what it loads itself, so both are silenced meanwhile."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    try:
        yield
    finally:
        for library, level in zip((diffusers_logging, transformers_logging), levels):
            library.set_verbosity(level)
            library.enable_progress_bar()


def check_offload(offload: Offload, placement: Placement) -> None:
    """Offloading moves weights between CPU and GPU: refused on a CPU or without accelerate."""
    if offload is Offload.NONE:
        return
    if placement.device.type == "cpu":
        raise UsageError(f"--offload {offload.value} moves weights between CPU and GPU; "
                         "there is no GPU here (use --offload none)")
    if importlib.util.find_spec("accelerate") is None:
        raise UsageError(extras.GENERATE.hint(needed_by=f"--offload {offload.value} needs accelerate"))


def write_png(path: str | Path, image: "Image.Image", text: Mapping[str, str]) -> None:
    """`image` as a PNG at `path` with `text` chunks (iTXt, so any Unicode), atomically."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    with atomic.atomic_path(path) as tmp:
        try:
            image.save(tmp, format="PNG", pnginfo=info)
        except OSError as exc:
            raise atomic.unwritable(path, exc) from exc


def image_paths(target: Path, count: int) -> list[Path]:
    """Where `-n` images go: `out.png`, then `out-1.png`, `out-2.png`..."""
    return [target if i == 0 else target.with_name(f"{target.stem}-{i}{target.suffix}")
            for i in range(count)]
