"""IMU recordings -> the IMU tower's (windows, 6, 2000) input. Upstream ships no loader.

Convention (ours, from the paper's Ego4D setup): 6 channels, accelerometer xyz then
gyroscope xyz, in the units of Ego4D's IMU tables, which the IMU tower was trained on (Ego4D
does not document them; accelerometers report m/s^2 and gyroscopes rad/s by convention, and
no normalisation is known, so none is applied), 2000 samples per window, which the paper describes as 5 s, i.e. 400 Hz.

  * Files: `.npy`, `.npz` (array `imu`, or the only one) or `.csv` (comma-separated numbers,
    an optional header line), in (6, T) or (T, 6) layout: the axis of length 6 is the
    channel axis (the first one if both are 6).
  * A CSV header that names six accelerometer and gyroscope columns by axis (`accl_x`,
    `gyro_z`, `AccX`, ...) picks them by name, in the order above, whatever their order in
    the file (Weaviate's container examples put the gyroscope first) and whatever other
    columns (a timestamp) stand beside them; a header that does not is skipped.
  * With `imu_sample_rate_hz` given, the recording is resampled from that rate to 400 Hz
    (band-limited sinc, torchaudio); otherwise its samples are taken as they are.
  * Up to 2000 samples: one window, zero-padded at the end. Longer: ceil(T / 2000) windows
    spread evenly from the start to the end (neighbours may overlap, nothing is left out);
    the model averages their embeddings as it does audio clips.
"""

from __future__ import annotations

import math
import re
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


#: how a header names each sensor: the start of the column's name, in channel order
SENSORS = ("acc", "gyr")


def named_columns(header: str) -> list[int] | None:
    """The columns, accelerometer xyz then gyroscope xyz, that a CSV header names by sensor
    and axis (`accl_x`, `Gyro.Z`, `acc_y_mps2`...: a name starting with acc or gyr, its axis
    the x, y or z standing alone after it); None unless each of the six is named exactly once."""
    found: dict[tuple[int, str], list[int]] = {}
    for column, cell in enumerate(header.split(",")):
        name = cell.strip().strip('"').lower()
        sensor = next((n for n, prefix in enumerate(SENSORS) if name.startswith(prefix)), None)
        axes = [part for part in re.split(r"[^a-z]+|(?<=[a-z])(?=[xyz]$)", name)[1:] if part in ("x", "y", "z")]
        if sensor is not None and len(axes) == 1:
            found.setdefault((sensor, axes[0]), []).append(column)
    wanted = [(sensor, axis) for sensor in range(len(SENSORS)) for axis in "xyz"]
    if any(len(found.get(key, ())) != 1 for key in wanted):
        return None
    return [found[key][0] for key in wanted]


def _read_csv(source: str | Path) -> np.ndarray:
    path = existing_file(source)
    with decoding(source, "CSV"):
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        try:
            [float(cell) for cell in first.split(",")]
            header, columns = 0, None
        except ValueError:
            header, columns = 1, named_columns(first)
        return np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2, dtype=np.float64, usecols=columns)


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
