"""Video -> the vision tower's (clips x 3 crops, 3, 2, 224, 224) input, as upstream's `data.py`.

Per clip (upstream `data.load_and_transform_video_data` with pytorchvideo's
`EncodedVideo.get_clip`): the frames of the window [start, end) are indices ceil(fps * start) to
ceil(fps * end) - 1 (clamped to the last frame); upstream keeps the first and the last of
them (`UniformTemporalSubsample(2)`), divides by 255, scales the short side to 224 with
torch bilinear *without* antialiasing (the long side becomes floor(long / short * 224)),
applies CLIP mean/std, and takes three 224 crops along the long side (start, centre with a
ceil offset, end). Output order is clip-major: clip0-crop0, clip0-crop1, ... (upstream
stacks the crops of each clip in turn; `preprocess.npz` pins the order).

Unlike upstream, a rotation the container asks for (a phone's `rotate=90` / display matrix)
is applied to the decoded frames, as images honour EXIF orientation, so a portrait video is
embedded upright; mirroring in the matrix is not.

Only those two frames per clip are decoded: for each one the demuxer seeks to the keyframe
before it and decodes forward to it, so memory and time are bounded by the clips (and the
keyframe interval), not by the length of the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import torch

from bindcli.errors import InputError
from bindcli.media.clips import clip_spans
from bindcli.media.image import CLIP_MEAN, CLIP_STD, SIZE, check_shape
from bindcli.media.options import MediaOptions
from bindcli.media.seek import decode_from, frame_seconds, stream_seconds
from bindcli.media.source import decoding, existing_file

CROPS = 3


def frame_indices(frame_count: int, fps: float, options: MediaOptions) -> list[int]:
    """The first and last frame index of each clip window, clip by clip."""
    indices = []
    for start, end in clip_spans(frame_count / fps, options.video_clip_seconds, options.video_clips):
        first = min(math.ceil(fps * start), frame_count - 1)
        last = min(max(math.ceil(fps * end) - 1, first), frame_count - 1)
        indices += [first, last]
    return indices


def frame_count(stream: av.video.stream.VideoStream, fps: float) -> int:
    """Frames in the stream: the container's count, else estimated from the duration."""
    if stream.frames:
        return stream.frames
    seconds = stream_seconds(stream)
    if seconds is None:
        raise ValueError("the video's length is unknown")
    return max(1, round(seconds * fps))


def decode_frames(
    container: av.container.InputContainer, wanted: list[int], fps: float, source: str | Path
) -> dict[int, np.ndarray]:
    """RGB (H, W, 3) uint8 arrays of the `wanted` frame indices (by timestamp, CFR)."""
    stream = container.streams.video[0]
    found: dict[int, np.ndarray] = {}
    for target in sorted(set(wanted)):
        if target in found:
            continue
        last_seen = -1
        for frame in decode_from(container, stream, target / fps):
            index = round(frame_seconds(frame, stream) * fps)
            last_seen = index
            if index >= target:
                found[target] = upright(frame)
                break
            previous = frame
        else:
            # The stream ended before `target`: tolerate a frame count that is one too many,
            # but not a file cut short.
            if last_seen < 0 or last_seen < target - 1:
                raise InputError(source, f"video ends before frame {target}; truncated file?")
            found[target] = upright(previous)
    return found


def upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as RGB (H, W, 3) uint8, turned as its display matrix says. PyAV gives the
    matrix's rotation counterclockwise in degrees, so a phone's `rotate=90` reads -90."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, k=turns)) if turns else pixels


def _short_side_scale(clip: torch.Tensor) -> torch.Tensor:
    """(C, T, H, W) with the short side 224: bilinear, align_corners=False, no antialias."""
    height, width = clip.shape[-2:]
    if width < height:
        size = (math.floor(height / width * SIZE), SIZE)
    else:
        size = (SIZE, math.floor(width / height * SIZE))
    return torch.nn.functional.interpolate(clip, size=size, mode="bilinear", align_corners=False)


def _three_crops(clip: torch.Tensor) -> list[torch.Tensor]:
    """Start, centre and end 224 crops along the long side; centre offsets round up."""
    height, width = clip.shape[-2:]
    top, left = math.ceil((height - SIZE) / 2), math.ceil((width - SIZE) / 2)
    crops = []
    for end in (0, 1, 2):
        y, x = top, left
        if height > width:
            y = (0, top, height - SIZE)[end]
        else:
            x = (0, left, width - SIZE)[end]
        crops.append(clip[:, :, y : y + SIZE, x : x + SIZE])
    return crops


def video_track(container: "av.container.InputContainer", source: str | Path) -> "tuple[av.VideoStream, float]":
    """The container's first video stream, checked and set to decode on threads, with its
    frame rate: what every reader of a video's pictures starts from."""
    if not container.streams.video:
        raise InputError(source, "no video track")
    stream = container.streams.video[0]
    check_shape(source, stream.width, stream.height, "video")
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise InputError(source, "the video's frame rate is unknown")
    return stream, float(rate)


def load_video(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(clips * 3, 3, 2, 224, 224) float32."""
    path = existing_file(source)
    with decoding(source, "video"), av.open(str(path)) as container:
        stream, fps = video_track(container, source)
        wanted = frame_indices(frame_count(stream, fps), fps, options)
        frames = decode_frames(container, wanted, fps, source)
    views = []
    for first, last in zip(wanted[::2], wanted[1::2]):
        views += clip_views(frames[first], frames[last])
    return torch.stack(views)


def clip_views(first: np.ndarray, last: np.ndarray) -> list[torch.Tensor]:
    """The three (3, 2, 224, 224) crops of the clip whose first and last frames (RGB uint8
    arrays) are given: scaled, CLIP-normalised, cropped along the long side."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1, 1)
    pair = np.stack([first, last])  # (T, H, W, C)
    clip = torch.from_numpy(pair).permute(3, 0, 1, 2).float() / 255.0
    clip = (_short_side_scale(clip) - mean) / std
    return _three_crops(clip)
