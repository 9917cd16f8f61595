"""`bind weights path|download|verify|info|convert` through Typer's test runner."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bindcli import weights
from bindcli.cli.weights import app
from bindcli.model.pretrained import REGISTRY
from cli_support import FIXTURES
from test_weights_download import PAYLOAD, PAYLOAD_SHA, Server

runner = CliRunner()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    for var in ("BIND_WEIGHTS", "BIND_WEIGHTS_SHA256", "BIND_OFFLINE", "HF_HUB_OFFLINE", "BIND_WEIGHTS_URL",
                "BIND_MODEL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BIND_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def cached(cache, small_weights_path):
    """The small checkpoint where the default download would be, with its record."""
    cache.mkdir()
    path = cache / "imagebind_huge.pth"
    shutil.copyfile(small_weights_path, path)
    weights.write_record(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), source="test")
    return path


def test_path_reports_the_cache_location_before_download(cache):
    result = runner.invoke(app, ["path"])
    assert result.exit_code == 0
    assert result.stdout == f"{cache / 'imagebind_huge.pth'}\n"
    assert result.stderr == "bind: not downloaded yet; run `bind weights download`\n"


def test_path_follows_bind_weights(cache, monkeypatch, small_weights_path):
    monkeypatch.setenv("BIND_WEIGHTS", str(small_weights_path))
    result = runner.invoke(app, ["path"])
    assert result.stdout == f"{small_weights_path}\n" and "BIND_WEIGHTS" in result.stderr


def test_download_prints_the_path_and_then_finds_it(cache, monkeypatch):
    server = Server()
    try:
        url = server.url
        result = runner.invoke(app, ["download", "--url", url, "--sha256", PAYLOAD_SHA])
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{cache / 'public.pth'}\n"
        assert (cache / "public.pth").read_bytes() == PAYLOAD
        again = runner.invoke(app, ["download", "--url", url])
        assert again.exit_code == 0 and "already downloaded" in again.stderr
        assert len(server.requests) == 1
    finally:
        server.close()


def test_download_offline_fails_with_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv("BIND_OFFLINE", "1")
    result = runner.invoke(app, ["download"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("bind: ") and len(result.stderr.splitlines()) == 1
    assert REGISTRY["imagebind_huge"].url in result.stderr


def test_verify_ok_and_corrupt(cached):
    result = runner.invoke(app, ["verify", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{hashlib.sha256(cached.read_bytes()).hexdigest()}  {cached}\n"
    with open(cached, "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    bad = runner.invoke(app, ["verify", str(cached)])
    assert bad.exit_code == 1
    assert "corrupt or was replaced" in bad.stderr and "bind weights download" in bad.stderr


def test_verify_names_the_missing_default(cache):
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 1 and "run `bind weights download`" in result.stderr


def test_info_table_and_json(cached):
    table = runner.invoke(app, ["info", "--format", "table"], env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    rows = [line.split() for line in table.stdout.splitlines()]
    assert ["dtypes", "float32"] in rows and ["sha256", json.loads(weights.record_path(cached).read_text())["sha256"]] in rows
    assert any(row[:2] == ["│", "vision"] for row in rows)
    data = json.loads(runner.invoke(app, ["info", "--json", str(cached)]).stdout)
    assert set(data["towers"]) == {"vision", "text", "audio", "depth", "thermal", "imu"}
    assert data["parameters"] == sum(t["parameters"] for t in data["towers"].values())
    assert runner.invoke(app, ["info", "--format", "json"]).stdout == json.dumps(data) + "\n"
    assert runner.invoke(app, ["info"]).stdout == json.dumps(data) + "\n"  # not a terminal


def test_convert_writes_beside_the_source(cached):
    result = runner.invoke(app, ["convert", "--dtype", "bf16"])
    assert result.exit_code == 0, result.output
    out = cached.with_name("imagebind_huge-bf16.safetensors")
    assert result.stdout == f"{out}\n"
    assert out.stat().st_size < 0.55 * cached.stat().st_size
    assert runner.invoke(app, ["verify", str(out)]).exit_code == 0


def test_help_is_listed_without_arguments():
    result = runner.invoke(app, [])
    for command in ("path", "download", "verify", "info", "convert"):
        assert command in result.output


@pytest.mark.slow
def test_offline_error_through_the_bind_entry_point_is_one_line(cache):
    env = {**os.environ, "BIND_OFFLINE": "1", "BIND_CACHE_DIR": str(cache)}
    env.pop("BIND_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from bindcli.cli.app import main; sys.argv[0] = 'bind'; main()",
         "weights", "download"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(cache / "imagebind_huge.pth") in lines[0] and "--weights" in lines[0]


def test_verify_records_the_hash_of_a_file_without_a_record(tmp_path, cache, small_weights_path):
    from bindcli.model.config import load_config
    from bindcli.embed.identity import model_id

    placed = tmp_path / "by-hand.pth"
    shutil.copyfile(small_weights_path, placed)
    config = load_config(str(small_weights_path.with_name("public_config.json")))
    before = model_id(config, placed)
    assert json.loads(runner.invoke(app, ["info", "--json", str(placed)]).stdout)["sha256"] is None
    result = runner.invoke(app, ["verify", str(placed)])
    assert result.exit_code == 0, result.output
    sha = hashlib.sha256(placed.read_bytes()).hexdigest()
    assert "recorded" in result.stderr
    assert json.loads(runner.invoke(app, ["info", "--json", str(placed)]).stdout)["sha256"] == sha
    again = runner.invoke(app, ["verify", str(placed)])
    assert again.exit_code == 0 and "matching the record" in again.stderr
    assert model_id(config, placed) == before  # collections built with it still match


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt(path) -> None:
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))


def _publish(monkeypatch, sha256: str) -> None:
    """As if Meta published `sha256` for `imagebind_huge.pth`."""
    monkeypatch.setitem(REGISTRY, "imagebind_huge", dataclasses.replace(REGISTRY["imagebind_huge"], sha256=sha256))


@pytest.fixture
def published(cache, monkeypatch):
    """The small checkpoint at the cache path of `imagebind_huge`, no record, its hash published."""
    _publish(monkeypatch, PAYLOAD_SHA)
    cache.mkdir()
    path = cache / "imagebind_huge.pth"
    path.write_bytes(PAYLOAD)
    return path


def test_verify_checks_the_published_hash_of_a_file_without_a_record(published):
    ok = runner.invoke(app, ["verify"])
    assert ok.exit_code == 0, ok.output
    assert "matching the published SHA-256 of imagebind_huge" in ok.stderr
    weights.record_path(published).unlink()
    _corrupt(published)
    bad = runner.invoke(app, ["verify"])
    assert bad.exit_code == 1
    [line] = bad.stderr.splitlines()
    assert str(published) in line
    assert f"SHA-256 is {_sha(published)}, expected {PAYLOAD_SHA} (the published SHA-256 of imagebind_huge)" in line
    assert not weights.record_path(published).exists()  # a failed check records nothing


def test_the_published_hash_applies_elsewhere_only_under_the_published_name(published, tmp_path):
    _corrupt(published)
    upstream = tmp_path / ".checkpoints" / "imagebind_huge.pth"
    upstream.parent.mkdir()
    shutil.copyfile(published, upstream)
    assert runner.invoke(app, ["verify", str(upstream)]).exit_code == 1
    renamed = tmp_path / "fine-tuned.pth"
    shutil.copyfile(published, renamed)
    other = runner.invoke(app, ["verify", str(renamed)])
    assert other.exit_code == 0 and "nothing to compare with" in other.stderr


def test_bind_weights_sha256_and_the_option_override_the_published_hash(published, monkeypatch):
    _publish(monkeypatch, "0" * 64)
    wrong = runner.invoke(app, ["verify"])
    assert wrong.exit_code == 1 and f"expected {'0' * 64} (the published SHA-256 of imagebind_huge)" in wrong.stderr
    monkeypatch.setenv("BIND_WEIGHTS_SHA256", PAYLOAD_SHA)
    ok = runner.invoke(app, ["verify"])
    assert ok.exit_code == 0 and "matching BIND_WEIGHTS_SHA256" in ok.stderr
    given = runner.invoke(app, ["verify", "--sha256", "1" * 64])
    assert given.exit_code == 1 and f"expected {'1' * 64} (--sha256)" in given.stderr


def _own_config(tmp_path, url: str, sha256: str) -> str:
    """The small model's config, with its weights published at `url` with `sha256`."""
    shape = json.loads((FIXTURES / "public_config.json").read_text())
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**shape, "weights": {"url": url, "sha256": sha256}}))
    return str(path)


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def test_model_config_names_a_json_configs_weights_to_path_download_info_and_verify(cache, server, tmp_path):
    mine = _own_config(tmp_path, server.url, PAYLOAD_SHA)
    where = runner.invoke(app, ["path", "--model-config", mine])
    assert where.stdout == f"{cache / 'public.pth'}\n" and "not downloaded yet" in where.stderr
    assert runner.invoke(app, ["verify", "--model-config", mine]).exit_code == 1
    got = runner.invoke(app, ["download", "--model-config", mine])
    assert got.exit_code == 0, got.output
    assert got.stdout == f"{cache / 'public.pth'}\n" and (cache / "public.pth").read_bytes() == PAYLOAD
    info = runner.invoke(app, ["info", "--json", "--model-config", mine])
    assert json.loads(info.stdout)["path"] == str(cache / "public.pth")
    weights.record_path(cache / "public.pth").unlink()
    ok = runner.invoke(app, ["verify", "--model-config", mine])
    assert ok.exit_code == 0 and "matching the published SHA-256 of mine" in ok.stderr
    weights.record_path(cache / "public.pth").unlink()
    _corrupt(cache / "public.pth")
    bad = runner.invoke(app, ["verify", "--model-config", mine])
    assert bad.exit_code == 1 and f"expected {PAYLOAD_SHA} (the published SHA-256 of mine)" in bad.stderr
    assert runner.invoke(app, ["path"]).stdout == f"{cache / 'imagebind_huge.pth'}\n"


def test_download_insists_on_a_json_configs_sha256(cache, server, tmp_path):
    bad = runner.invoke(app, ["download", "--model-config", _own_config(tmp_path, server.url, "0" * 64)])
    assert bad.exit_code == 1 and f"not the expected {'0' * 64}" in bad.stderr
    assert not (cache / "public.pth").exists()


def test_an_unknown_model_config_is_a_usage_error(cache):
    result = runner.invoke(app, ["path", "--model-config", "imagebind_tiny"])
    assert result.exit_code == 2 and "'imagebind_tiny' is neither a built-in" in result.stderr
