"""Device and precision choice: what `auto` picks, and what this machine refuses."""

from __future__ import annotations

import pytest
import torch

from bindcli.model import placement
from bindcli.errors import DeviceError, UsageError
from bindcli.model.factory import resolve_dtype
from bindcli.model.placement import Precision, choose_device, choose_precision

CPU = torch.device("cpu")


def test_device_auto_falls_back_to_cpu_and_refuses_missing_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(placement, "_mps_available", lambda: False)
    assert choose_device("auto") == CPU
    for spec, message in [("cuda", "no CUDA GPU"), ("cuda:x", "cuda:N"), ("mps", "MPS"), ("tpu", "use auto")]:
        with pytest.raises(DeviceError, match=message):
            choose_device(spec)


def test_device_picks_cuda_and_checks_the_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert choose_device("auto") == torch.device("cuda")
    assert choose_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match="only 1 GPU"):
        choose_device("cuda:1")


@pytest.mark.parametrize("units, expected", [(["AMX"], "bf16"), ([], "fp32")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, units, expected):
    monkeypatch.setattr(placement, "cpu_bf16_units", lambda: units)
    chosen = choose_precision("auto", CPU)
    assert chosen.precision == expected and chosen.reason and chosen.warning is None


@pytest.mark.parametrize("bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_gpus(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert choose_precision("auto", torch.device("cuda")).precision == expected
    assert choose_precision("auto", torch.device("mps")).precision == "fp16"


def test_explicit_precision_is_kept_with_a_warning_where_slow(monkeypatch):
    monkeypatch.setattr(placement, "cpu_bf16_units", lambda: [])
    assert "emulated" in choose_precision("fp16", CPU).warning
    assert "no native bf16" in choose_precision("bf16", CPU).warning
    assert choose_precision("fp32", CPU).warning is None
    with pytest.raises(DeviceError):
        choose_precision("fp8", CPU)


def test_device_errors_are_usage_errors():
    assert issubclass(DeviceError, UsageError)


def test_precision_names_map_to_dtypes_once():
    assert [p.value for p in Precision.explicit()] == ["fp32", "bf16", "fp16", "int8"]
    assert resolve_dtype("bf16") is resolve_dtype("bfloat16") is torch.bfloat16
    assert choose_precision("fp16", CPU).dtype is torch.float16
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        resolve_dtype("fp8")
