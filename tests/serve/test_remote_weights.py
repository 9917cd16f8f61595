"""A client without the weights uses a server instead of downloading them: a real `bind serve`
with the small model, and client runs whose cache is empty and whose download URL is a closed
loopback port (any download attempt fails the test). The server's model id, and vectors_id,
is then the client's; another config is refused; with no server, the old error."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from cli_support import FIXTURES, MEDIA, bind, jsonl, media
from test_serve import Served, assert_close_json, metric, request, start

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

IMG, WAV = media("dog_image.jpg"), media("dog_audio.wav")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = start(tmp_path_factory.mktemp("serve"), "--port", "0")
    yield served
    assert served.stop() == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def empty_cache(tmp_path) -> dict:
    """The environment of a client with no weights to resolve and nowhere to download from."""
    return {"BIND_WEIGHTS": None, "BIND_CACHE_DIR": str(tmp_path / "empty-cache"),
            "BIND_WEIGHTS_URL": f"http://127.0.0.1:{_closed_port()}/public.pth"}


@pytest.fixture
def no_weights(empty_cache, monkeypatch) -> dict:
    """`empty_cache`, where any download attempt fails the test."""
    from bindcli.weights import fetch

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(fetch, "download", no_download)
    return empty_cache


def served_info(server: Served) -> dict:
    return json.loads(request(server, "GET", "/v1/models")[2])["data"][0]


def collection_pins(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT model_id FROM collections")]


def test_embed_and_compare_take_the_model_from_the_server(server, no_weights):
    embed = ("embed", IMG, WAV, "--text", "a dog", "--raw", "-f", "json")
    compare = ("compare", IMG, WAV, "--text", "a dog", "-f", "json")
    for where in (f"unix:{server.sock}", f"http://127.0.0.1:{server.port}"):
        for args in (embed, compare):
            served = bind(*args, "--server", where, env=no_weights)
            assert served.exit_code == 0, served.stderr
            assert (f"served at {where}; the model id {server.model} is the server's (no weights at "
                    in served.stderr)
            here = bind(*args, "--no-server")
            assert_close_json(json.loads(served.stdout), json.loads(here.stdout))


def test_a_run_asks_the_server_once_and_says_so_once(server, no_weights):
    """With or without local weights, `--server` is probed with one `GET /v1/models` per run
    and one note says what was chosen (without weights it was asked, and noted, twice)."""
    asked = 'bind_requests_total{route="/v1/models",status="200"}'
    where = f"unix:{server.sock}"
    for env in (no_weights, None):
        before = metric(server, asked)
        done = bind("compare", IMG, WAV, "-f", "json", "--server", where, env=env)
        assert done.exit_code == 0, done.stderr
        assert metric(server, asked) - before == 1
        assert done.stderr.count(f"served at {where}") == 1, done.stderr


def test_a_json_config_without_a_download_url_takes_the_model_from_the_server(server, no_weights):
    done = bind("embed", "-t", "x", "-f", "jsonl", "--server", f"unix:{server.sock}",
                env={**no_weights, "BIND_WEIGHTS_URL": None})
    assert done.exit_code == 0 and "is the server's (no local weights)" in done.stderr, done.stderr
    alone = bind("embed", "-t", "x", "--no-server", env={**no_weights, "BIND_WEIGHTS_URL": None})
    assert alone.exit_code == 1 and "no published weights are known" in alone.stderr


def test_the_local_socket_is_asked_too(server, no_weights, monkeypatch):
    monkeypatch.setenv("BIND_DATA_DIR", str(Path(server.sock).parent))  # where serve.sock would be
    link = Path(server.sock).with_name("serve.sock")
    link.symlink_to(server.sock)
    try:
        done = bind("embed", "-t", "x", "-f", "jsonl", env=no_weights)
        assert done.exit_code == 0 and "is the server's" in done.stderr, done.stderr
    finally:
        link.unlink()


def test_index_and_search_pin_the_collection_to_the_servers_vectors_id(server, no_weights, tmp_path):
    db = tmp_path / "c.db"
    where = f"unix:{server.sock}"
    done = bind("index", MEDIA, "--db", db, "--server", where, env=no_weights)
    assert done.exit_code == 0, done.stderr
    assert collection_pins(db) == [served_info(server)["vectors_id"]]
    hits = bind("search", "--text", "a dog", "--db", db, "-f", "jsonl", "-k", "3", "--server", where,
                env=no_weights)
    assert hits.exit_code == 0 and len(jsonl(hits.stdout)) == 3, hits.stderr
    # the same weights in-process name the same vectors: the collection is theirs as well
    here = bind("search", "--text", "a dog", "--db", db, "-f", "jsonl", "-k", "3", "--no-server")
    assert [h["path"] for h in jsonl(here.stdout)] == [h["path"] for h in jsonl(hits.stdout)]


def test_another_config_is_refused_in_one_line(server, no_weights, tmp_path):
    where = f"unix:{server.sock}"
    other = bind("embed", "-t", "x", "--server", where, env={**no_weights, "BIND_MODEL_CONFIG": "imagebind_huge"})
    assert other.exit_code == 2
    assert other.stderr == (f"bind: --model-config imagebind_huge: the server at {where} serves "
                            "public_config, and without local weights imagebind_huge cannot run in-process\n")
    shape = json.loads((FIXTURES / "public_config.json").read_text())
    shape["audio_drop_path"] = 0.2
    (tmp_path / "public_config.json").write_text(json.dumps(shape))
    reshaped = bind("embed", "-t", "x", "--server", where,
                    env={**no_weights, "BIND_MODEL_CONFIG": str(tmp_path / "public_config.json")})
    assert reshaped.exit_code == 2
    assert reshaped.stderr.startswith("bind: --model-config public_config: the server at ")
    assert "of another shape" in reshaped.stderr and len(reshaped.stderr.splitlines()) == 1


def test_a_server_that_computes_otherwise_is_an_error_without_weights(server, no_weights):
    done = bind("embed", "-t", "x", "--precision", "bf16", "--server", f"unix:{server.sock}", env=no_weights)
    assert done.exit_code == 1
    assert "not bf16, and without local weights it cannot run in-process" in done.stderr


def test_without_a_server_or_with_no_server_the_old_error(server, empty_cache, tmp_path):
    offline = {**empty_cache, "BIND_OFFLINE": "1"}
    none = bind("embed", "-t", "x", "--server", f"unix:{tmp_path / 'none.sock'}", env=offline)
    refused = bind("embed", "-t", "x", "--no-server", env=offline)
    for done in (none, refused):
        assert done.exit_code == 1
        assert "no model weights at" in done.stderr and "offline mode is on" in done.stderr
        assert "is the server's" not in done.stderr
    assert none.stderr.count("warning: no server answers at") == 1


def test_locate_needs_the_weights_themselves(server, empty_cache):
    done = bind("locate", IMG, "--text", "a dog", "--server", f"unix:{server.sock}",
                env={**empty_cache, "BIND_OFFLINE": "1"})
    assert done.exit_code == 1 and "offline mode is on" in done.stderr, done.stderr


# --- the library -----------------------------------------------------------------------------


def test_resolve_without_download_names_the_missing_cache_file(no_weights, monkeypatch, tmp_path):
    from bindcli.errors import WeightsError, WeightsNotDownloaded
    from bindcli.embed.identity import Model

    for name, value in no_weights.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(WeightsNotDownloaded) as missing:
        Model.resolve(FIXTURES / "public_config.json", download=False)
    assert missing.value.path == tmp_path / "empty-cache" / "public.pth"
    with pytest.raises(WeightsError) as named:  # a path given that is not there: not the cache's
        Model.resolve(FIXTURES / "public_config.json", tmp_path / "nowhere.pth", download=False)
    assert not isinstance(named.value, WeightsNotDownloaded)


def test_a_served_model_is_the_servers_and_has_no_weights_to_load(server):
    from bindcli.errors import WeightsError
    from bindcli.model.config import load_config
    from bindcli.embed.remote import Address, probe, served_model
    from bindcli.embed.embedder import open_embedder

    address = Address(unix=server.sock)
    info, why = probe(address)
    assert why == ""
    model = served_model(address, info, load_config(FIXTURES / "public_config.json"))
    assert (model.id, model.vectors_id(), model.server) == (server.model, info["vectors_id"], str(address))
    with pytest.raises(WeightsError, match="is the model of the server at"):
        open_embedder(model=model, cache=False)
