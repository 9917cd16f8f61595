"""`--precision int8`: the quantised fixture model agrees with fp32, and the CLI runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bindcli.model import placement
from bindcli.errors import DeviceError
from bindcli.model import quantize
from bindcli.model.factory import load_model, resolve_dtype
from bindcli.model.layers import linear
from bindcli.model.quantize import Int8Weight
from bindcli.model.placement import Precision, choose_precision, place
from cli_support import bind, jsonl, media, reference

CASES = ["vision", "text", "audio", "depth", "thermal", "imu", "video"]
needs_int8 = pytest.mark.skipif(
    quantize.unavailable_reason() is not None,
    reason=f"no int8 kernels: {quantize.unavailable_reason()}",
)


@pytest.fixture(scope="module")
def model_io(fixtures_dir):
    return dict(np.load(fixtures_dir / "public_model_io.npz"))


@pytest.fixture(scope="module")
def models(small_config_path, small_weights_path):
    fp32 = load_model(small_config_path, small_weights_path)
    return fp32, load_model(small_config_path, small_weights_path, int8=True)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.float(), b.float(), dim=-1).min())


@needs_int8
@pytest.mark.parametrize("case", CASES)
def test_int8_agrees_with_fp32_for_every_tower(models, model_io, case):
    key = "vision" if case == "video" else case
    x = torch.from_numpy(model_io[f"in_{case}"])
    with torch.inference_mode():
        fp32, int8 = (m({key: x})[key] for m in models)
    assert _cosine(int8, fp32) >= 0.99


@needs_int8
def test_only_the_blocks_linear_layers_are_quantised(models):
    _, int8 = models
    trunk = int8.modality_trunks["vision"]
    block = trunk.blocks[0]
    assert isinstance(block.attn.in_proj_weight, Int8Weight)
    assert isinstance(block.mlp.fc1.weight, Int8Weight)
    assert isinstance(int8.modality_heads["vision"][-1].weight, torch.nn.Parameter)
    assert "modality_trunks.vision.blocks.0.mlp.fc1.weight" not in int8.state_dict()


@needs_int8
@pytest.mark.parametrize("fusion", ["none", "gelu", "residual", "residual-in-place", "no-bias"])
def test_int8_linear_fusions_match_the_plain_ops(fusion):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 37, 64, generator=g)
    w = torch.randn(96, 64, generator=g) / 8
    b = None if fusion == "no-bias" else torch.randn(96, generator=g)
    residual = torch.randn(2, 37, 96, generator=g) if fusion.startswith("residual") else None
    gelu = fusion == "gelu"
    expected = F.linear(x, w, b)
    expected = F.gelu(expected) if gelu else expected
    expected = expected if residual is None else expected + residual
    out = residual if fusion == "residual-in-place" else None
    kept = None if residual is None else residual.clone()
    with torch.inference_mode():
        result = linear(x, Int8Weight(w), b, gelu=gelu, residual=residual, out=out)
    assert result.shape == expected.shape and _cosine(result, expected) > 0.999
    if fusion == "residual-in-place":
        assert result.data_ptr() == residual.data_ptr()
    elif residual is not None:
        assert torch.equal(residual, kept)


@needs_int8
def test_row_slices_are_packed_once_and_match_the_whole():
    w = torch.randn(48, 16, generator=torch.Generator().manual_seed(1))
    weight = Int8Weight(w, sliceable=True)
    x = torch.randn(5, 16)
    assert weight[16:] is weight[16:]
    with pytest.raises(TypeError):
        Int8Weight(w)[16:]
    with torch.inference_mode():
        whole = weight.linear(x, None)
        torch.testing.assert_close(weight[16:].linear(x, None), whole[:, 16:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("levels", [255, 127])
@pytest.mark.parametrize("values", [[0.0, 0.0], [-3.0, -1.0], [0.5, 2.0], [-1e-3, 7.0]])
def test_activation_codes_stay_in_range_and_round(monkeypatch, levels, values):
    monkeypatch.setattr(quantize, "activation_levels", lambda: levels)
    rows = torch.cat([torch.linspace(*values, 999), torch.tensor(values)]).view(-1, 7)
    codes, scale, zero = quantize._quantize(rows)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= levels
    assert float(((codes.float() - zero) * scale - rows).abs().max()) <= scale / 2 + 1e-6


@pytest.mark.parametrize(
    "capability, vnni, levels",
    [("AVX512", True, 255), ("AVX512", False, 127), ("AVX2", True, 127), ("DEFAULT", False, 127)],
)
def test_full_range_activations_only_where_int8_sums_in_32_bits(monkeypatch, capability, vnni, levels):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni)
    quantize.activation_levels.cache_clear()
    try:
        assert quantize.activation_levels() == levels
    finally:
        quantize.activation_levels.cache_clear()


def test_int8_is_opt_in_cpu_only_and_not_a_dtype(monkeypatch):
    monkeypatch.setattr(placement, "cpu_bf16_units", lambda: [])
    assert choose_precision("auto", torch.device("cpu")).precision == "fp32"
    with pytest.raises(DeviceError, match="CPU only"):
        choose_precision("int8", torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    chosen = place("auto", "int8")
    assert chosen.device == torch.device("cpu") and chosen.int8 and chosen.dtype is torch.float32
    assert not place("cpu", "fp32").int8 and Precision("int8").quantized
    with pytest.raises(ValueError, match="int8=True"):
        resolve_dtype("int8")


@pytest.mark.parametrize("units, warns", [(["AMX"], True), ([], False)])
def test_int8_warns_where_bf16_is_native(monkeypatch, units, warns):
    monkeypatch.setattr(placement, "cpu_bf16_units", lambda: units)
    monkeypatch.setattr(quantize, "unavailable_reason", lambda: None)
    warning = choose_precision("int8", torch.device("cpu")).warning
    assert (warning is not None and "bf16 is faster" in warning) is warns


def test_int8_refused_where_the_kernels_are_missing(monkeypatch):
    monkeypatch.setattr(quantize, "unavailable_reason", lambda: "no oneDNN here")
    with pytest.raises(DeviceError, match="no oneDNN here"):
        choose_precision("int8", torch.device("cpu"))


@needs_int8
def test_cli_embeds_at_int8_and_caches_apart_from_fp32():
    vectors = {}
    for precision in ("fp32", "int8", "int8"):
        result = bind("embed", media("dog_image.jpg"), "-f", "jsonl", "--precision", precision)
        assert result.exit_code == 0, result.stderr
        vectors.setdefault(precision, []).append(np.array(jsonl(result.stdout)[0]["embedding"]))
    fp32, (int8, again) = vectors["fp32"][0], vectors["int8"]
    assert np.array_equal(int8, again)
    assert not np.array_equal(int8, fp32)  # the fp32 run's cache entry was not reused
    assert float(int8 @ fp32) >= 0.99  # unit vectors
    assert float(int8 @ reference("vision/dog_image.jpg")) >= 0.99


def test_cli_refuses_int8_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = bind("embed", "--text", "a dog", "--device", "cuda", "--precision", "int8")
    assert result.exit_code == 2 and "CPU only" in result.stderr


@needs_int8
def test_int8_runs_in_and_out_of_inference_mode():
    weight = Int8Weight(torch.randn(8, 16))
    x = torch.randn(3, 16)
    with torch.inference_mode():
        inside = weight.linear(x, None)
    with torch.no_grad():  # the quantisation buffers made above are not inference tensors
        torch.testing.assert_close(weight.linear(x, None), inside)
