"""The ImageBind score of pairs: how well a generated video's sound fits its frames (or a
caption its image or sound), as audio-video generation papers report it.

Defined here once, since the scripts that compute it differ: the cosine of the two inputs'
unit vectors, times `scale` (100 by default, as av-benchmark reports it; 1 gives the raw
cosine, `bind compare`'s figure). A video's frames are sampled as upstream's `data.py` does,
unless told otherwise: 5 clips of 2 s spread over it, the first and last frame of each (10
frames); its sound as 3 clips of 2 s spread over the track.

Imports: bindcli.errors, bindcli.embed, bindcli.eval, bindcli.media, bindcli.modality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli.errors import InputError, UsageError
from bindcli.eval import tables
from bindcli.media.options import MediaOptions
from bindcli.modality import Kind

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.inputs import Input

#: av-benchmark's scale: cosines as percentages
DEFAULT_SCALE = 100.0
#: the vision tower takes 2 frames a clip (`MediaOptions.video_clips`)
FRAMES_PER_CLIP = 2
#: upstream's sampling: 10 frames (5 clips), 3 sound clips
DEFAULT_FRAMES = FRAMES_PER_CLIP * MediaOptions.video_clips
DEFAULT_CLIPS = MediaOptions.audio_clips


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two inputs to score against each other (each an Input, or why it is not one)."""

    a: "Input | InputError"
    b: "Input | InputError"


@dataclasses.dataclass(frozen=True)
class Scored:
    a: "Input"
    b: "Input"
    score: float


def sampling(frames: int | None = None, clips: int | None = None) -> MediaOptions | None:
    """The loading options of `frames` frames a video (clips of 2 frames) and `clips` sound
    clips, upstream's where not given; None for upstream's (whose cached vectors serve)."""
    frames = DEFAULT_FRAMES if frames is None else frames
    clips = DEFAULT_CLIPS if clips is None else clips
    if frames < FRAMES_PER_CLIP or frames % FRAMES_PER_CLIP:
        raise UsageError(f"--frames {frames}: the vision tower takes frames in clips of {FRAMES_PER_CLIP}, "
                         "give an even number")
    if clips < 1:
        raise UsageError(f"--clips {clips}: give at least one clip")
    if (frames, clips) == (DEFAULT_FRAMES, DEFAULT_CLIPS):
        return None
    return MediaOptions(video_clips=frames // FRAMES_PER_CLIP, audio_clips=clips)


def describe(options: MediaOptions | None, scale: float) -> dict[str, str | float]:
    """The definition and the sampling, as a summary states them."""
    o = options or MediaOptions()
    return {
        "definition": f"cosine of the two unit vectors x {scale:g}",
        "scale": scale,
        "frames": f"{FRAMES_PER_CLIP * o.video_clips} a video: {o.video_clips} clips of {o.video_clip_seconds:g} s "
                  "spread over it, the first and last frame of each",
        "sound": f"{o.audio_clips} clips of {o.audio_clip_seconds:g} s spread over the track",
    }


def own_sound(video: str | Path) -> Pair:
    """A video's frames against its own sound track."""
    from bindcli.embed.inputs import Input

    try:
        frames = Input.file(video)
        if frames.kind is not Kind.VIDEO:
            raise InputError(str(video), f"{frames.kind.value}, not a video: score it against another file with --pairs")
    except InputError as exc:
        return Pair(exc, exc)
    return Pair(frames, Input(frames.source, Kind.AUDIO))


def read_pairs(path: str | Path) -> list[Pair]:
    """A CSV (or `.tsv`) file of `a,b` rows, paths relative to the file (an `a_text` or
    `b_text` column holds texts instead: caption-image, caption-sound pairs)."""
    from bindcli.embed.inputs import gather, text_inputs

    def made(item: str, text: bool) -> "Input | InputError":
        return (text_inputs([item]) if text else gather([item]))[0]

    return [Pair(made(*row["a"]), made(*row["b"])) for row in tables.pairs(path, ("a", "b"))]


def score(
    embedder: "Embedder", pairs: Sequence[Pair], scale: float = DEFAULT_SCALE,
    progress: Callable[[int], None] = lambda n: None,
) -> list[Scored | InputError]:
    """Each pair's score, in order, or the error of the input that stopped it."""
    from bindcli.embed.stages import Embedding

    results = embedder.embed([x for p in pairs for x in (p.a, p.b)], progress=progress)
    scored: list[Scored | InputError] = []
    for a, b in zip(results[::2], results[1::2]):
        if isinstance(a, Embedding) and isinstance(b, Embedding):
            scored.append(Scored(a.input, b.input, scale * float(np.dot(a.unit, b.unit))))
        else:
            scored.append(a if isinstance(a, InputError) else b)  # type: ignore[arg-type]
    return scored


def mean(scored: Sequence[Scored | InputError]) -> float | None:
    """The mean score of the pairs scored; None when none was."""
    values = [s.score for s in scored if isinstance(s, Scored)]
    return float(np.mean(values)) if values else None
