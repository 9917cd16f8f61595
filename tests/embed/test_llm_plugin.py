"""bind's plugin for simonw's `llm`, driven by llm itself: `llm embed-multi --files DIR '*'
--binary` then `llm similar -c TEXT` on photos, sounds and a video; the model's vectors are
bind's unit vectors, in-process and through a running `bind serve`; what the entry point names.

llm finds installed plugins through their entry points; the tests run against this checkout,
which may not be the installed one, so the plugin is registered with llm's plugin manager as
its entry point would register it, and the entry point itself is checked in pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import re
from pathlib import Path

import llm
import llm.plugins
import numpy as np
import pytest
from click.testing import CliRunner
from llm.cli import cli as llm_cli

import bindcli
import bindcli.llm_plugin as plugin
from bindcli.embed.remote import RemoteEmbedder
from bindcli.errors import InputError
from cli_support import MEDIA, SMALL

ROOT = Path(__file__).resolve().parents[2]
FILES = ["dog_image.jpg", "car_image.jpg", "dog_audio.wav", "car_audio.wav", "synthetic_0.mp4"]


@pytest.fixture(autouse=True)
def small_model(monkeypatch, tmp_path):
    """The small model on the CPU, llm's database in a folder of the test's own, and the
    plugin registered (once: llm may have found it already through an installed entry point)."""
    for name, value in SMALL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    llm.plugins.load_plugins()
    if not llm.plugins.pm.is_registered(plugin):
        llm.plugins.pm.register(plugin, name="bindcli")


@pytest.fixture(scope="module")
def expected():
    """The unit vectors of `FILES` and the query text from bind's own embedder."""
    with bindcli.open_embedder(SMALL["BIND_MODEL_CONFIG"], SMALL["BIND_WEIGHTS"], device="cpu",
                               precision="fp32", cache=False) as embedder:
        results = embedder.embed([MEDIA / name for name in FILES], texts=["a dog barking"])
    return {**{name: r.unit for name, r in zip(FILES, results)}, "a dog barking": results[-1].unit}


def test_llm_finds_the_model_and_it_takes_text_and_bytes():
    model = llm.get_embedding_model("imagebind")
    assert isinstance(model, plugin.ImageBind)
    assert model.supports_text and model.supports_binary


def test_texts_and_files_bytes_embed_as_bind_embeds_them(expected):
    model = llm.get_embedding_model("imagebind")
    items = ["a dog barking", *[(MEDIA / name).read_bytes() for name in FILES]]
    vectors = list(model.embed_multi(items))
    for name, vector in zip(["a dog barking", *FILES], vectors):
        np.testing.assert_allclose(vector, expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert not isinstance(model.embedder, RemoteEmbedder)  # no server is running


def test_embed_multi_then_similar_on_a_folder_of_photos_and_sounds(tmp_path, expected):
    folder = tmp_path / "media"
    folder.mkdir()
    for name in FILES:
        shutil.copy(MEDIA / name, folder / name)
    runner = CliRunner()
    stored = runner.invoke(llm_cli, ["embed-multi", "media", "--files", str(folder), "*", "--binary",
                                     "-m", "imagebind"])
    assert stored.exit_code == 0, stored.output
    found = runner.invoke(llm_cli, ["similar", "media", "-c", "a dog barking", "-n", str(len(FILES))])
    assert found.exit_code == 0, found.output
    hits = [json.loads(line) for line in found.output.splitlines()]
    scores = {name: float(expected[name] @ expected["a dog barking"]) for name in FILES}
    assert [hit["id"] for hit in hits] == sorted(scores, key=scores.get, reverse=True)
    np.testing.assert_allclose([hit["score"] for hit in hits], sorted(scores.values(), reverse=True),
                               rtol=1e-4, atol=1e-6)


def test_an_item_bind_cannot_read_stops_with_its_place_named():
    model = llm.get_embedding_model("imagebind")
    with pytest.raises(InputError, match=r"^binary item 2: bind cannot tell its kind from its bytes"):
        list(model.embed_multi(["a dog", b"\0\x01\x02 not a format"]))
    with pytest.raises(InputError, match=r'^"  ": empty text'):
        list(model.embed_multi(["  "]))


def test_a_file_that_fails_to_decode_is_named_by_its_place_and_kind():
    model = llm.get_embedding_model("imagebind")
    with pytest.raises(InputError, match=r"^binary item 1 \(image\): "):
        list(model.embed_multi([b"\x89PNG\r\n\x1a\n truncated"]))


def test_a_named_server_that_does_not_answer_is_warned_of_and_this_process_embeds(
    tmp_path, monkeypatch, expected
):
    monkeypatch.setenv("BIND_SERVER", f"unix:{tmp_path / 'none.sock'}")
    model = plugin.ImageBind()
    with pytest.warns(UserWarning, match=f"^bind: no server answers at unix:{tmp_path / 'none.sock'}.*; running in-process$"):
        vectors = list(model.embed_multi(["a dog barking"]))
    np.testing.assert_allclose(vectors[0], expected["a dog barking"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_running_server_embeds_for_the_plugin(tmp_path, monkeypatch, expected):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "serve"))
    from test_serve import start

    served = start(tmp_path)
    try:
        monkeypatch.setenv("BIND_SERVER", f"unix:{served.sock}")
        model = plugin.ImageBind()
        vectors = list(model.embed_multi([(MEDIA / "dog_audio.wav").read_bytes(), "a dog barking"]))
        assert isinstance(model.embedder, RemoteEmbedder)
        np.testing.assert_allclose(vectors[0], expected["dog_audio.wav"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(vectors[1], expected["a dog barking"], rtol=1e-5, atol=1e-6)
    finally:
        assert served.stop() == 0


def test_pyproject_declares_the_entry_point_llm_loads():
    section = re.search(r"^\[project\.entry-points\.llm\]\n(.*?)(?:\n\n|\Z)",
                        (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    assert section is not None and section.group(1).splitlines() == ['bindcli = "bindcli.llm_plugin"']
    loaded = importlib.metadata.EntryPoint("bindcli", "bindcli.llm_plugin", "llm").load()
    assert loaded is plugin
    assert llm.plugins.pm.parse_hookimpl_opts(plugin, "register_embedding_models") is not None
