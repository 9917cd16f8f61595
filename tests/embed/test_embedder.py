"""The Embedder: batching, towers, isolation of bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from bindcli.embed import stages
from bindcli.errors import InputError
from bindcli.model import factory
from bindcli.model.config import load_config
from bindcli.modality import Kind
from bindcli.model.placement import place
from bindcli.embed.inputs import Input, gather
from bindcli.embed.stages import Embedding
from bindcli.embed.embedder import Embedder
from cli_support import FIXTURES, media, reference


def test_gather_names_missing_and_unknown_files(tmp_path):
    odd = tmp_path / "notes.xyz"
    odd.write_text("?")
    found = gather([str(tmp_path / "gone.jpg"), str(odd), str(tmp_path)], ["hi"], None)
    assert [isinstance(x, InputError) for x in found] == [True, True, True, False]
    assert found[0].reason == "no such file" and "unknown extension" in found[1].reason
    assert gather([str(odd)], as_kind="text")[0] == Input(str(odd), Kind.TEXT)


@pytest.fixture(scope="module")
def embedder():
    config = load_config(FIXTURES / "public_config.json")
    return Embedder(config, FIXTURES / "public.pth", place("cpu", "fp32"), batch_size=2)


class CountingCache:
    def __init__(self):
        self.vectors, self.gets = {}, 0

    def cache_get(self, keys):
        self.gets += 1
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def cache_put(self, entries):
        self.vectors.update(entries)


def test_mixed_batch_matches_upstream_and_isolates_bad_inputs(embedder, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....")
    names = ["dog_image.jpg", "car_image.jpg", "synthetic_0.mp4", "bird_image.jpg", "dog_audio.wav"]
    items = gather([media(n) for n in names[:3]] + [str(broken)] + [media(n) for n in names[3:]], ["a dog"])
    items.insert(1, InputError("typo.jpg", "no such file"))
    results = embedder.embed(items)
    assert isinstance(results[1], InputError) and isinstance(results[4], InputError)
    good = [r for r in results if isinstance(r, Embedding)]
    keys = ["vision/dog_image.jpg", "vision/car_image.jpg", "video/synthetic_0.mp4",
            "vision/bird_image.jpg", "audio/dog_audio.wav"]
    for result, key in zip(good, keys):
        assert float(result.unit @ reference(key)) > 0.99999, key
    assert good[-1].input.literal and good[-1].input.kind is Kind.TEXT
    assert set(embedder.encoder._model.modalities) == {"vision", "audio", "text"}


def test_only_needed_towers_are_built(monkeypatch):
    config = load_config(FIXTURES / "public_config.json")
    built = []
    real = factory.load_model

    def counting(*args, **kwargs):
        built.append(tuple(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(factory, "load_model", counting)
    fresh = Embedder(config, FIXTURES / "public.pth", place("cpu", "fp32"))
    fresh.embed(gather(texts=["a"]))
    fresh.embed(gather(texts=["b"]))  # same towers: no rebuild
    fresh.embed(gather([media("dog_image.jpg")]))  # a new tower: rebuilt with the union
    assert built == [("text",), ("text", "vision")]


def test_cache_serves_repeats_without_building_a_model(monkeypatch):
    config = load_config(FIXTURES / "public_config.json")
    cache = CountingCache()
    first = Embedder(config, FIXTURES / "public.pth", place("cpu", "fp32"), cache=cache)
    items = gather([media("car_image.jpg")], ["a car"])
    before = first.embed(items)
    monkeypatch.setattr(factory, "load_model", lambda *a, **k: pytest.fail("model built"))
    again = Embedder(config, FIXTURES / "public.pth", place("cpu", "fp32"), cache=cache).embed(items)
    assert len(cache.vectors) == 2
    for a, b in zip(before, again):
        np.testing.assert_array_equal(a.raw, b.raw)
        assert a.sha256 == b.sha256


def test_known_hashes_are_not_recomputed(embedder, monkeypatch):
    items = gather([media("dog_image.jpg"), media("car_image.jpg")])
    monkeypatch.setattr(stages, "sha256_file", lambda path: pytest.fail(f"hashed {path}"))
    results = embedder.embed(items, hashes=["a" * 64, "b" * 64])
    assert [r.sha256 for r in results] == ["a" * 64, "b" * 64]



def test_audio_is_loaded_at_the_size_the_config_takes(tmp_path):
    """A config whose audio tower takes another log-mel size gets that size from the loaders;
    ImageBind's own size keeps the default options (and so the cache keys)."""
    import dataclasses

    import torch

    from bindcli.model.factory import create_model

    small = load_config(FIXTURES / "public_config.json")
    assert Embedder(small, FIXTURES / "public.pth", place("cpu", "fp32")).options is None
    config = dataclasses.replace(small, audio_num_mel_bins=64, audio_target_len=100)
    path = tmp_path / "other.pth"
    torch.save(create_model(config, ["audio"]).state_dict(), path)
    embedder = Embedder(config, path, place("cpu", "fp32"))
    assert (embedder.options.audio_mel_bins, embedder.options.audio_frames) == (64, 100)
    [result] = embedder.embed([media("dog_audio.wav")])
    assert isinstance(result, Embedding) and result.raw.shape == (config.out_embed_dim,)


def test_cache_keys_record_only_the_options_a_kind_reads():
    """An audio option keys audio apart but leaves images on their cached vectors."""
    from bindcli.media.options import MediaOptions

    small = load_config(FIXTURES / "public_config.json")
    plain = Embedder(small, FIXTURES / "public.pth", place("cpu", "fp32"))
    mono = Embedder(small, FIXTURES / "public.pth", place("cpu", "fp32"),
                    options=MediaOptions(audio_upstream_quirks=False))
    image, sound = Input.file(media("dog_image.jpg")), Input.file(media("dog_audio.wav"))
    assert mono.cache_key(image, "a" * 64) == plain.cache_key(image, "a" * 64)
    assert mono.cache_key(sound, "a" * 64) != plain.cache_key(sound, "a" * 64)
    assert mono.cache_key(sound, "a" * 64).options == '{"audio_upstream_quirks": false}'
