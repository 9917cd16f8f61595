"""The huge layout, partial towers, configs as data, checkpoint refusal and input checks."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

import bindcli
from bindcli.errors import CheckpointError, ConfigError
from bindcli.model.checkpoint import read_state_dict, tower_of_key
from bindcli.model.config import ModelConfig, builtin_names, load_config
from bindcli.model.imagebind import ImageBind

# Per-tower element counts of imagebind_huge (parameters plus buffers, from `huge_state_dict_shapes.json`).
HUGE_TOWER_NUMEL = {
    "vision": 632_829_440,
    "text": 354_032_641 + 77 * 77,
    "audio": 86_235_648 + 1,
    "depth": 21_871_872 + 1,
    "thermal": 86_211_072 + 1,
    "imu": 19_600_384 + 1,
}

SECOND_CONFIG = {
    "out_embed_dim": 24,
    "vision_embed_dim": 48, "vision_num_blocks": 1, "vision_num_heads": 3,
    "text_embed_dim": 40, "text_num_blocks": 3, "text_num_heads": 5,
    "audio_embed_dim": 36, "audio_num_blocks": 1, "audio_num_heads": 6, "audio_stride": 12,
    "depth_embed_dim": 16, "depth_num_blocks": 2, "depth_num_heads": 4, "depth_kernel_size": 32,
    "thermal_embed_dim": 20, "thermal_num_blocks": 1, "thermal_num_heads": 2,
    "imu_embed_dim": 24, "imu_num_blocks": 3, "imu_num_heads": 3, "imu_kernel_size": 10,
}


@pytest.fixture(scope="module")
def huge_shapes(fixtures_dir):
    return json.loads((fixtures_dir / "huge_state_dict_shapes.json").read_text())


@pytest.fixture(scope="module")
def huge_meta():
    with torch.device("meta"):
        return ImageBind(load_config("imagebind_huge"))


def test_huge_state_dict_has_exactly_the_official_keys_and_shapes(huge_meta, huge_shapes):
    ours = {k: list(v.shape) for k, v in huge_meta.state_dict().items()}
    assert set(ours) == set(huge_shapes)
    assert ours == huge_shapes
    names = "\n".join(sorted(ours)).encode()
    assert hashlib.sha256(names).hexdigest() == (
        "542b7fd9c8ab102475607dac90927ed636bd99a85574cab921638e639bac0a9c"
    )
    assert sum(v.numel() for v in huge_meta.state_dict().values()) == 1_200_786_990


def test_huge_tower_sizes(huge_meta):
    per_tower: dict[str, int] = {}
    for key, value in huge_meta.state_dict().items():
        per_tower[tower_of_key(key)] = per_tower.get(tower_of_key(key), 0) + value.numel()
    assert per_tower == HUGE_TOWER_NUMEL


def test_only_requested_towers_are_built():
    with torch.device("meta"):
        model = ImageBind(load_config("imagebind_huge"), modalities=("audio", "vision"))
    assert model.modalities == ("vision", "audio")
    numel = sum(v.numel() for v in model.state_dict().values())
    assert numel == HUGE_TOWER_NUMEL["vision"] + HUGE_TOWER_NUMEL["audio"]
    assert {tower_of_key(k) for k in model.state_dict()} == {"vision", "audio"}


def test_partial_load_from_full_checkpoint(small_config_path, small_weights_path):
    model = bindcli.load_model(small_config_path, small_weights_path, modalities=["imu"])
    full = torch.load(small_weights_path, weights_only=True)
    state = model.state_dict()
    assert set(state) == {k for k in full if tower_of_key(k) == "imu"}
    for key, value in state.items():
        assert torch.equal(value, full[key])
    with pytest.raises(ValueError, match="built without the 'vision' tower"):
        model({"vision": torch.zeros(1, 3, 224, 224)})


def test_builtin_and_unknown_configs(tmp_path):
    assert "imagebind_huge" in builtin_names()
    huge = load_config("imagebind_huge")
    assert (huge.vision_embed_dim, huge.text_num_blocks, huge.out_embed_dim) == (1280, 24, 1024)
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_config("imagebind_tiny")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"vision_width": 3}))
    with pytest.raises(ConfigError, match="unknown key.*vision_width"):
        load_config(bad)
    bad.write_text(json.dumps({"vision_embed_dim": 50, "vision_num_heads": 4}))
    with pytest.raises(ConfigError, match="not divisible"):
        load_config(bad)


def test_a_json_config_names_its_weights_apart_from_the_shape(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"vision_num_blocks": 2, "weights": {"url": "http://127.0.0.1/m.pth", "sha256": "AB" * 32}}))
    config = load_config(mine)
    assert (config.weights.url, config.weights.sha256, config.weights.notice) == ("http://127.0.0.1/m.pth", "ab" * 32, None)
    assert "weights" not in config.to_dict() and config == ModelConfig(vision_num_blocks=2)
    for weights, wrong in (({"sha256": "ab" * 32}, 'must be an object with a "url"'),
                           ({"url": "http://x/m.pth", "md5": "x"}, "unknown key.*md5"),
                           ({"url": "http://x/m.pth", "sha256": "abc"}, "64 hex digits")):
        mine.write_text(json.dumps({"weights": weights}))
        with pytest.raises(ConfigError, match=f"'mine'.*{wrong}"):
            load_config(mine)


def test_second_config_round_trips_through_json(tmp_path):
    config_path = tmp_path / "second.json"
    config_path.write_text(json.dumps(SECOND_CONFIG))
    torch.manual_seed(0)
    original = bindcli.load_model(config_path)  # random init
    weights = tmp_path / "second.pth"
    torch.save(original.state_dict(), weights)
    loaded = bindcli.load_model(config_path, weights)
    assert loaded.config == ModelConfig.from_dict(SECOND_CONFIG)
    inputs = {
        "vision": torch.randn(2, 3, 224, 224),
        "text": torch.tensor([[49406, 320, 1929, 49407] + [0] * 73] * 2),
        "audio": torch.randn(2, 3, 1, 128, 204),
        "depth": torch.randn(2, 1, 224, 224),
        "thermal": torch.randn(2, 1, 224, 224),
        "imu": torch.randn(2, 6, 2000),
    }
    with torch.inference_mode():
        a, b = original(inputs), loaded(inputs)
    for key in inputs:
        assert a[key].shape == (2, 24)
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_checkpoint_for_another_config_is_refused_with_key_names(tmp_path, small_weights_path):
    config_path = tmp_path / "second.json"
    config_path.write_text(json.dumps(SECOND_CONFIG))
    with pytest.raises(CheckpointError) as err:
        bindcli.load_model(config_path, small_weights_path)
    message = str(err.value)
    assert str(small_weights_path) in message
    assert "wrong shape" in message and "modality_preprocessors.vision.cls_token" in message


def test_missing_and_unexpected_keys_are_named(tmp_path, small_config_path, small_weights_path):
    state = torch.load(small_weights_path, weights_only=True)
    del state["modality_trunks.audio.blocks.1.norm_2.bias"]
    state["modality_trunks.audio.extra"] = torch.zeros(1)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        bindcli.load_model(small_config_path, path)
    assert "1 missing: modality_trunks.audio.blocks.1.norm_2.bias" in str(err.value)
    assert "1 unexpected: modality_trunks.audio.extra" in str(err.value)
    # the audio damage does not matter to a vision-only load
    bindcli.load_model(small_config_path, path, modalities=["vision"])


def test_weights_path_may_start_with_home(tmp_path, monkeypatch, small_config_path, small_weights_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "w.pth").write_bytes(small_weights_path.read_bytes())
    model = bindcli.load_model(small_config_path, "~/w.pth", modalities=["depth"])
    assert model.modalities == ("depth",)


def test_truncated_and_foreign_files_are_refused(tmp_path, small_config_path, small_weights_path):
    truncated = tmp_path / "truncated.pth"
    data = small_weights_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth: not a readable PyTorch checkpoint"):
        bindcli.load_model(small_config_path, truncated)
    foreign = tmp_path / "notes.pth"
    foreign.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth"):
        bindcli.load_model(small_config_path, foreign)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(small_weights_path, weights_only=True)}, wrapped)
    with pytest.raises(CheckpointError, match="not a state dict"):
        bindcli.load_model(small_config_path, wrapped)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"x": torch.zeros(1), "payload": _RunsCode()}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        read_state_dict(evil)


@pytest.fixture(scope="module")
def small_model(small_config_path, small_weights_path):
    return bindcli.load_model(small_config_path, small_weights_path)


@pytest.mark.parametrize(
    "modality,shape,match",
    [
        ("vision", (1, 3, 2, 224, 224), "a single clip needs a clip dim"),
        ("vision", (1, 3, 224, 336), "square"),
        ("vision", (1, 1, 3, 4, 224, 224), "expected images"),
        ("audio", (1, 1, 128, 300), r"audio: expected \(B, 1, 128, 204\)"),
        ("depth", (1, 1, 448, 448), "depth: expected"),
        ("depth", (2, 3, 1, 1, 224, 224), "depth: expected"),
        ("imu", (1, 6, 1000), r"imu: expected \(B, 6, 2000\)"),
    ],
)
def test_wrong_shapes_raise_value_error(small_model, modality, shape, match):
    with pytest.raises(ValueError, match=match):
        small_model({modality: torch.zeros(shape)})


def test_text_ids_are_checked(small_model):
    with pytest.raises(ValueError, match=r"text: expected token ids \(B, 77\)"):
        small_model({"text": torch.zeros(2, 76, dtype=torch.long)})
    with pytest.raises(ValueError, match="integers"):
        small_model({"text": torch.zeros(2, 77)})
    with pytest.raises(ValueError, match=r"\[0, 49408\)"):
        small_model({"text": torch.full((1, 77), 50000)})


def test_none_modality_is_skipped_and_multi_view_inputs_average(small_model):
    x = torch.randn(2, 2, 1, 224, 224)
    with torch.inference_mode():
        out = small_model({"depth": x, "audio": None})
        singles = small_model({"depth": x.flatten(0, 1)})["depth"].unflatten(0, (2, 2))
    assert set(out) == {"depth"}
    torch.testing.assert_close(out["depth"], singles.mean(1))


def test_tensor_specs_reads_headers_of_both_formats(tmp_path, small_weights_path):
    from safetensors.torch import save_file

    from bindcli.model.checkpoint import tensor_specs

    state = torch.load(small_weights_path, weights_only=True)
    half = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "half.safetensors"
    save_file({k: v.contiguous() for k, v in half.items()}, path)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in half.items()}
    assert tensor_specs(path) == expected
    assert tensor_specs(small_weights_path) == {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="broken.safetensors: not a readable safetensors"):
        tensor_specs(broken)
