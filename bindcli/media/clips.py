"""Where the clips of a recording start: pytorchvideo's `ConstantClipsPerVideoSampler`.

Clip k of n starts at k * max(duration - clip, 0) / n: the step divides by the clip *count*,
so the last clip ends before the end of the file (a 5 s file gives 2 s clips at 0, 1 and 2 s).
This is what upstream's fixtures (`preprocess.npz`) show; a /(n - 1) step, which one might
expect from "spread over the file", does not reproduce them.

Upstream computes the duration as a float (samples / rate, or frames / fps) and subtracts the
clip length as a Fraction (which yields a float); the start times are then exact Fractions.
The float step matters for sample positions: int(start * rate) truncates.
"""

from __future__ import annotations

from fractions import Fraction


def clip_spans(duration: float, clip_seconds: float, clips: int) -> list[tuple[Fraction, Fraction]]:
    """(start, end) in seconds of `clips` windows of `clip_seconds`, evenly stepped from 0.

    Recordings shorter than one clip give `clips` identical windows [0, clip_seconds].
    """
    length = Fraction(clip_seconds)
    max_start = Fraction(max(duration - length, 0))
    step = max_start / clips
    return [(step * k, step * k + length) for k in range(clips)]
