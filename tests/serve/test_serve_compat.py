"""The APIs of other programs against a real `bind serve` process: Weaviate's requests as its
Go client sends them (no Content-Type, no token) to `--compat weaviate`, LangChain's
`OpenAIEmbeddings` with its defaults (token ids) over TCP, a URL input from a local HTTP
server, and the options that guard them refused where they would open too much."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from cli_support import bind, media
from test_serve import local_vectors, start
from test_serve_protocols import tiktoken_cache

IMG, WAV = media("dog_image.jpg"), media("dog_audio.wav")


@pytest.fixture(scope="module")
def site():
    """A local HTTP server with the dog photo at /dog.jpg."""

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = Path(IMG).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compat")
    cache = tiktoken_cache(tmp / "tiktoken")
    server = start(tmp, "--port", "0", "--token", "s3cret", "--compat", "weaviate", "--url-inputs",
                   "--url-allow-net", "127.0.0.1/32", env={"TIKTOKEN_CACHE_DIR": str(cache)})
    yield server, cache
    assert server.stop() == 0


def weaviate_post(port: int, body: dict) -> tuple[int, dict]:
    """POST /vectorize as Weaviate's Go client does: a JSON body, no Content-Type, no token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/vectorize", body=json.dumps(body).encode())
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_weaviate_as_it_calls_the_container(served):
    server, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/.well-known/ready")
    assert conn.getresponse().status == 204
    conn.close()
    photo, bark = (base64.b64encode(Path(p).read_bytes()).decode() for p in (IMG, WAV))
    status, answer = weaviate_post(server.port, {"texts": ["a dog"], "images": [photo], "audio": [bark]})
    assert status == 200, answer
    raw = local_vectors(IMG, WAV, "--text", "a dog")  # files first
    np.testing.assert_allclose(answer["imageVectors"] + answer["audioVectors"] + answer["textVectors"], raw,
                               rtol=1e-5, atol=1e-5)
    assert answer["videoVectors"] == answer["imuVectors"] == answer["thermalVectors"] == answer["depthVectors"] == []


@pytest.mark.slow
def test_langchain_with_its_defaults_and_a_url_input(served, site, monkeypatch):
    import openai
    from langchain_openai import OpenAIEmbeddings

    server, cache = served
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))  # the client tokenises with it too
    base = f"http://127.0.0.1:{server.port}/v1"
    lc = OpenAIEmbeddings(base_url=base, api_key="s3cret", max_retries=0)
    raw = local_vectors(IMG, "--text", "a dog", "--text", "a car")  # files first
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(lc.embed_documents(["a dog", "a car"]), unit[1:], atol=1e-6)
    client = openai.OpenAI(base_url=base, api_key="s3cret", max_retries=0, timeout=120)
    got = client.embeddings.create(model="x", input=[f"{site}/dog.jpg"], extra_body={"modality": "image"})
    np.testing.assert_allclose(got.data[0].embedding, unit[0], atol=1e-6)


@pytest.mark.parametrize("args, error", [
    (("--host", "0.0.0.0", "--port", "0", "--token", "t", "--compat", "weaviate"),
     "weaviate sends no token, so its routes would answer anyone who reaches 0.0.0.0; give --weaviate-no-auth"),
    (("--host", "0.0.0.0", "--port", "0", "--compat", "weaviate", "--weaviate-no-auth"),
     "--host 0.0.0.0 is reachable from other machines: give --token"),
    (("--weaviate-no-auth",), "only applies with --compat weaviate"),
    (("--compat", "milvus"), "unknown API 'milvus'; one of: weaviate"),
    (("--url-allow-net", "10.0.0.0/8"), "only applies with --url-inputs"),
    (("--url-inputs", "--url-allow-net", "not-a-net"), "does not appear to be an IPv4 or IPv6 network"),
])
def test_what_would_open_too_much_is_a_usage_error(tmp_path, args, error):
    done = bind("serve", "--socket", tmp_path / "s.sock", *args)
    assert done.exit_code == 2 and error in " ".join(done.stderr.split()), done.stderr
