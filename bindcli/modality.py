"""What kind of input a file is: the one extension table, plus the override.

Inputs come in seven kinds; images and video share the vision tower, so the kind (how to
load) and the tower (which encoder) are kept apart.
"""

from __future__ import annotations

import enum
from pathlib import Path

from bindcli.errors import UnknownModalityError


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
    def tower(self) -> str:
        """The encoder (upstream's modality key) that embeds this kind."""
        return TOWER_OF_KIND[self]


#: upstream's modality keys, in upstream's order
TOWERS: tuple[str, ...] = ("vision", "text", "audio", "thermal", "depth", "imu")

TOWER_OF_KIND: dict[Kind, str] = {
    Kind.IMAGE: "vision",
    Kind.VIDEO: "vision",
    Kind.AUDIO: "audio",
    Kind.TEXT: "text",
    Kind.DEPTH: "depth",
    Kind.THERMAL: "thermal",
    Kind.IMU: "imu",
}

#: extension -> kind. Ambiguous containers default to their common use: a `.png` is an
#: image (use `--as depth` / `--as thermal`), a `.npy`/`.npz`/`.csv` is an IMU recording
#: (use `--as depth` for a depth array), a video file is video (use `--as audio` for its
#: sound track).
EXTENSIONS: dict[str, Kind] = {
    **dict.fromkeys(
        (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"), Kind.IMAGE
    ),
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"), Kind.VIDEO),
    **dict.fromkeys(
        (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus"), Kind.AUDIO
    ),
    ".txt": Kind.TEXT,
    **dict.fromkeys((".npy", ".npz", ".csv"), Kind.IMU),
}


def detect(path: str | Path, override: Kind | str | None = None) -> Kind:
    """The kind of `path`: `override` if given, else from its extension."""
    if override is not None:
        return Kind(override)
    suffix = Path(path).suffix.lower()
    try:
        return EXTENSIONS[suffix]
    except KeyError:
        known = ", ".join(k.value for k in Kind)
        what = f"unknown extension '{suffix}'" if suffix else "no file extension"
        raise UnknownModalityError(
            path, f"{what}; use --as with one of: {known}"
        ) from None
