"""The fused CPU linear (oneDNN, bias/GELU/residual fused) computes what the plain ops compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bindcli
from bindcli.model import layers
from bindcli.model.layers import Linear, linear

CASES = ["vision", "text", "audio", "depth", "thermal", "imu", "video"]
needs_onednn = pytest.mark.skipif(
    not layers._HAS_ONEDNN_LINEAR, reason="this torch build has no oneDNN fused linear"
)


def _plain(x, w, b, gelu, residual):
    out = F.linear(x, w, b)
    if gelu:
        out = F.gelu(out)
    return out if residual is None else residual + out


@needs_onednn
@pytest.mark.parametrize("rows", [3, 2 * layers._ONEDNN_FP32_MAX_ROWS])
@pytest.mark.parametrize("fusion", ["none", "gelu", "residual", "no-bias"])
def test_fused_linear_matches_plain_ops(rows, fusion):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 64, generator=g)
    w = torch.randn(96, 64, generator=g) / 8
    b = None if fusion == "no-bias" else torch.randn(96, generator=g)
    residual = torch.randn(rows, 96, generator=g) if fusion == "residual" else None
    gelu = fusion == "gelu"
    with torch.inference_mode():
        fused = linear(x, w, b, gelu=gelu, residual=residual)
        expected = _plain(x, w, b, gelu, residual)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


@needs_onednn
@pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no native bf16 on this CPU"
)
def test_fused_linear_bf16_rounds_like_plain_ops():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 128, generator=g).bfloat16()
    w = (torch.randn(256, 128, generator=g) / 11).bfloat16()
    b = torch.randn(256, generator=g).bfloat16()
    with torch.inference_mode():
        fused = linear(x, w, b, gelu=True)
        expected = _plain(x, w, b, True, None)
    assert fused.dtype == torch.bfloat16
    torch.testing.assert_close(fused.float(), expected.float(), atol=0.05, rtol=0.02)


def test_linear_falls_back_when_gradients_are_needed():
    layer = Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    layer(x, gelu=True).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None


@pytest.fixture(scope="module")
def model(small_config_path, small_weights_path):
    return bindcli.load_model(config=small_config_path, weights=small_weights_path)


@pytest.mark.parametrize("case", CASES)
def test_model_with_fused_linear_equals_plain_path(model, fixtures_dir, case, monkeypatch):
    model_io = np.load(fixtures_dir / "public_model_io.npz")
    key = "vision" if case == "video" else case
    x = torch.from_numpy(model_io[f"in_{case}"])
    with torch.inference_mode():
        fast = model({key: x})[key]
        monkeypatch.setattr(Linear, "onednn", False)
        plain = model({key: x})[key]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)
