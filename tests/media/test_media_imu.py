"""IMU: 6-channel recordings in either layout, windowed to (S, 6, 2000)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bindcli.errors import InputError
from bindcli.media import MediaOptions, load
from bindcli.modality import Kind


def _recording(samples: int) -> np.ndarray:
    """(6, T): channel c is a ramp offset by c, so layout mistakes show."""
    return (np.arange(samples)[None, :] / samples + np.arange(6)[:, None]).astype(np.float32)


def test_layouts_and_files_agree(tmp_path):
    data = _recording(1500)
    np.save(tmp_path / "cf.npy", data)
    np.save(tmp_path / "tf.npy", data.T)
    np.savez(tmp_path / "rec.npz", imu=data, timestamps=np.arange(1500))
    header = "acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"
    np.savetxt(tmp_path / "with_header.csv", data.T, delimiter=",", header=header, comments="")
    np.savetxt(tmp_path / "bare.csv", data.T, delimiter=",")
    expected = torch.zeros(1, 6, 2000)
    expected[0, :, :1500] = torch.from_numpy(data)
    for name in ("cf.npy", "tf.npy", "rec.npz", "with_header.csv", "bare.csv"):
        out = load(tmp_path / name, Kind.IMU)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0, msg=name)


def test_long_recordings_become_windows(tmp_path):
    data = _recording(4500)
    np.save(tmp_path / "long.npy", data)
    out = load(tmp_path / "long.npy", Kind.IMU)
    assert out.shape == (3, 6, 2000)
    torch.testing.assert_close(out[0], torch.from_numpy(data[:, :2000]))
    torch.testing.assert_close(out[1], torch.from_numpy(data[:, 1250:3250]))
    torch.testing.assert_close(out[2], torch.from_numpy(data[:, -2000:]))


def test_resampling_to_the_model_rate(tmp_path):
    t = np.arange(1000) / 200.0  # 5 s at 200 Hz
    data = np.stack([np.sin(2 * np.pi * 1.0 * t + c) for c in range(6)]).astype(np.float32)
    np.save(tmp_path / "slow.npy", data)
    out = load(tmp_path / "slow.npy", Kind.IMU, MediaOptions(imu_sample_rate_hz=200))
    assert out.shape == (1, 6, 2000)
    t400 = np.arange(2000) / 400.0
    expected = np.stack([np.sin(2 * np.pi * 1.0 * t400 + c) for c in range(6)])
    assert np.abs(out[0, :, 100:-100].numpy() - expected[:, 100:-100]).max() < 1e-2
    same = load(tmp_path / "slow.npy", Kind.IMU, MediaOptions(imu_sample_rate_hz=400))
    assert same[0, :, 1000:].eq(0).all()  # already at the model rate: padded, not stretched


def test_bad_recordings(tmp_path):
    np.savetxt(tmp_path / "five.csv", _recording(100)[:5].T, delimiter=",")
    np.save(tmp_path / "flat.npy", np.ones(600, np.float32))
    np.save(tmp_path / "empty.npy", np.ones((6, 0), np.float32))
    nan = _recording(100)
    nan[2, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "words.csv").write_text("a,b,c,d,e,f\nx,y,z,u,v,w\n", encoding="utf-8")
    for name, reason in [
        ("five.csv", "expected 6 channels"),
        ("flat.npy", "expected 6 channels"),
        ("empty.npy", "no samples"),
        ("nan.npy", "NaN"),
        ("words.csv", "cannot read CSV"),
    ]:
        with pytest.raises(InputError, match=reason):
            load(tmp_path / name, Kind.IMU)
    with pytest.raises(InputError, match="positive"):
        np.save(tmp_path / "ok.npy", _recording(100))
        load(tmp_path / "ok.npy", Kind.IMU, MediaOptions(imu_sample_rate_hz=0))
