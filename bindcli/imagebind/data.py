"""Upstream's `imagebind.data` loaders, computed by bind's (`bindcli.media`).

Same names, signatures and defaults, and tensors equal to upstream's. A keyword that would
need a pipeline bind does not have (another mel-bin count or sample rate, another number of
frames per video clip) raises ValueError instead of being ignored. Unlike upstream, files are
decoded on a few threads (`bindcli.media.load_many`), and an unusable file raises bind's
`InputError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from bindcli.media import MediaOptions, load_many, tokenize
from bindcli.media.audio import FBANK_MEAN, FBANK_STD, SAMPLE_RATE
from bindcli.modality import Kind
from bindcli.model.config import ModelConfig

Paths = Sequence[str | os.PathLike[str]]
Device = torch.device | str | int

#: frames bind's video loader takes per clip: what the vision tower's time kernel consumes
VIDEO_FRAMES = ModelConfig.video_frames


def _stacked(paths: Paths, kind: Kind, options: MediaOptions, device: Device) -> torch.Tensor:
    """The files' tensors, stacked in input order on `device`; the first bad file raises."""
    tensors = []
    for _, result in load_many(((path, kind) for path in paths), options):
        if isinstance(result, Exception):
            raise result
        tensors.append(result)
    return torch.stack(tensors).to(device)


def _refuse_unsupported(function: str, **given: tuple[object, object]) -> None:
    """ValueError for each keyword (value, the only value bind computes) set otherwise."""
    for name, (value, supported) in given.items():
        if value != supported:
            raise ValueError(
                f"{function}: {name}={value!r} is not supported; bind's loaders compute "
                f"only {name}={supported!r}, what the released model takes"
            )


def load_and_transform_vision_data(
    image_paths: Paths | None, device: Device
) -> torch.Tensor | None:
    """(N, 3, 224, 224) float32 images, CLIP-normalised."""
    if image_paths is None:
        return None
    return _stacked(image_paths, Kind.IMAGE, MediaOptions(), device)


def load_and_transform_text(text: Sequence[str] | None, device: Device) -> torch.Tensor | None:
    """(N, 77) int64 CLIP token ids. A lone string is refused (upstream would tokenise each
    of its characters as a text)."""
    if text is None:
        return None
    return tokenize(text).to(device)


def load_and_transform_audio_data(
    audio_paths: Paths | None,
    device: Device,
    num_mel_bins: int = MediaOptions.audio_mel_bins,
    target_length: int = MediaOptions.audio_frames,
    sample_rate: int = SAMPLE_RATE,
    clip_duration: float = 2,
    clips_per_video: int = 3,
    mean: float = FBANK_MEAN,
    std: float = FBANK_STD,
) -> torch.Tensor | None:
    """(N, clips_per_video, 1, num_mel_bins, target_length) float32 normalised log-mel clips."""
    if audio_paths is None:
        return None
    _refuse_unsupported(
        "load_and_transform_audio_data",
        sample_rate=(sample_rate, SAMPLE_RATE),
    )
    options = MediaOptions(
        audio_clips=clips_per_video, audio_clip_seconds=clip_duration,
        audio_mel_bins=num_mel_bins, audio_frames=target_length,
    )
    clips = _stacked(audio_paths, Kind.AUDIO, options, device)
    if (mean, std) != (FBANK_MEAN, FBANK_STD):  # bind normalises with the defaults: redo it
        clips = (clips * FBANK_STD + FBANK_MEAN - mean) / std
    return clips


def load_and_transform_video_data(
    video_paths: Paths | None,
    device: Device,
    clip_duration: float = 2,
    clips_per_video: int = 5,
    sample_rate: int = 16000,
) -> torch.Tensor | None:
    """(N, clips_per_video * 3 crops, 3, 2, 224, 224) float32 clips.

    Upstream takes `clip_duration` frames per clip, so only its default (2, the frames the
    vision tower takes) is supported. `sample_rate` is the sound track's, which upstream
    passes to its decoder but never decodes: accepted, and without effect in both.
    """
    if video_paths is None:
        return None
    _refuse_unsupported(
        "load_and_transform_video_data", clip_duration=(clip_duration, VIDEO_FRAMES)
    )
    options = MediaOptions(video_clips=clips_per_video, video_clip_seconds=clip_duration)
    return _stacked(video_paths, Kind.VIDEO, options, device)
