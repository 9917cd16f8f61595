"""Verify, convert and info on the small checkpoint, and the refusal of unsafe or broken files."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat

import pytest
import torch

from bindcli import weights
from bindcli.errors import CheckpointError, WeightsError
from bindcli.model.checkpoint import convert, info, read_state_dict


@pytest.fixture
def recorded(tmp_path, small_weights_path):
    """A copy of the small checkpoint with a record beside it, as a download leaves it."""
    path = tmp_path / "public.pth"
    shutil.copyfile(small_weights_path, path)
    weights.write_record(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), source="test")
    return path


def test_verify_accepts_an_intact_file(recorded):
    result = weights.verify(recorded)
    assert result.ok and result.checked
    assert result.size == recorded.stat().st_size
    assert result.sha256 == json.loads(weights.record_path(recorded).read_text())["sha256"]


def test_verify_detects_a_flipped_byte(recorded):
    data = bytearray(recorded.read_bytes())
    data[len(data) // 2] ^= 0xFF
    recorded.write_bytes(bytes(data))
    result = weights.verify(recorded)
    assert not result.ok
    assert result.problems == (f"SHA-256 is {result.sha256}, the record says {result.record['sha256']}",)


def test_verify_detects_truncation(recorded):
    size = recorded.stat().st_size
    with open(recorded, "r+b") as f:
        f.truncate(size - 1)
    problems = weights.verify(recorded).problems
    assert problems[0] == f"size is {size - 1} bytes, the record says {size}"
    assert len(problems) == 2


def test_verify_without_a_record_checks_an_expected_hash(tmp_path, small_weights_path, monkeypatch):
    path = tmp_path / "by-hand.pth"
    shutil.copyfile(small_weights_path, path)
    unchecked = weights.verify(path)
    assert unchecked.ok and not unchecked.checked
    assert weights.verify(path, expected_sha256=unchecked.sha256).ok
    monkeypatch.setenv("BIND_WEIGHTS_SHA256", "f" * 64)
    assert weights.verify(path).problems == (f"SHA-256 is {unchecked.sha256}, expected {'f' * 64} (BIND_WEIGHTS_SHA256)",)


def test_verify_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(WeightsError, match=r"nothing\.pth does not exist; nothing to verify\."):
        weights.verify(tmp_path / "nothing.pth")


def test_convert_round_trip_gives_identical_tensors(tmp_path, small_weights_path, umask):
    out = convert(small_weights_path, tmp_path / "small.safetensors")
    original, copy = read_state_dict(small_weights_path), read_state_dict(out)
    assert sorted(copy) == sorted(original)
    for key, tensor in original.items():
        assert copy[key].dtype == tensor.dtype and torch.equal(copy[key], tensor), key
    assert weights.verify(out).ok
    assert stat.S_IMODE(out.stat().st_mode) == umask  # not safetensors' private 0600
    assert json.loads(weights.record_path(out).read_text())["file"] == "small.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.safetensors", "small.safetensors.json"]


@pytest.mark.parametrize("dtype, torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_convert_to_half_precision_halves_the_file(tmp_path, small_weights_path, dtype, torch_dtype):
    out = convert(small_weights_path, tmp_path / f"small-{dtype}.safetensors", dtype)
    assert 0.45 < out.stat().st_size / small_weights_path.stat().st_size < 0.55
    original, copy = read_state_dict(small_weights_path), read_state_dict(out)
    for key, tensor in original.items():
        assert torch.equal(copy[key], tensor.to(torch_dtype)), key


def test_converted_file_loads_into_the_model(tmp_path, small_weights_path, small_config_path):
    from bindcli.model.factory import load_model

    out = convert(small_weights_path, tmp_path / "small.safetensors")
    from_pth = load_model(small_config_path, small_weights_path, ("vision", "audio"))
    from_st = load_model(small_config_path, out, ("vision", "audio"))
    for (key, a), (_, b) in zip(from_pth.state_dict().items(), from_st.state_dict().items()):
        assert torch.equal(a, b), key


def test_convert_refuses_bad_arguments(tmp_path, small_weights_path):
    with pytest.raises(WeightsError, match=r"must end in \.safetensors"):
        convert(small_weights_path, tmp_path / "out.pth")
    with pytest.raises(WeightsError, match="unknown dtype 'int8'"):
        convert(small_weights_path, tmp_path / "out.safetensors", "int8")
    assert list(tmp_path.iterdir()) == []


def test_info_counts_towers(tmp_path, small_weights_path, fixtures_dir):
    state = read_state_dict(small_weights_path)
    result = info(small_weights_path)
    assert result.file_size == small_weights_path.stat().st_size
    assert result.dtypes == ("float32",)
    assert result.sha256 is None
    assert [t.tower for t in result.towers] == ["vision", "text", "audio", "thermal", "depth", "imu"]
    assert sum(t.tensors for t in result.towers) == len(state)
    assert result.parameters == sum(t.numel() for t in state.values())
    vision = {k: v for k, v in state.items() if ".vision." in k}
    assert result.towers[0].parameters == sum(v.numel() for v in vision.values())
    assert result.towers[0].bytes == 4 * result.towers[0].parameters
    converted = convert(small_weights_path, tmp_path / "small-bf16.safetensors", "bf16")
    half = info(converted)
    assert half.dtypes == ("bfloat16",) and half.parameters == result.parameters
    assert half.sha256 == hashlib.sha256(converted.read_bytes()).hexdigest()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"modality_trunks.vision.x": torch.zeros(1), "payload": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        read_state_dict(evil)
    with pytest.raises(CheckpointError):
        info(evil)
    assert not marker.exists()


def test_truncated_checkpoint_gets_a_clear_error(tmp_path, small_weights_path):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(small_weights_path.read_bytes()[: small_weights_path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: not a readable PyTorch checkpoint"):
        read_state_dict(cut)


@pytest.mark.parametrize(
    "name, content",
    [("notes.pth", b"this is a text file, not weights\n"), ("random.safetensors", bytes(range(256)) * 8)],
)
def test_foreign_file_gets_a_clear_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"{name}: not a readable"):
        read_state_dict(path)


def test_a_pickled_non_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_state_dict(path)
