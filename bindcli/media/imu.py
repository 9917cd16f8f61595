"""IMU recordings -> the IMU tower's (windows, 6, 2000) input. Upstream ships no loader.

Convention (ours, from the paper's Ego4D setup): 6 channels, accelerometer xyz then
gyroscope xyz, in the units of Ego4D's IMU tables, which the IMU tower was trained on (Ego4D
does not document them; accelerometers report m/s^2 and gyroscopes rad/s by convention, and
no normalisation is known, so none is applied), 2000 samples per window, which the paper describes as 5 s, i.e. 400 Hz.

  * Files: `.npy`, `.npz` (array `imu`, or the only one) or `.csv` (comma-separated numbers,
    an optional header line), in (6, T) or (T, 6) layout: the axis of length 6 is the
    channel axis (the first one if both are 6).
  * With `imu_sample_rate_hz` given, the recording is resampled from that rate to 400 Hz
    (band-limited sinc, torchaudio); otherwise its samples are taken as they are.
  * Up to 2000 samples: one window, zero-padded at the end. Longer: ceil(T / 2000) windows
    spread evenly from the start to the end (neighbours may overlap, nothing is left out);
    the model averages their embeddings as it does audio clips.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as taf

from bindcli.errors import InputError
from bindcli.media.arrays import read_array
from bindcli.media.options import MediaOptions
from bindcli.media.source import decoding, existing_file
from bindcli.model.config import IMU_CHANNELS, IMU_LENGTH

CHANNELS = IMU_CHANNELS
WINDOW = IMU_LENGTH  # samples the tower reads, fixed by the architecture
MODEL_RATE_HZ = 400


def _read_csv(source: str | Path) -> np.ndarray:
    path = existing_file(source)
    with decoding(source, "CSV"):
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        try:
            [float(cell) for cell in first.split(",")]
            header = 0
        except ValueError:
            header = 1
        return np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2, dtype=np.float64)


def read_imu(source: str | Path) -> np.ndarray:
    """(6, T) float32 samples from a `.csv`, `.npy` or `.npz` file."""
    if Path(source).suffix.lower() == ".csv":
        array = _read_csv(source)
    else:
        array = read_array(source, "imu")
    if array.ndim != 2 or CHANNELS not in array.shape:
        raise InputError(
            source,
            f"expected {CHANNELS} channels (accelerometer xyz, gyroscope xyz) as (6, T) or "
            f"(T, 6), got shape {array.shape}"
            + ("; a depth map? read it with --as depth" if array.ndim == 2 else ""),
        )
    samples = array if array.shape[0] == CHANNELS else array.T
    if samples.shape[1] == 0:
        raise InputError(source, "the recording holds no samples")
    if not np.isfinite(samples).all():
        raise InputError(source, "the recording holds NaN or infinite values")
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: torch.Tensor, rate_hz: float) -> torch.Tensor:
    """(6, T) from `rate_hz` to 400 Hz; rates are made integer through an exact ratio."""
    ratio = (Fraction(rate_hz).limit_denominator(10_000) / MODEL_RATE_HZ).limit_denominator(10_000)
    if ratio == 1:
        return samples
    return taf.resample(samples, orig_freq=ratio.numerator, new_freq=ratio.denominator)


def windows(samples: torch.Tensor) -> torch.Tensor:
    """(S, 6, 2000): one zero-padded window, or ceil(T / 2000) spread over the recording."""
    length = samples.shape[1]
    if length <= WINDOW:
        return torch.nn.functional.pad(samples, (0, WINDOW - length)).unsqueeze(0)
    count = math.ceil(length / WINDOW)
    starts = [round(k * (length - WINDOW) / (count - 1)) for k in range(count)]
    return torch.stack([samples[:, s : s + WINDOW] for s in starts])


def load_imu(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(S, 6, 2000) float32, S >= 1."""
    samples = torch.from_numpy(read_imu(source))
    if options.imu_sample_rate_hz is not None:
        if not options.imu_sample_rate_hz > 0:
            raise InputError(source, f"IMU sample rate must be positive, got {options.imu_sample_rate_hz}")
        samples = resample(samples, options.imu_sample_rate_hz)
    return windows(samples)
