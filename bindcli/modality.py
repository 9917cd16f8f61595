"""The seven kinds of input, each described once: its tower, extensions, loader and prompts.

Images and video share the vision tower, so the kind (how to load) and the tower (which
encoder) are kept apart. Everything that differs per kind lives in its `Modality` record, the
way timm registers models: a new kind is one record, and a record missing a field fails at
import instead of as a KeyError deep in some command.

Imports: bindcli.errors, bindcli.media (lazily: each kind's loader).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bindcli.errors import UnknownModalityError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bindcli.media.options import MediaOptions


class Kind(str, enum.Enum):
    """How an input is loaded. The value is what users type after `--as`."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    DEPTH = "depth"
    THERMAL = "thermal"
    IMU = "imu"

    @property
    def modality(self) -> "Modality":
        return MODALITIES[self]

    @property
    def tower(self) -> str:
        """The encoder (upstream's modality key) that embeds this kind."""
        return MODALITIES[self].tower


#: Bumped whenever any loader's output changes for the same file and options; caches key on
#: it (kept here, outside the torch-importing media package, so cache look-ups need no torch).
PREPROCESSING_VERSION = "2"  # 2: an IMU CSV's named columns are read in channel order

#: upstream's modality keys, in upstream's order
TOWERS: tuple[str, ...] = ("vision", "text", "audio", "thermal", "depth", "imu")


@dataclasses.dataclass(frozen=True)
class Modality:
    """Everything bind knows of one kind of input."""

    kind: Kind
    tower: str
    #: suffixes that mean this kind when no `--as` is given
    extensions: tuple[str, ...]
    #: `module:function` in `bindcli.media`, imported on first use (media imports torch)
    loader: str
    #: zero-shot prompt templates; `{}` is the label
    templates: tuple[str, ...]

    def load(self, source: str | Path, options: "MediaOptions") -> "torch.Tensor":
        """The input's tensor, from this kind's loader."""
        return self._loader()(source, options)

    def _loader(self) -> Callable[[str | Path, "MediaOptions"], "torch.Tensor"]:
        module, _, function = self.loader.partition(":")
        # loader threads import the loaders on first use; torchaudio's package imports itself
        # in a cycle, which a second thread importing it at once sees half done: one at a time
        with _IMPORTING:
            loaded = importlib.import_module(f"bindcli.media.{module}")
        return getattr(loaded, function)


_IMPORTING = threading.Lock()


_PHOTO = ("a photo of a {}.", "a photo of the {}.", "a close-up photo of a {}.",
          "a blurry photo of a {}.", "a bright photo of a {}.", "a cropped photo of a {}.",
          "a good photo of a {}.", "a photo of one {}.")

# Ambiguous containers default to their common use: a `.png` is an image (use `--as depth` /
# `--as thermal`), a `.npy`/`.npz`/`.csv` is an IMU recording (use `--as depth` for a depth
# array), a video file is video (use `--as audio` for its sound track).
MODALITIES: dict[Kind, Modality] = {m.kind: m for m in (
    Modality(
        Kind.IMAGE, "vision",
        (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff",
         ".avif", ".ppm", ".pgm", ".pnm"),
        "image:load_image", _PHOTO,
    ),
    Modality(
        Kind.VIDEO, "vision", (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"),
        "video:load_video",
        ("a video of a {}.", "a video of the {}.", "a clip of a {}.", "footage of a {}."),
    ),
    Modality(
        Kind.AUDIO, "audio", (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus"),
        "audio:load_audio",
        ("a sound of a {}.", "the sound of a {}.", "a recording of a {}.", "the sound a {} makes."),
    ),
    Modality(Kind.TEXT, "text", (".txt",), "text:load_text", ("{}",)),
    Modality(
        Kind.DEPTH, "depth", (), "depth:load_depth",
        ("a depth map of a {}.", "a depth photo of a {}.", *_PHOTO[:2]),
    ),
    Modality(
        Kind.THERMAL, "thermal", (), "thermal:load_thermal",
        ("a thermal image of a {}.", "an infrared photo of a {}.", *_PHOTO[:2]),
    ),
    Modality(Kind.IMU, "imu", (".npy", ".npz", ".csv"), "imu:load_imu", ("{}",)),
)}

#: extension -> kind, from the records above
EXTENSIONS: dict[str, Kind] = {ext: m.kind for m in MODALITIES.values() for ext in m.extensions}


def detect(path: str | Path, override: Kind | str | None = None, *, choose: str = "use --as with") -> Kind:
    """The kind of `path`: `override` if given, else from its extension. `choose` is how the
    caller's user names a kind (the server's clients: a `modality` field, not `--as`)."""
    if override is not None:
        return Kind(override)
    suffix = Path(path).suffix.lower()
    try:
        return EXTENSIONS[suffix]
    except KeyError:
        known = ", ".join(k.value for k in Kind)
        what = f"unknown extension '{suffix}'" if suffix else "no file extension"
        raise UnknownModalityError(
            path, f"{what}; {choose} one of: {known}"
        ) from None


def sniff(data: bytes) -> str | None:
    """The extension a file of these bytes would carry, read from its first bytes (for bytes
    that come without a name: `llm embed-multi --binary`); None where they say nothing bind
    reads. Depth and thermal images are images to this; a CSV IMU recording is text."""
    head = data[:64]
    if head[4:8] == b"ftyp":  # ISO media: the brand says sound, still image or video
        return {b"M4A ": ".m4a", b"M4B ": ".m4a", b"avif": ".avif", b"avis": ".avif",
                b"qt  ": ".mov"}.get(head[8:12], ".mp4")
    if head.startswith(b"RIFF"):
        return {b"WAVE": ".wav", b"WEBP": ".webp", b"AVI ": ".avi"}.get(head[8:12])
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or its WebM profile
        return ".webm" if b"webm" in head else ".mkv"
    if head.startswith(b"BM") and head[6:10] == b"\0\0\0\0":  # the header's reserved zeros
        return ".bmp"
    if head.startswith(b"PK\x03\x04") and b".npy" in head:  # an .npz's first member
        return ".npz"
    for signature, extension in _SIGNATURES:
        if head.startswith(signature):
            return extension
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame
        return ".aac" if head[1] & 0x06 == 0 else ".mp3"  # layer bits 00: AAC's ADTS
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return ".txt" if text.strip() and "\0" not in text else None


#: leading bytes -> extension, for the formats a fixed prefix identifies
_SIGNATURES = (
    (b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"), (b"II*\0", ".tif"), (b"MM\0*", ".tif"), (b"fLaC", ".flac"),
    (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\x93NUMPY", ".npy"),
)
