"""Training adapters on the small model: deterministic for a seed, a stopped run resumes to
the same adapter, and bad data is refused before any training."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load_file
from stripes import stripes

from bindcli.embed.embedder import open_embedder
from bindcli.errors import UsageError
from bindcli.tune.data import read_data, split
from bindcli.tune.train import Callbacks, Settings, checkpoint_path, train


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    data = read_data(stripes(tmp_path_factory.mktemp("stripes"), 12, seed=1))
    return split(data, 0.25, seed=0)


@pytest.fixture(scope="module")
def embedder(small_config_path, small_weights_path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("tune-cache") / "cache.sqlite3"
    with open_embedder(small_config_path, small_weights_path, device="cpu", precision="fp32", cache=cache) as e:
        yield e


LORA = Settings(method="lora", rank=2, blocks=1, epochs=4, lr=3e-3, batch=8, patience=10)


class Stop(Exception):
    pass


def _stop_after(n: int) -> Callbacks:
    def epoch(result):
        if result.number == n:
            raise Stop

    return Callbacks(epoch=epoch)


@pytest.mark.parametrize("settings", [Settings(epochs=4, lr=0.05, batch=8, patience=10), LORA], ids=["head", "lora"])
def test_a_stopped_run_resumes_to_the_adapter_of_one_never_stopped(embedder, task, tmp_path, settings):
    training, held_out = task
    whole = train(embedder, training, held_out, tmp_path / "whole.safetensors", settings)
    assert not checkpoint_path(tmp_path / "whole.safetensors").exists()  # removed once finished

    resumed = tmp_path / "resumed.safetensors"
    with pytest.raises(Stop):
        train(embedder, training, held_out, resumed, settings, callbacks=_stop_after(2))
    assert checkpoint_path(resumed).exists() and not resumed.exists()
    seen = []
    again = train(embedder, training, held_out, resumed, settings, resume=True,
                  callbacks=Callbacks(epoch=lambda e: seen.append(e.number)))
    assert seen == [3, 4]  # the two epochs done before the stop are not run again
    a, b = load_file(tmp_path / "whole.safetensors"), load_file(resumed)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert [e.val_top1 for e in again.history] == [e.val_top1 for e in whole.history]
    assert again.adapter.header.validation == whole.adapter.header.validation


def test_a_seed_gives_the_same_adapter(embedder, task, tmp_path):
    training, held_out = task
    settings = Settings(epochs=2, lr=0.05, batch=8)
    first = train(embedder, training, held_out, tmp_path / "a.safetensors", settings)
    second = train(embedder, training, held_out, tmp_path / "b.safetensors", settings)
    assert first.adapter.id == second.adapter.id
    other = train(embedder, training, held_out, tmp_path / "c.safetensors", Settings(epochs=2, lr=0.05, batch=8, seed=1))
    assert other.adapter.id != first.adapter.id


def test_the_adapter_header_says_what_was_trained(embedder, task, tmp_path):
    training, held_out = task
    out = train(embedder, training, held_out, tmp_path / "a.safetensors", LORA, split={"fraction": 0.25})
    header = out.adapter.header
    assert (header.base, header.tower, header.method, header.rank, header.blocks) == (
        embedder.model_id, "vision", "lora", 2, 1)
    assert header.items == len(training.examples) and header.epochs == 4
    assert len(header.data) == 64 and header.split == {"fraction": 0.25}
    assert set(header.validation) == {"top1", "loss", "epoch", "n"} and header.validation["n"] == len(held_out.examples)


def test_a_resume_with_other_settings_is_refused(embedder, task, tmp_path):
    training, held_out = task
    out = tmp_path / "a.safetensors"
    with pytest.raises(Stop):
        train(embedder, training, held_out, out, Settings(epochs=3, lr=0.05), callbacks=_stop_after(1))
    with pytest.raises(UsageError, match="another run"):
        train(embedder, training, held_out, out, Settings(epochs=3, lr=0.01), resume=True)
    with pytest.raises(UsageError, match="no checkpoint"):
        train(embedder, training, held_out, tmp_path / "none.safetensors", Settings(), resume=True)


def test_one_class_is_refused_before_training(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.png").write_bytes(b"")
    with pytest.raises(UsageError, match="1 class; tuning needs at least two"):
        read_data(tmp_path)


def test_unreadable_files_are_skipped_and_returned(embedder, task, tmp_path):
    training, held_out = task
    broken = tmp_path / "data"
    stripes(broken, 6, seed=3)
    (broken / "columns" / "broken.png").write_bytes(b"not a png")
    (broken / "rows" / "notes.xyz").write_text("no modality reads this")
    data = read_data(broken)
    for settings in (Settings(epochs=1), Settings(method="lora", epochs=1, blocks=1)):
        out = train(embedder, data, held_out, tmp_path / "a.safetensors", settings)
        assert sorted(e.source for e in out.skipped) == [
            str(broken / "columns" / "broken.png"), str(broken / "rows" / "notes.xyz")]
        assert out.adapter.header.items == 12


def test_a_precision_that_cannot_train_is_refused(small_config_path, small_weights_path, task, tmp_path):
    training, held_out = task
    with open_embedder(small_config_path, small_weights_path, device="cpu", precision="int8", cache=False) as e:
        with pytest.raises(UsageError, match="training runs in fp32 or bf16"):
            train(e, training, held_out, tmp_path / "a.safetensors", Settings())


def test_pairs_tune_the_files_tower_against_the_partners(embedder, tmp_path):
    root = stripes(tmp_path / "img", 4, seed=2)
    rows = ["a,b"] + [f"img/{c}/{i:03}.png,stripes that run {c}" for c in ("rows", "columns") for i in range(4)]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    data = read_data(tmp_path / "pairs.csv")
    assert not data.by_class and data.examples[0].text and root.is_dir()
    training, held_out = split(data, 0.25, seed=0)
    out = train(embedder, training, held_out, tmp_path / "p.safetensors", Settings(epochs=2, batch=4))
    assert out.adapter.header.tower == "vision" and len(out.history) == 2


def test_class_folders_of_sounds_tune_the_audio_tower(embedder, tmp_path):
    import soundfile

    rng = np.random.default_rng(0)
    for name, hz in (("low", 300), ("high", 3000)):
        (tmp_path / name).mkdir()
        for i in range(4):
            t = np.arange(16000) / 16000
            tone = 0.3 * np.sin(2 * np.pi * hz * rng.uniform(0.8, 1.2) * t) + 0.05 * rng.normal(size=t.size)
            soundfile.write(tmp_path / name / f"{i}.wav", tone.astype(np.float32), 16000)
    training, held_out = split(read_data(tmp_path), 0.25, seed=0)
    out = train(embedder, training, held_out, tmp_path / "a.safetensors", Settings(epochs=1, batch=4))
    assert out.adapter.header.tower == "audio" and out.adapter.header.items == 6


def test_lora_trains_under_bf16_autocast_with_checkpointing(small_config_path, small_weights_path, task, tmp_path):
    training, held_out = task
    with open_embedder(small_config_path, small_weights_path, device="cpu", precision="bf16", cache=False) as e:
        out = train(e, training, held_out, tmp_path / "a.safetensors",
                    Settings(method="lora", epochs=1, blocks=1, batch=8, checkpointing=True))
    assert np.isfinite(out.history[0].loss) and out.adapter.header.method == "lora"
