"""The client of `bind serve` against a real server: requests packed to the limits the server
publishes (an input over one fails alone), many texts in few requests, and a server stopped
part-way through a command (what it answered is kept; the rest runs here, or fails alone)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import bindcli.embed.remote as remote
import bindcli.serve.protocol as protocol
from cli_support import bind, jsonl, media
from test_remote_weights import empty_cache, no_weights  # noqa: F401 (fixtures)
from test_serve import Served, metric, request, start

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

IMAGES = [media(n) for n in ("dog_image.jpg", "car_image.jpg", "bird_image.jpg")]
VIDEO, WAV = media("synthetic_0.mp4"), media("dog_audio.wav")  # 23 kB; 460 kB


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A server whose limits the fixture media exceed: 0.2 MB a file, 0.3 MB a body."""
    served = start(tmp_path_factory.mktemp("limited"), "--port", "0", "--max-file-mb", "0.2",
                   "--max-body-mb", "0.3")
    yield served
    assert served.stop() == 0


def test_the_server_publishes_its_limits(limited):
    info = json.loads(request(limited, "GET", protocol.MODELS)[2])["data"][0]
    assert protocol.read_limits(info) == {"max_body_bytes": 314572, "max_file_bytes": 209715,
                                          "max_inputs": 2048, "max_text_chars": 4096}


def test_requests_fit_the_servers_limits_and_an_oversized_file_fails_alone(limited, tmp_path, monkeypatch):
    """Sent as bytes (a server on another machine): the images and the video together are over
    the body limit, so they go in several requests; the WAV is over the file limit by itself."""
    monkeypatch.setattr(remote, "is_loopback", lambda host: False)
    out = tmp_path / "t.jsonl"
    args = ("embed", *IMAGES, WAV, VIDEO, "--text", "a dog", "--raw")
    done = bind(*args, "-o", out, "--server", f"http://127.0.0.1:{limited.port}")
    assert done.exit_code == 1, done.stderr
    assert "wrote 5 embeddings" in done.stderr
    failed = [line for line in done.stderr.splitlines() if "limit" in line]
    assert failed == [f"bind: {WAV}: 460518 bytes, over the server's 209715-byte per-file limit "
                      "(bind serve --max-file-mb)"], done.stderr
    rows = jsonl(out.read_text())
    here = [r for r in jsonl(bind(*args, "-f", "jsonl", "--no-server").stdout) if r["input"] != WAV]
    assert [r["input"] for r in rows] == [r["input"] for r in here] == [*IMAGES, VIDEO, "a dog"]
    np.testing.assert_allclose([r["embedding"] for r in rows], [r["embedding"] for r in here], atol=1e-5)


def test_a_server_that_publishes_no_limits_has_a_refused_request_sent_again_in_parts(limited, monkeypatch):
    monkeypatch.setattr(remote, "is_loopback", lambda host: False)
    monkeypatch.setattr(protocol, "read_limits", lambda info: {})
    done = bind("embed", *IMAGES, WAV, VIDEO, "-f", "jsonl", "--server", f"http://127.0.0.1:{limited.port}")
    assert done.exit_code == 1
    assert [r["input"] for r in jsonl(done.stdout)] == [*IMAGES, VIDEO]
    assert [line for line in done.stderr.splitlines() if "limit" in line] == [
        f"bind: {WAV}: HTTP 413: the request body is over the 314572-byte limit"], done.stderr


def test_many_texts_go_in_one_request(limited):
    route = 'bind_requests_total{route="/v1/embed",status="200"}'
    before = metric(limited, route)
    texts = [a for n in range(100) for a in ("--text", f"prompt {n}")]
    done = bind("embed", *texts, "-f", "jsonl", "--server", f"unix:{limited.sock}")
    assert done.exit_code == 0 and len(jsonl(done.stdout)) == 100
    assert metric(limited, route) == before + 1


def _stopped_after_first_answer(served: Served, monkeypatch) -> None:
    """The server is stopped (SIGTERM, and waited for) as soon as it has answered the
    command's first embed request; requests are sent one at a time, so no other is answered."""
    ask, lock, stopped = remote.Client.request, threading.Lock(), []

    def request(self, method: str, path: str, body: dict | None = None):
        if path != protocol.EMBED:
            return ask(self, method, path, body)
        with lock:
            answer = ask(self, method, path, body)
            if not stopped:
                stopped.append(served.stop())
            return answer

    monkeypatch.setattr(remote.Client, "request", request)
    # two texts a request, so that the command's eight need four (CHUNK: as the client before)
    monkeypatch.setattr(remote, "CHUNK", 2)
    monkeypatch.setattr(protocol, "read_limits", lambda info: {"max_inputs": 2}, raising=False)


TEXTS = [a for n in range(8) for a in ("--text", f"a dog {n}")]


def test_a_server_stopped_mid_command_leaves_the_rest_to_this_process(tmp_path, monkeypatch):
    served = start(tmp_path, "--max-wait-ms", "1")
    try:
        _stopped_after_first_answer(served, monkeypatch)
        out = tmp_path / "out.jsonl"
        done = bind("embed", *TEXTS, "--raw", "-o", out, "--server", f"unix:{served.sock}")
    finally:
        served.stop()
    assert done.exit_code == 0, done.stderr
    went = [line for line in done.stderr.splitlines() if "went away" in line]
    assert len(went) == 1 and "embedding the 6 inputs it did not answer in-process" in went[0], done.stderr
    rows = jsonl(out.read_text())
    here = jsonl(bind("embed", *TEXTS, "--raw", "-f", "jsonl", "--no-server").stdout)
    assert [r["input"] for r in rows] == [r["input"] for r in here]
    np.testing.assert_allclose([r["embedding"] for r in rows], [r["embedding"] for r in here], atol=1e-5)


def test_without_local_weights_a_stopped_server_keeps_what_it_answered(tmp_path, monkeypatch, no_weights):  # noqa: F811
    served = start(tmp_path, "--max-wait-ms", "1")
    try:
        _stopped_after_first_answer(served, monkeypatch)
        out = tmp_path / "out.jsonl"
        done = bind("embed", *TEXTS, "-o", out, "--server", f"unix:{served.sock}", env=no_weights)
    finally:
        served.stop()
    assert done.exit_code == 1
    assert [r["input"] for r in jsonl(out.read_text())] == ["a dog 0", "a dog 1"]
    failed = [line for line in done.stderr.splitlines() if "went away" in line]
    assert failed == [f"bind: a dog {n}: not embedded: the server at unix:{served.sock} went away "
                      f"({failed[0].rsplit('(', 1)[1]}" for n in range(2, 8)], done.stderr
