"""The adapter as a model part: merged into the weights it computes what training computed,
and Ray workers put the driver's adapter on their model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bindcli.embed.identity import Model, with_adapter
from bindcli.errors import BindError
from bindcli.model.adapter import AdapterHeader, read_adapter
from bindcli.model.factory import load_model
from bindcli.model.tuning import add_lora, save_adapter


@pytest.fixture(scope="module")
def base(small_config_path, small_weights_path):
    return Model.resolve(small_config_path, small_weights_path)


def _images(n: int) -> torch.Tensor:
    return torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(5))


def test_a_merged_lora_adapter_computes_what_training_computed(base, tmp_path):
    trained = load_model(base.config, base.weights, ["vision"])
    params = add_lora(trained, "vision", rank=3, blocks=2, seed=0)
    with torch.no_grad():
        for name, p in params.items():
            if name.endswith(".b"):
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
        expected = trained.embed("vision", _images(2))
    path = tmp_path / "lora.safetensors"
    save_adapter(path, params, AdapterHeader(base=base.id, tower="vision", method="lora", rank=3, blocks=2))
    adapter = read_adapter(path)
    merged = load_model(base.config, base.weights, ["vision", "text"], adapter=adapter)
    plain = load_model(base.config, base.weights, ["vision"])
    with torch.inference_mode():
        got, untuned = merged.embed("vision", _images(2)), plain.embed("vision", _images(2))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got.numpy(), untuned.numpy(), atol=1e-3)


def test_a_head_adapter_maps_the_towers_output(base, tmp_path):
    rotation = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(1)))[0]
    path = tmp_path / "head.safetensors"
    save_adapter(path, {"head.map": rotation}, AdapterHeader(base=base.id, tower="vision", method="head"))
    plain = load_model(base.config, base.weights, ["vision"])
    tuned = load_model(base.config, base.weights, ["vision"], adapter=read_adapter(path))
    with torch.inference_mode():
        a, b = plain.embed("vision", _images(2)), tuned.embed("vision", _images(2))
    np.testing.assert_allclose(b.numpy(), (a @ rotation.T).numpy(), rtol=1e-4, atol=1e-5)


def test_an_adapter_that_does_not_fit_the_tower_is_refused(base, tmp_path):
    path = tmp_path / "wrong.safetensors"
    save_adapter(path, {"head.map": torch.eye(8)}, AdapterHeader(base=base.id, tower="vision", method="head"))
    with pytest.raises(BindError, match="does not fit the vision tower"):
        load_model(base.config, base.weights, ["vision"], adapter=read_adapter(path))


def test_ray_workers_put_the_drivers_adapter_on_their_model(base, tmp_path):
    from bindcli.embed.ray_engine import RayEmbedder, WorkerSpec

    path = tmp_path / "head.safetensors"
    save_adapter(path, {"head.map": torch.eye(32)}, AdapterHeader(base=base.id, tower="vision", method="head"))
    tuned = base.adapted(path)
    spec = WorkerSpec(base.config, str(base.weights), "cpu", "fp32", adapter=str(path))
    with spec.open() as worker:
        assert worker.adapter.id == tuned.adapter.id and worker.vectors_id == tuned.vectors_id()
    driver = RayEmbedder(spec, tuned)
    driver._check(with_adapter(base.id, tuned.adapter), "fp32", "cpu")
    with pytest.raises(BindError, match="same --adapter file"):
        RayEmbedder(spec, base)._check(with_adapter(base.id, tuned.adapter), "fp32", "cpu")
