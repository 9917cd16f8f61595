"""Download, resume, integrity, offline mode and the download lock, against a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from bindcli import weights
from bindcli.weights import fetch
from bindcli.errors import WeightsError
from bindcli.model.pretrained import REGISTRY, Pretrained

PAYLOAD = (Path(__file__).parents[1] / "fixtures" / "imagebind-reference" / "public.pth").read_bytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "public.pth"


class Server:
    """Serves PAYLOAD at /public.pth; `mode` picks the misbehaviour, `requests` logs Range headers.

    Modes: ok (honours Range), norange (always 200 with the whole file), drop (sends half of
    what it announced, then closes the connection; `drops` counts down how many times), 500,
    404, hold (headers, then the body only once `release` is set).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.drops = 1
        self.requests: list[str | None] = []
        self.release = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{NAME}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.headers.get("Range"))
                if self.path != f"/{NAME}" or server.mode == "404":
                    self.send_error(404)
                    return
                if server.mode == "500":
                    self.send_error(500)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.mode != "norange":
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(PAYLOAD):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "drop" and server.drops > 0:
                    server.drops -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif server.mode == "hold":
                    server.release.wait(60)
                    self.wfile.write(body)
                else:
                    self.wfile.write(body)

        return Handler


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    """A private cache, the local server as the weights URL, no delay between retries."""
    for var in ("BIND_WEIGHTS", "BIND_WEIGHTS_SHA256", "BIND_OFFLINE", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BIND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BIND_WEIGHTS_URL", server.url)
    monkeypatch.setattr(fetch, "RETRY_DELAY", 0.0)
    return tmp_path / "cache"


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.suffix in {".part", ".tmp"})


def test_resolve_downloads_into_the_cache_once(env, server, capsys):
    path = weights.resolve()
    assert path == env / NAME
    assert path.read_bytes() == PAYLOAD
    record = json.loads((env / f"{NAME}.json").read_text())
    assert record["sha256"] == PAYLOAD_SHA and record["size"] == len(PAYLOAD) and record["file"] == NAME
    assert record["source"] == server.url
    assert _leftovers(env) == []
    err = capsys.readouterr().err
    assert "CC BY-NC-SA 4.0" in err and "non-commercial" in err
    assert "━" not in err  # no progress bar when stderr is not a terminal
    assert weights.resolve() == path
    assert len(server.requests) == 1
    assert "CC BY-NC-SA" not in capsys.readouterr().err


def test_dropped_connection_is_resumed_with_range(env, server):
    server.mode, server.drops = "drop", 1
    path = weights.download()
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert weights.verify(path).ok


def test_repeated_drops_keep_the_part_file_for_the_next_run(env, server, monkeypatch):
    monkeypatch.setattr(fetch, "ATTEMPTS", 3)
    server.mode, server.drops = "drop", 3
    with pytest.raises(WeightsError, match=r"failed 3 times.*kept in .*public\.pth\.part"):
        weights.download()
    part = env / f"{NAME}.part"
    received = part.stat().st_size
    assert 0 < received < len(PAYLOAD) and PAYLOAD.startswith(part.read_bytes())
    assert not (env / NAME).exists()
    server.mode = "ok"
    assert weights.download().read_bytes() == PAYLOAD
    assert server.requests[-1] == f"bytes={received}-"
    assert json.loads((env / f"{NAME}.json").read_text())["sha256"] == PAYLOAD_SHA


def test_server_that_ignores_range_restarts_the_file(env, server):
    env.mkdir(parents=True)
    (env / f"{NAME}.part").write_bytes(b"not the start of the file" * 100)
    server.mode = "norange"
    path = weights.download()
    assert server.requests == [f"bytes={25 * 100}-"]
    assert path.read_bytes() == PAYLOAD
    assert json.loads((env / f"{NAME}.json").read_text())["sha256"] == PAYLOAD_SHA


def test_part_file_longer_than_the_remote_file_starts_over(env, server):
    env.mkdir(parents=True)
    (env / f"{NAME}.part").write_bytes(PAYLOAD + b"extra")
    assert weights.download().read_bytes() == PAYLOAD
    assert server.requests == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_checksum_mismatch_deletes_the_download(env, server, monkeypatch):
    monkeypatch.setenv("BIND_WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match=f"SHA-256 {PAYLOAD_SHA}, not the expected {'0' * 64}"):
        weights.resolve()
    assert list(env.glob(f"{NAME}*")) == [env / f"{NAME}.lock"]


def test_expected_checksum_accepts_the_right_file(env, server):
    assert weights.download(expected_sha256=PAYLOAD_SHA.upper()).read_bytes() == PAYLOAD


def test_server_error_is_retried_then_reported(env, server, monkeypatch):
    monkeypatch.setattr(fetch, "ATTEMPTS", 3)
    server.mode = "500"
    with pytest.raises(WeightsError, match=r"downloading http://127\.0\.0\.1:\d+/public\.pth failed 3 times.*HTTP 500"):
        weights.download()
    assert len(server.requests) == 3
    assert not (env / NAME).exists()


def test_not_found_is_reported_without_retry(env, server):
    server.mode = "404"
    with pytest.raises(WeightsError, match=r"/public\.pth answered HTTP 404 .*BIND_WEIGHTS_URL"):
        weights.download()
    assert len(server.requests) == 1


def test_unreachable_server_gives_a_clear_error(env, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setattr(fetch, "ATTEMPTS", 2)
    with pytest.raises(WeightsError, match=r"failed 2 times \(last: cannot connect: .*refused") as err:
        weights.download(f"http://127.0.0.1:{port}/{NAME}")
    # nothing arrived, so there is no .part to resume: say where to put a file fetched elsewhere
    assert "Nothing was received" in str(err.value) and "bytes received so far" not in str(err.value)
    assert f"put it at {env / NAME}" in str(err.value)
    assert not (env / f"{NAME}.part").exists()


def test_unresolvable_host_fails_at_once_without_retrying(env, monkeypatch):
    calls = []

    def no_dns(request, timeout):
        calls.append(request.full_url)
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_dns)
    monkeypatch.setattr(fetch, "RETRY_DELAY", 60.0)  # a retry would make this test hang
    with pytest.raises(WeightsError, match="host name does not resolve") as err:
        weights.download(f"https://weights.example/{NAME}")
    assert len(calls) == 1
    assert f"put it at {env / NAME}" in str(err.value)


@pytest.mark.parametrize("var", ["BIND_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_never_connects_and_says_what_to_do(env, server, monkeypatch, var):
    monkeypatch.setenv(var, "1")

    def no_network(*args: object) -> None:
        raise AssertionError("offline mode opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(WeightsError) as err:
        weights.resolve()
    message = str(err.value)
    assert "\n" not in message
    assert f"{var}=1" in message and server.url in message
    assert f"put it at {env / NAME}" in message and "--weights" in message
    assert server.requests == []


def test_offline_uses_the_cached_file(env, server, monkeypatch):
    path = weights.resolve()
    monkeypatch.setenv("BIND_OFFLINE", "1")
    assert weights.resolve() == path
    assert len(server.requests) == 1


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_concurrent_downloads_wait_for_each_other(env, server, tmp_path):
    """The second process finds the first one's lock and waits. The server holds the first
    download until the second has said so, so no machine's speed decides the outcome."""
    server.mode = "hold"
    code = "from bindcli.weights import download; print(download())"
    logs = [tmp_path / f"stderr-{n}.txt" for n in range(2)]
    procs = []
    for n, log in enumerate(logs):
        with log.open("w") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                          stderr=err, text=True, env=os.environ.copy()))
        if n == 0:
            _wait_for(lambda: server.requests)  # the first holds the lock and is downloading
    try:
        _wait_for(lambda: "waiting for another bind process" in logs[1].read_text())
    finally:
        server.release.set()
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log.read_text() for log in logs]
    assert {out.strip() for out in outs} == {str(env / NAME)}
    assert server.requests == [None]
    assert (env / NAME).read_bytes() == PAYLOAD


def test_cached_path_follows_the_url_file_name(env):
    assert weights.cached_path("https://mirror.example/x/imagebind_huge-bf16.safetensors?sig=1") == (
        env / "imagebind_huge-bf16.safetensors"
    )
    assert weights.cached_path(REGISTRY["imagebind_huge"].url) == env / "imagebind_huge.pth"


def test_explicit_path_beats_env_and_must_exist(env, server, monkeypatch, tmp_path):
    given = tmp_path / "given.pth"
    given.write_bytes(b"x")
    monkeypatch.setenv("BIND_WEIGHTS", str(tmp_path / "from-env.pth"))
    assert weights.resolve(given) == given
    with pytest.raises(WeightsError, match=r"from-env\.pth does not exist; fix or unset BIND_WEIGHTS"):
        weights.resolve()
    with pytest.raises(WeightsError, match=r"missing\.pth does not exist; check the path given"):
        weights.resolve(tmp_path / "missing.pth")
    assert server.requests == []


def test_progress_and_messages_go_to_the_callbacks_given(env, server, capsys):
    heard, said = [], []
    path = weights.download(progress=lambda *report: heard.append(report), notify=said.append)
    assert capsys.readouterr().err == ""
    assert said == [REGISTRY["imagebind_huge"].notice]
    assert heard[0] == (NAME, 0, len(PAYLOAD)) and heard[-1] == (NAME, len(PAYLOAD), len(PAYLOAD))
    assert [done for _, done, _ in heard] == sorted(done for _, done, _ in heard)
    assert path.read_bytes() == PAYLOAD


def test_the_download_and_its_record_get_the_permissions_of_a_plain_write(env, server, umask):
    path = weights.download()
    assert stat.S_IMODE(path.stat().st_mode) == umask
    assert stat.S_IMODE(weights.record_path(path).stat().st_mode) == umask


def test_the_registry_names_url_licence_and_size_of_the_default_config(monkeypatch, tmp_path):
    monkeypatch.delenv("BIND_WEIGHTS_URL", raising=False)
    monkeypatch.delenv("BIND_WEIGHTS", raising=False)
    monkeypatch.setenv("BIND_CACHE_DIR", str(tmp_path))
    huge = REGISTRY["imagebind_huge"]
    assert weights.weights_url() == huge.url == "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
    assert huge.sha256 is None  # Meta publishes none
    assert huge.size_text == "about 4.8 GB" and "CC BY-NC-SA 4.0" in huge.notice
    assert weights.named_path() == (tmp_path / "imagebind_huge.pth", weights.Source.CACHE)


def test_a_config_without_published_weights_needs_them_named(env, server, monkeypatch, tmp_path):
    monkeypatch.delenv("BIND_WEIGHTS_URL")
    with pytest.raises(WeightsError, match=r"no published weights .* config 'mine'; pass --weights PATH"):
        weights.resolve(config="mine")
    given = tmp_path / "mine.pth"
    given.write_bytes(b"x")
    assert weights.named_path(given, "mine") == (given, weights.Source.OPTION)
    monkeypatch.setenv("BIND_WEIGHTS", str(given))
    assert weights.resolve(config="mine") == given
    assert server.requests == []


def test_a_published_sha256_is_insisted_on(env, server, monkeypatch):
    monkeypatch.setitem(REGISTRY, "mine", Pretrained(server.url, 1, "us", "MIT", "any use", "", "0" * 64))
    with pytest.raises(WeightsError, match=f"not the expected {'0' * 64}"):
        weights.download(config="mine")
    monkeypatch.setitem(REGISTRY, "mine", Pretrained(server.url, 1, "us", "MIT", "any use", "", PAYLOAD_SHA))
    assert weights.download(config="mine").read_bytes() == PAYLOAD


def test_the_first_run_of_a_json_config_downloads_the_weights_it_names(env, server, monkeypatch, tmp_path):
    from bindcli.embed.identity import Model

    monkeypatch.delenv("BIND_WEIGHTS_URL")
    shape = json.loads((Path(__file__).parents[1] / "fixtures" / "imagebind-reference" / "public_config.json").read_text())
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({**shape, "weights": {"url": server.url, "sha256": "0" * 64}}))
    with pytest.raises(WeightsError, match=f"not the expected {'0' * 64}"):
        Model.resolve(mine, notify=lambda message: None)
    mine.write_text(json.dumps({**shape, "weights": {"url": server.url, "sha256": PAYLOAD_SHA}}))
    assert Model.resolve(mine, notify=lambda message: None).weights == env / NAME
    assert (env / NAME).read_bytes() == PAYLOAD
