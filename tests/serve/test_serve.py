"""`bind serve`: a real server process with the small model, on a temporary Unix socket and a
loopback port (started once for the module); every command through it gives what it gives
in-process; the HTTP API, the official `openai` client, batching across concurrent requests,
bad inputs, limits, the token, client disconnects and SIGTERM with requests in flight."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from bindcli.errors import InputWarning
from bindcli.modality import Kind
from cli_support import CUT_SHORT, MEDIA, SMALL, bind, cut_short_wav, jsonl, media

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"bind: serving (\S+) .* on unix:(\S+)(?: and http://127\.0\.0\.1:(\d+))?")
WAIT = 90  # seconds a server gets to start (it imports torch) on a loaded machine


class Served:
    """A `bind serve` process, its socket and its port."""

    def __init__(self, proc: subprocess.Popen, model: str, sock: str, port: int | None, err: Path) -> None:
        self.proc, self.model, self.sock, self.port, self.err = proc, model, sock, port, err

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def start(tmp: Path, *args: str, env: dict | None = None) -> Served:
    """Starts `bind serve ARGS` and waits (bounded) for its ready line."""
    err = tmp / "server.err"
    environ = {**os.environ, **SMALL, "BIND_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(ROOT),
               "NO_COLOR": "1", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bindcli", "serve", "--socket", str(tmp / "s.sock"), *args],
        stdout=subprocess.DEVNULL, stderr=err.open("w"), env=environ,
    )
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = READY.search(err.read_text())
        if found:
            port = int(found.group(3)) if found.group(3) else None
            return Served(proc, found.group(1), found.group(2), port, err)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"bind serve did not start:\n{err.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    served = start(tmp, "--port", "0", "--batch-size", "8", "--max-wait-ms", "300",
                   "--max-body-mb", "2", "--max-file-mb", "1", "--max-text-chars", "200")
    yield served
    assert served.stop() == 0


def request(server: Served, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None, tcp: bool = False) -> tuple[int, dict, bytes]:
    """One HTTP request over the socket (or TCP): (status, headers, body)."""
    from bindcli.embed.remote import Address

    address = Address(port=server.port) if tcp else Address(unix=server.sock)
    conn = address.connection(timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post_json(server: Served, path: str, value: dict, **kw) -> tuple[int, dict]:
    status, _, body = request(server, "POST", path, json.dumps(value).encode(),
                              {"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)
    return status, json.loads(body)


def post_and_leave(server: Served, body: bytes, headers: str = "") -> None:
    """A client that goes away: a JSON POST to /v1/embed on the socket, closed unread."""
    gone = socket.socket(socket.AF_UNIX)
    gone.connect(server.sock)
    gone.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    gone.close()


def multipart(fields: list[tuple[str, str, bytes | str]]) -> tuple[bytes, str]:
    """(body, content type) of form fields: (name, filename or "", value)."""
    boundary = "bindtestboundary"
    out = io.BytesIO()
    for name, filename, value in fields:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"Content-Disposition: {disposition}\r\n\r\n".encode())
        out.write(value if isinstance(value, bytes) else value.encode())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def metric(server: Served, name: str) -> float:
    _, _, text = request(server, "GET", "/metrics")
    found = re.search(rf"^{re.escape(name)} (\S+)$", text.decode(), re.M)
    return float(found.group(1)) if found else 0.0


def local_vectors(*args: str) -> np.ndarray:
    rows = jsonl(bind("embed", *args, "--raw", "-f", "jsonl", "--no-server", "--no-cache").stdout)
    return np.array([r["embedding"] for r in rows])


def both_ways(server: Served, *args: str):
    """(through the server, in-process) results of the same command."""
    served = bind(*args, "--server", f"unix:{server.sock}")
    assert f"served at unix:{server.sock}" in served.stderr
    here = bind(*args, "--no-server")
    assert "served at" not in here.stderr
    assert served.exit_code == here.exit_code == 0, served.stderr + here.stderr
    return served.stdout, here.stdout


def assert_close_json(a: object, b: object) -> None:
    """Equal structures, numbers within 1e-6 (relative past 1: raw vectors are scaled)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_close_json(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close_json(x, y)
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b)), (a, b)  # fp32, batched differently
    else:
        assert a == b


# --- every command, both ways ----------------------------------------------------------------

IMG, WAV, CAR = media("dog_image.jpg"), media("dog_audio.wav"), media("car_image.jpg")


@pytest.mark.parametrize("args", [
    ("embed", IMG, WAV, "--text", "a dog", "--raw", "-f", "json"),
    ("compare", IMG, WAV, CAR, "--text", "a dog", "-f", "json"),
    ("compare", IMG, WAV, "--text", "a dog", "--softmax", "-f", "json"),
    ("classify", IMG, WAV, "--labels", "dog,car,bird", "-f", "jsonl"),
    ("arith", CAR, "-", WAV, "-t", "0.5:a dog", "-g", MEDIA, "-k", "3", "-f", "jsonl"),
], ids=["embed", "compare", "compare-softmax", "classify", "arith"])
def test_each_command_through_the_server_equals_in_process(server, args):
    served, here = both_ways(server, *args)
    parse = json.loads if args[-1] == "json" else jsonl
    assert_close_json(parse(served), parse(here))


def test_what_this_machine_has_cached_is_looked_up_here_not_sent(server):
    """The client runs the cache lookup stage under the server's keys: an input embedded
    before (here in-process) makes no request; one not cached yet is the server's."""
    texts = metric(server, 'bind_inputs_total{modality="text"}')
    here = bind("embed", "-t", "seen before", "--raw", "-f", "jsonl", "--no-server")
    served = bind("embed", "-t", "seen before", "-t", "new here", "--raw", "-f", "jsonl",
                  "--server", f"unix:{server.sock}")
    assert served.exit_code == 0 and f"served at unix:{server.sock}" in served.stderr
    rows = jsonl(served.stdout)
    assert_close_json(rows[0]["embedding"], jsonl(here.stdout)[0]["embedding"])
    assert metric(server, 'bind_inputs_total{modality="text"}') == texts + 1  # "new here" alone


def test_eval_through_the_server_equals_in_process(server, tmp_path):
    for label, name in (("dog", "dog_image.jpg"), ("dog", "dog_audio.wav"), ("car", "car_image.jpg")):
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / name).write_bytes(Path(media(name)).read_bytes())
    served, here = both_ways(server, "eval", str(tmp_path), "-f", "json")
    assert_close_json(json.loads(served), json.loads(here))


def test_embed_npy_manifest_names_the_same_model_and_hashes(server, tmp_path):
    bind("embed", IMG, "-t", "x", "-o", tmp_path / "a.npy", "--server", f"unix:{server.sock}")
    bind("embed", IMG, "-t", "x", "-o", tmp_path / "b.npy", "--no-server")
    a, b = (json.loads((tmp_path / f"{n}.npy.json").read_text()) for n in "ab")
    assert a == b and a["model"] == server.model
    assert np.allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), atol=1e-6)


def test_index_and_search_through_the_server_equal_in_process(server, tmp_path):
    for how, db in (("--server", tmp_path / "s.db"), ("--no-server", tmp_path / "h.db")):
        extra = [f"unix:{server.sock}"] if how == "--server" else []
        done = bind("index", MEDIA, "--db", db, how, *extra)
        assert done.exit_code == 0, done.stderr
    hits = [jsonl(bind("search", "--text", "a dog", "--db", db, "-f", "jsonl", "-k", "20", how, *extra).stdout)
            for how, extra, db in (("--server", [f"unix:{server.sock}"], tmp_path / "s.db"),
                                   ("--no-server", [], tmp_path / "h.db"))]
    assert [h["path"] for h in hits[0]] == [h["path"] for h in hits[1]]
    assert np.allclose([h["score"] for h in hits[0]], [h["score"] for h in hits[1]], atol=1e-6)


def test_a_failing_input_fails_alone_and_is_named_as_given(server, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    done = bind("embed", bad, IMG, "-f", "jsonl", "--server", f"unix:{server.sock}")
    assert done.exit_code == 1
    assert f"bind: {bad}: " in done.stderr
    assert [r["input"] for r in jsonl(done.stdout)] == [IMG]


def test_a_text_over_the_servers_limit_fails_naming_that_limit_and_embeds_in_process(server):
    long = "a dog " * 40  # 240 characters, over the fixture server's 200
    served = bind("embed", "--text", long, "-f", "jsonl", "--server", f"unix:{server.sock}")
    assert served.exit_code == 1
    assert "over this server's 200-character limit (bind serve --max-text-chars)" in served.stderr
    assert bind("embed", "--text", long, "-f", "jsonl", "--no-server").exit_code == 0


def test_the_default_socket_is_found_and_a_mismatch_runs_in_process(server, monkeypatch):
    monkeypatch.setenv("BIND_DATA_DIR", str(Path(server.sock).parent))  # where serve.sock would be
    link = Path(server.sock).with_name("serve.sock")
    link.symlink_to(server.sock)
    try:
        found = bind("embed", "-t", "x", "-f", "jsonl")
        assert "served at" in found.stderr
        other = bind("embed", "-t", "x", "-f", "jsonl", "--precision", "bf16")
        assert "not bf16; running in-process" in other.stderr
        mono = bind("embed", "-t", "x", "-f", "jsonl", "--audio-mix", "mono")
        assert "other options (--audio-mix?); running in-process" in mono.stderr
        assert bind("embed", "-t", "x", "-q").stderr == ""
    finally:
        link.unlink()


def test_doctor_says_what_the_server_a_command_would_use_serves(server):
    report = json.loads(bind("doctor", env={"BIND_SERVER": server.sock}).stdout)
    assert report["server"] == {"address": server.sock, "state": f"serving {server.model} on cpu, fp32"}
    gone = json.loads(bind("doctor", env={"BIND_SERVER": server.sock + ".gone"}).stdout)
    assert gone["server"]["state"].startswith(f"no server answers at unix:{server.sock}.gone")


def test_an_explicit_server_that_is_not_up_warns_and_runs_in_process(tmp_path):
    done = bind("embed", "-t", "x", "-f", "jsonl", "--server", f"unix:{tmp_path / 'none.sock'}")
    assert done.exit_code == 0 and len(jsonl(done.stdout)) == 1
    assert "warning: no server answers at" in done.stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key, as a TLS proxy in front of bind would have."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_a_server_behind_a_tls_proxy_is_reached_by_https(server, tmp_path):
    """`--server https://...`: the client speaks TLS (checking the certificate against the
    system's CAs, here SSL_CERT_FILE) to a proxy that forwards to the server's socket."""
    import http.server
    import ssl
    import threading

    from bindcli.embed.remote import Address

    upstream = Address(unix=server.sock)

    class Forward(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = upstream.connection(60)
            conn.request(self.command, self.path, body=body or None,
                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            answer = conn.getresponse()
            payload = answer.read()
            self.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            conn.close()

        do_GET = do_POST = _forward

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    cert, key = _self_signed(tmp_path)
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    proxy.socket = context.wrap_socket(proxy.socket, server_side=True)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://localhost:{proxy.server_address[1]}"
        done = bind("embed", "-t", "through tls", "-f", "jsonl", "--server", url, env={"SSL_CERT_FILE": str(cert)})
        assert done.exit_code == 0 and f"served at {url}" in done.stderr
        assert np.allclose(jsonl(done.stdout)[0]["embedding"],
                           jsonl(bind("embed", "-t", "through tls", "-f", "jsonl", "--no-server").stdout)[0]["embedding"],
                           atol=1e-6)
        # a certificate the client cannot check: no silent plain-text or unchecked fallback
        untrusted = bind("embed", "-t", "x", "-f", "jsonl", "--server", url)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr or "certificate verify failed" in untrusted.stderr
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_the_client_path_imports_neither_torch_nor_the_server(server):
    probe = ("import sys\nsys.argv = ['bind', *sys.argv[1:]]\nfrom bindcli.cli.app import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('torch', 'uvicorn', 'starlette') if m in sys.modules)\n"
             "print(heavy or 'LIGHT', file=sys.stderr)\n")
    done = subprocess.run(
        [sys.executable, "-c", probe, "compare", IMG, WAV, "-t", "a dog", "-f", "json", "--server", f"unix:{server.sock}"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, **SMALL, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0 and done.stderr.strip().endswith("LIGHT"), done.stderr


# --- the HTTP API ----------------------------------------------------------------------------


def test_models_health_metrics_and_socket_mode(server):
    assert os.stat(server.sock).st_mode & 0o777 == 0o600
    status, info = post_json(server, "/v1/embed", {"inputs": [{"text": "warm"}]})
    assert status == 200
    _, _, body = request(server, "GET", "/v1/models")
    model = json.loads(body)["data"][0]
    assert (model["id"], model["precision"], model["device"]) == (server.model, "fp32", "cpu")
    assert "text" in model["towers"]
    assert json.loads(request(server, "GET", "/health")[2])["status"] == "ok"
    text = request(server, "GET", "/metrics")[2].decode()
    assert "# TYPE bind_batch_size histogram" in text and 'bind_inputs_total{modality="text"}' in text
    assert 'bind_requests_total{route="/v1/embed",status="200"}' in text


def test_multipart_and_json_and_npy_give_the_vectors_of_the_commands(server):
    expected = local_vectors(IMG, WAV, "--text", "a dog")
    body, kind = multipart([("file", "dog.jpg", Path(IMG).read_bytes()),
                            ("file", "bark.bin", Path(WAV).read_bytes()), ("modality", "", "audio"),
                            ("text", "", "a dog")])
    status, _, answer = request(server, "POST", "/v1/embed?raw=true", body, {"Content-Type": kind})
    results = json.loads(answer)["results"]
    assert status == 200 and [r["modality"] for r in results] == ["image", "audio", "text"]
    assert np.allclose([r["embedding"] for r in results], expected, atol=1e-6)
    data = base64.b64encode(Path(IMG).read_bytes()).decode()
    status, answer = post_json(server, "/v1/embed", {"inputs": [{"data": data, "filename": "d.jpg"},
                                                                {"path": WAV}, {"text": "a dog"}]})
    unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose([r["embedding"] for r in answer["results"]], unit, atol=1e-6)
    status, headers, npy = request(server, "POST", "/v1/embed", json.dumps({"inputs": [{"text": "a dog"}]}).encode(),
                                   {"Content-Type": "application/json", "Accept": "application/x-npy"})
    assert status == 200 and np.allclose(np.load(io.BytesIO(npy)), unit[2:], atol=1e-6)


def test_openai_client_gets_the_same_vectors(server):
    import openai
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="none", timeout=60, max_retries=0)
    texts = client.embeddings.create(model=server.model, input=["a dog", "a car"])
    expected = local_vectors("--text", "a dog", "--text", "a car", IMG, WAV)
    unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose([d.embedding for d in texts.data], unit[2:], atol=1e-6)  # files come first
    assert texts.usage.prompt_tokens > 0
    image = "data:image/jpeg;base64," + base64.b64encode(Path(IMG).read_bytes()).decode()
    audio = "data:application/octet-stream;base64," + base64.b64encode(Path(WAV).read_bytes()).decode()
    got = client.embeddings.create(model=server.model, input=[image], encoding_format="float")
    assert np.allclose(got.data[0].embedding, unit[0], atol=1e-6)
    got = client.embeddings.create(model=server.model, input=[audio], extra_body={"modality": "audio"})
    assert np.allclose(got.data[0].embedding, unit[1], atol=1e-6)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=server.model, input=["data:application/octet-stream;base64,AAAA"])


def test_fifty_concurrent_requests_each_get_their_own_answer(server):
    texts = [f"a photo of {n} dogs" for n in range(50)]
    expected = local_vectors(*sum((["--text", t] for t in texts), []))
    batches_before = metric(server, "bind_batch_size_count")

    def ask(text: str) -> list[float]:
        status, answer = post_json(server, "/v1/embed", {"inputs": [{"text": text}], "raw": True, "cache": False},
                                   tcp=True)
        assert status == 200 and answer["results"][0]["input"] == text
        return answer["results"][0]["embedding"]

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        got = np.array(list(pool.map(ask, texts)))
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    # raw text vectors are scaled by the logit scale: fp32 agrees to 1e-6 relative
    assert np.abs(unit(got) - unit(expected)).max() <= 1e-6
    assert (np.argmax(unit(got) @ unit(expected).T, axis=1) == np.arange(50)).all()
    assert metric(server, "bind_batch_size_count") - batches_before < 50  # some were batched


def _wav(frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * frames)
    return out.getvalue()


def test_bad_and_degenerate_inputs_fail_alone_and_the_server_keeps_answering(server):
    from PIL import Image

    tiny, bomb = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (1, 1), "red").save(tiny, "PNG")
    Image.new("1", (10000, 10000)).save(bomb, "PNG")  # 12 kB of file, 100 Mpixels decoded
    body, kind = multipart([
        ("file", "corrupt.jpg", b"\xff\xd8 not really"), ("file", "tiny.png", tiny.getvalue()),
        ("file", "empty.wav", _wav(0)), ("file", "what.xyz", b"?"), ("text", "", "x" * 201),
        ("file", "bomb.png", bomb.getvalue()), ("file", "dog.jpg", Path(IMG).read_bytes()),
    ])
    status, _, answer = request(server, "POST", "/v1/embed", body, {"Content-Type": kind})
    results = json.loads(answer)["results"]
    assert status == 200 and len(results) == 7
    assert all("error" in r for r in (results[0], results[2], results[3], results[4], results[5])), results
    assert "this server's 200-character limit (bind serve --max-text-chars)" in results[4]["error"]
    assert "unknown extension" in results[3]["error"]
    assert "decompression-bomb" in results[5]["error"]
    assert results[1]["input"] == "tiny.png"  # a 1x1 image is upscaled like any other, or fails alone
    assert "embedding" in results[6]
    assert json.loads(request(server, "GET", "/health")[2])["status"] == "ok"
    assert post_json(server, "/v1/embed", {"inputs": [{"text": "still here"}]})[0] == 200
    assert post_json(server, "/v1/embed", {"inputs": "nope"})[0] == 400
    assert request(server, "POST", "/v1/embed", b"{", {"Content-Type": "application/json"})[0] == 400


def test_oversize_bodies_and_files_are_413(server):
    big = b"\0" * (2 * 1024 * 1024 + 10)
    assert request(server, "POST", "/v1/embed", big, {"Content-Type": "application/json"})[0] == 413
    body, kind = multipart([("file", "big.jpg", b"\0" * (1024 * 1024 + 10))])
    status, _, answer = request(server, "POST", "/v1/embed", body, {"Content-Type": kind})
    assert status == 413 and "per-file limit" in json.loads(answer)["error"]["message"]
    chunked = socket.socket(socket.AF_UNIX)  # no Content-Length: refused while it streams in
    chunked.settimeout(30)
    chunked.connect(server.sock)
    chunked.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Type: application/json\r\n\r\n")
    try:
        for _ in range(3):
            chunk = b"\0" * (1024 * 1024)
            chunked.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    except OSError:  # the server may answer and close before the rest is sent
        pass
    assert b" 413 " in chunked.recv(200)
    chunked.close()


def test_a_client_that_goes_away_has_its_queued_inputs_dropped(server):
    dropped = metric(server, "bind_inputs_dropped_total")
    body = json.dumps({"inputs": [{"text": "left early"}], "cache": False}).encode()
    post_and_leave(server, body)  # well within the 300 ms the input waits for company
    deadline = time.monotonic() + 20
    while metric(server, "bind_inputs_dropped_total") == dropped and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "bind_inputs_dropped_total") == dropped + 1
    assert post_json(server, "/v1/embed", {"inputs": [{"text": "next"}]})[0] == 200


def test_a_second_server_on_the_same_socket_is_refused(server):
    done = subprocess.run(
        [sys.executable, "-m", "bindcli", "serve", "--socket", server.sock],
        capture_output=True, text=True, timeout=60, env={**os.environ, **SMALL, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1 and "already running" in done.stderr
    assert os.path.exists(server.sock)


def test_token_and_sigterm_drain(tmp_path):
    served = start(tmp_path, "--host", "127.0.0.1", "--port", "0", "--token", "s3cret", "--max-wait-ms", "1500")
    try:
        no = request(served, "GET", "/v1/models", tcp=True)
        wrong = request(served, "GET", "/v1/models", headers={"Authorization": "Bearer nope"}, tcp=True)
        assert no[0] == wrong[0] == 401 and no[1].get("www-authenticate") == "Bearer"
        auth = {"Authorization": "Bearer s3cret"}
        assert request(served, "GET", "/v1/models", headers=auth, tcp=True)[0] == 200
        done = bind("embed", "-t", "x", "-f", "jsonl", "--server", f"http://127.0.0.1:{served.port}",
                    env={"BIND_TOKEN": "s3cret"})
        assert "served at" in done.stderr and len(jsonl(done.stdout)) == 1
        # the server asked for by name refusing the token is an error, not a quiet in-process
        # run (which, without local weights, would download the checkpoint)
        refused = bind("embed", "-t", "x", "-f", "jsonl", "--server", f"http://127.0.0.1:{served.port}",
                       env={"BIND_TOKEN": "nope"})
        assert refused.exit_code == 1 and refused.stdout == ""
        assert "refuses this client's token" in refused.stderr and "BIND_TOKEN" in refused.stderr

        def ask(n: int) -> int:
            return post_json(served, "/v1/embed", {"inputs": [{"text": f"in flight {n}"}], "cache": False},
                             headers=auth, tcp=True)[0]

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            asked = [pool.submit(ask, n) for n in range(3)]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                _, _, text = request(served, "GET", "/metrics", headers=auth, tcp=True)
                if re.search(r"^bind_queue_depth 3$", text.decode(), re.M):
                    break
                time.sleep(0.02)
            served.proc.send_signal(signal.SIGTERM)
            assert [f.result(timeout=60) for f in asked] == [200, 200, 200]
        assert served.proc.wait(timeout=60) == 0
        assert not os.path.exists(served.sock)
    finally:
        served.stop()


def test_non_loopback_host_needs_a_token_and_a_missing_extra_names_the_install(monkeypatch):
    done = bind("serve", "--host", "0.0.0.0", "--port", "0")
    assert done.exit_code == 2 and "--token" in done.stderr
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    done = bind("serve")
    assert done.exit_code == 2 and "pip install 'bindcli[serve]'" in done.stderr


def test_a_server_on_another_machine_gets_the_files_bytes(server, monkeypatch):
    """What a remote server sees (it cannot read the client's paths): the same vectors."""
    import bindcli.embed.remote

    monkeypatch.setattr(bindcli.embed.remote, "is_loopback", lambda host: False)
    args = ("embed", IMG, WAV, "--text", "a dog", "--raw", "-f", "json")
    sent = bind(*args, "--server", f"http://127.0.0.1:{server.port}")
    assert "served at http://127.0.0.1" in sent.stderr
    assert_close_json(json.loads(sent.stdout), json.loads(bind(*args, "--no-server").stdout))


def _warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("bind: warning:")]


@pytest.mark.parametrize("remote", [False, True], ids=["by-path", "by-bytes"])
@pytest.mark.parametrize("quiet", [(), ("-q",)], ids=["plain", "quiet"])
def test_a_wav_cut_short_warns_through_the_server_as_in_process(server, tmp_path, monkeypatch, remote, quiet):
    """The same warning line (an InputWarning shows even with -q, as in-process), naming the
    file as given, also when the server only saw its bytes under a name of its own."""
    import bindcli.embed.remote

    if remote:
        monkeypatch.setattr(bindcli.embed.remote, "is_loopback", lambda host: False)
    cut, _ = cut_short_wav(tmp_path)
    args = ("embed", cut, "--raw", "-f", "jsonl", "--no-cache", *quiet)
    served = bind(*args, "--server", f"http://127.0.0.1:{server.port}")
    here = bind(*args, "--no-server")
    assert served.exit_code == here.exit_code == 0, served.stderr + here.stderr
    assert _warning_lines(served.stderr) == _warning_lines(here.stderr) == [f"bind: warning: {cut}: {CUT_SHORT}"]
    assert ("served at" in served.stderr) != bool(quiet)
    assert_close_json(jsonl(served.stdout), jsonl(here.stdout))


def test_warnings_reach_only_the_client_whose_input_raised_them(server, tmp_path):
    """Inputs of two clients decoded and batched together: each answer carries its own."""
    cut, first = cut_short_wav(tmp_path)

    def ask(path: Path) -> list[dict]:
        status, answer = post_json(server, "/v1/embed", {"inputs": [{"path": str(path)}], "cache": False})
        assert status == 200, answer
        return answer["results"]

    batches_before = metric(server, "bind_batch_size_count")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, [cut, first] * 4))
    assert metric(server, "bind_batch_size_count") - batches_before < 8  # some were batched
    expected = [{"category": "InputWarning", "message": CUT_SHORT}]
    assert [r[0].get("warnings") for r in answers] == [expected, None] * 4
    body, kind = multipart([("file", "first.wav", first.read_bytes()), ("file", "cut.wav", cut.read_bytes())])
    status, _, answer = request(server, "POST", "/v1/embed?cache=false", body, {"Content-Type": kind})
    assert status == 200 and [r.get("warnings") for r in json.loads(answer)["results"]] == [None, expected]


def test_the_openai_client_keeps_the_warnings_field(server, tmp_path):
    import openai
    cut, first = cut_short_wav(tmp_path)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="none", timeout=60, max_retries=0)
    urls = ["data:audio/wav;base64," + base64.b64encode(p.read_bytes()).decode() for p in (cut, first)]
    got = client.embeddings.create(model=server.model, input=urls)  # first sent: no cache hit
    assert got.data[0].model_extra == {"warnings": [{"category": "InputWarning", "message": CUT_SHORT}]}
    assert got.data[1].model_extra == {} and len(got.data[1].embedding) == len(got.data[0].embedding)


def test_other_relayed_warnings_are_notes_naming_the_input_as_in_process(capsys):
    """A decoder's warning (Pillow's) the server relays: one note naming the input, none with
    -q; the decompression-bomb warning dropped, as the CLI drops it in-process."""
    import threading

    from bindcli.cli.output import Output
    from bindcli.embed.remote import _warn
    from bindcli.embed.inputs import Input
    from bindcli.serve.caught import caught

    def decode() -> None:  # on a loader thread of the server
        with caught() as found:
            warnings.warn("odd palette", UserWarning)
            warnings.warn(InputWarning("/tmp/bind-serve-x/0.png", "cut short"))
        relayed.extend(w.answer() for w in found)

    relayed: list[dict] = []
    worker = threading.Thread(target=decode)
    worker.start()
    worker.join()
    assert relayed == [{"category": "UserWarning", "message": "odd palette"},
                       {"category": "InputWarning", "message": "cut short"}]
    relayed.append({"category": "DecompressionBombWarning", "message": "big"})
    for quiet in (False, True):
        with Output(quiet=quiet).input_warnings():
            _warn(Input("a.png", Kind.IMAGE), relayed)
    assert capsys.readouterr().err.splitlines() == [
        "bind: warning: a.png: odd palette", "bind: warning: a.png: cut short", "bind: warning: a.png: cut short",
    ]


def test_path_inputs_stay_under_allow_dir(tmp_path):
    from bindcli.serve.app import Settings, _allowed_path, _Refused

    inside, outside = tmp_path / "in" / "a.jpg", tmp_path / "b.jpg"
    inside.parent.mkdir()
    inside.write_bytes(b"x")
    outside.write_bytes(b"x")
    settings = Settings(allow_dirs=(inside.parent.resolve(),))
    assert _allowed_path(str(inside), True, settings) == str(inside.resolve())
    for path, local in ((outside, True), (inside.parent / ".." / "b.jpg", True), (inside, False)):
        with pytest.raises(_Refused):
            _allowed_path(str(path), local, settings)


def test_npy_answers_name_the_inputs_that_failed(server):
    body = json.dumps({"inputs": [{"text": "a dog"}, {"data": "AAAA", "filename": "x.jpg"}]}).encode()
    status, headers, npy = request(server, "POST", "/v1/embed", body,
                                   {"Content-Type": "application/json", "Accept": "application/x-npy"})
    assert status == 200 and np.load(io.BytesIO(npy)).shape[0] == 1
    assert [e["input"] for e in json.loads(headers["x-bind-errors"])] == ["x.jpg"]
