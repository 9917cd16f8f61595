"""The fused linear paths (oneDNN; GEMM into reused buffers) compute what the plain ops compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bindcli
from bindcli.model import layers
from bindcli.model.layers import Linear, Scratch, Transformer, linear

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
@pytest.mark.skipif(  # the check `layers` makes; it follows ONEDNN_MAX_CPU_ISA, unlike torch.cpu's
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason="oneDNN has no bf16 kernels for this CPU (AVX-512 or AVX2-VNNI-2), so bind's bf16 "
    "linear never takes this path",
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


@pytest.mark.parametrize("gelu", [False, True])
def test_gemm_path_writes_into_the_offered_buffers(gelu, monkeypatch):
    monkeypatch.setattr(layers, "_ONEDNN_FP32_MAX_ROWS", 0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 64, generator=g)
    w = torch.randn(96, 64, generator=g) / 8
    b = torch.randn(96, generator=g)
    buffer = torch.full((10, 96), float("nan"))
    with torch.inference_mode():
        out = linear(x, w, b, gelu=gelu, out=buffer)
        assert out.shape == (2, 5, 96) and out.data_ptr() == buffer.data_ptr()
        torch.testing.assert_close(out, _plain(x, w, b, gelu, None), atol=1e-5, rtol=1e-5)


def test_gemm_path_accumulates_into_the_residual(monkeypatch):
    monkeypatch.setattr(layers, "_ONEDNN_FP32_MAX_ROWS", 0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 64, generator=g)
    w = torch.randn(96, 64, generator=g) / 8
    b = torch.randn(96, generator=g)
    residual = torch.randn(2, 5, 96, generator=g)
    expected = _plain(x, w, b, False, residual)
    with torch.inference_mode():
        out = linear(x, w, b, residual=residual, out=residual)
    assert out is residual
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_scratch_buffers_are_reused_and_sized_per_request():
    scratch = Scratch()
    like = torch.empty(0)
    big = scratch.take("mlp", 6, 8, like)
    small = scratch.take("mlp", 2, 8, like)
    assert small.shape == (2, 8) and small.data_ptr() == big.data_ptr()
    assert scratch.take("mlp", 7, 8, like).shape == (7, 8)  # grows when asked for more
    assert scratch.take("mlp", 1, 8, like.bfloat16()).dtype == torch.bfloat16


def _transformer(causal=False, add_bias_kv=False):
    torch.manual_seed(0)
    trunk = Transformer(32, depth=3, num_heads=4, add_bias_kv=add_bias_kv, causal=causal)
    for module in trunk.modules():
        if hasattr(module, "init_weights"):
            module.init_weights()
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.bias)
    return trunk.eval()


@pytest.mark.parametrize("causal,add_bias_kv", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("select", [False, True])
def test_reused_buffers_give_what_fresh_tensors_give(causal, add_bias_kv, select, monkeypatch):
    """Blocks writing into shared buffers and updating x in place (no autograd) compute what
    they compute with a fresh tensor per step, on the GEMM path that uses the buffers."""
    monkeypatch.setattr(layers, "_ONEDNN_FP32_MAX_ROWS", 0)
    trunk = _transformer(causal, add_bias_kv)
    x = torch.randn(3, 11, 32)
    given = x.clone()
    index = torch.tensor([10, 0, 4]) if select else None
    with torch.inference_mode():
        reused = trunk(x, index)
        monkeypatch.setattr(Transformer, "reuse_buffers", False)
        fresh = trunk(x, index)
    torch.testing.assert_close(reused, fresh, atol=1e-5, rtol=1e-5)
    assert torch.equal(x, given), "the caller's tensor was modified"


def test_transformer_keeps_autograd_working():
    trunk = _transformer()
    x = torch.randn(2, 7, 32, requires_grad=True)
    trunk(x).sum().backward()
    assert x.grad is not None and trunk.blocks[0].attn.in_proj_weight.grad is not None


@pytest.fixture(scope="module")
def model(small_config_path, small_weights_path):
    return bindcli.load_model(config=small_config_path, weights=small_weights_path)


@pytest.mark.parametrize("path", ["onednn", "gemm"])
@pytest.mark.parametrize("case", CASES)
def test_model_on_each_linear_path_matches_upstream_and_plain_ops(
    model, fixtures_dir, case, path, monkeypatch
):
    """oneDNN everywhere, or MKL's GEMM with reused buffers everywhere (the two CPU paths;
    which one a layer takes depends on dtype and row count)."""
    if path == "onednn" and not layers._HAS_ONEDNN_LINEAR:
        pytest.skip("this torch build has no oneDNN fused linear")
    monkeypatch.setattr(layers, "_ONEDNN_FP32_MAX_ROWS", 10**9 if path == "onednn" else 0)
    model_io = np.load(fixtures_dir / "public_model_io.npz")
    key = "vision" if case == "video" else case
    x = torch.from_numpy(model_io[f"in_{case}"])
    with torch.inference_mode():
        fast = model({key: x})[key]
        monkeypatch.setattr(Linear, "fused", False)
        plain = model({key: x})[key]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(fast.numpy(), model_io[f"out_{case}"], atol=1e-5, rtol=1e-4)
