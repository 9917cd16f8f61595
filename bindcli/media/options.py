"""Every loading knob in one frozen value, with upstream's defaults, so a cache can key on it."""

from __future__ import annotations

import dataclasses
import json

from bindcli.model.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class MediaOptions:
    """How files become tensors. The defaults reproduce upstream ImageBind's `data.py`.

    audio_clips, audio_clip_seconds: clips spread evenly over the recording (upstream 3 x 2 s).
    audio_upstream_quirks: True reproduces upstream's numbers exactly (stereo read as channel 0
        after an all-channel mean subtraction, clips sharing one buffer that each clip's mean
        subtraction mutates); False is the clean variant (channels averaged to mono, each clip
        processed on its own copy).
    audio_mel_bins, audio_frames: the log-mel size the audio tower takes (the model config's
        `audio_num_mel_bins` and `audio_target_len`; the Embedder sets them from its config).
    video_clips, video_clip_seconds: clips spread evenly over the video (upstream 5 x 2 s);
        each clip always yields 2 frames, its first and last, because the vision tower takes
        at most 2 frames.
    max_image_pixels: images with more pixels than this are refused before decoding
        (decompression-bomb guard; Pillow's own default limit).
    depth_baseline_m, depth_focal_px: stereo baseline (metres) and focal length (pixels) of
        the depth camera, for disparity = baseline * focal / depth. Defaults: Kinect v1, as in
        NYU Depth v2 / SUN RGB-D (baseline 0.075 m, focal 518.857901 px).
    depth_png_unit_m: metres per unit of a 16-bit depth PNG (0.001: millimetres).
    depth_standardize: standardise each disparity map to zero mean and unit variance (what
        reproduced the paper's SUN RGB-D number). With it, baseline * focal is a global scale
        that cancels; turn it off to feed disparity in pixels.
    imu_sample_rate_hz: the sampling rate of IMU files; when given, recordings are resampled
        to the model's 400 Hz (2000 samples = 5 s). None: take the samples as they are.
    """

    audio_clips: int = 3
    audio_clip_seconds: float = 2.0
    audio_upstream_quirks: bool = True
    audio_mel_bins: int = ModelConfig.audio_num_mel_bins
    audio_frames: int = ModelConfig.audio_target_len
    video_clips: int = 5
    video_clip_seconds: float = 2.0
    max_image_pixels: int = 89_478_485
    depth_baseline_m: float = 0.075
    depth_focal_px: float = 518.857901
    depth_png_unit_m: float = 0.001
    depth_standardize: bool = True
    imu_sample_rate_hz: float | None = None

    def cache_text(self, kind: str) -> str:
        """What an embedding-cache key records of these options for a file of `kind`: only the
        fields that kind reads (`audio_*` for audio, ...) and only where they differ from the
        defaults, so an audio option never sends images back to the encoder."""
        prefix = f"{kind}_"
        defaults = MediaOptions()
        changed = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name.startswith(prefix) and getattr(self, f.name) != getattr(defaults, f.name)
        }
        return json.dumps(changed, sort_keys=True) if changed else ""
