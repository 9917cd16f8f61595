"""A file as one picture for people to look at (not for the model): a picture's first frame,
upright, in 8 bits, or a film's poster frame. The page's thumbnails and `bind search
--preview` draw these."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from bindcli.errors import InputError
from bindcli.media.image import open_image, to_8bit
from bindcli.media.options import MediaOptions
from bindcli.media.seek import decode_from, stream_seconds
from bindcli.media.source import decoding, existing_file
from bindcli.media.video import upright
from bindcli.modality import Kind

#: kinds drawn as a picture; the others (audio, text, IMU) have none
PICTURED = frozenset({Kind.IMAGE.value, Kind.DEPTH.value, Kind.THERMAL.value, Kind.VIDEO.value})
POSTER_AT = 0.1  # a film's poster is its frame this far in, past a black opening


def picture(path: str | Path, kind: str) -> Image.Image:
    """The picture of a file of `kind` (`PICTURED`), in RGB; an InputError says why none."""
    if kind not in PICTURED:
        raise InputError(path, f"an item of kind {kind} has no picture")
    drawn = poster(path) if kind == Kind.VIDEO.value else still(path)
    return drawn.convert("RGB")


def still(path: str | Path) -> Image.Image:
    """A picture's first frame, upright, 8 bits (depth and thermal PNGs are often 16); a
    float image (a depth map in metres) is spread over its own range."""
    img = to_8bit(open_image(path, MediaOptions()))
    if img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        low, high = values.min(), values.max()
        scaled = (values - low) / (high - low) * 255 if high > low else values * 0
        img = Image.fromarray(scaled.astype(np.uint8), "L")
    return img


def poster(path: str | Path) -> Image.Image:
    """A film's frame at `POSTER_AT` of its length (its first when the length is unknown)."""
    existing_file(path)
    with decoding(path, "video"), av.open(str(path)) as container:
        if not container.streams.video:
            raise InputError(path, "the file holds no video stream")
        stream = container.streams.video[0]
        seconds = (stream_seconds(stream) or 0.0) * POSTER_AT
        for frame in decode_from(container, stream, seconds):
            return Image.fromarray(upright(frame))
        raise InputError(path, "the video holds no frame")
