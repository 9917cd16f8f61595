"""Seeking in a PyAV stream: decode from just before a time instead of from the start, so
loaders of long files (video frames, audio windows) touch only the stretches they need."""

from __future__ import annotations

from collections.abc import Iterator

import av


def stream_seconds(stream: av.stream.Stream) -> float | None:
    """The stream's length by the container's metadata (its own duration, else the file's);
    None where neither says."""
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    container_duration = stream.container.duration  # microseconds
    return None if container_duration is None else container_duration / 1_000_000


def decode_from(
    container: av.container.InputContainer, stream: av.stream.Stream, seconds: float
) -> Iterator[av.frame.Frame]:
    """Decoded frames of `stream` from the keyframe at or before `seconds` (measured from the
    stream's start) onward."""
    t0 = stream.start_time or 0
    container.seek(t0 + int(seconds / float(stream.time_base)), stream=stream, backward=True)
    return container.decode(stream)


def frame_seconds(frame: av.frame.Frame, stream: av.stream.Stream) -> float:
    """Where `frame` starts, in seconds from the stream's start."""
    if frame.pts is None:
        raise ValueError(f"{stream.type} frames carry no timestamps")
    return (frame.pts - (stream.start_time or 0)) * float(stream.time_base)
