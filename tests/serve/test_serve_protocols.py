"""The APIs of other programs, in-process (the app over the small model, through Starlette's
test client): Weaviate's inference container (`--compat weaviate`) with its request shapes
and its kinds of test media, Jina-style object inputs, bare base64 with a `modality`,
`dimensions`, `normalized`, token ids (tiktoken), aliases, CORS, `--max-inputs`, and URL
inputs against a local HTTP server (and the addresses refused). Every vector is compared
with the in-process embedder's: raw where the protocol says raw, unit otherwise."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import ipaddress
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

import bindcli
from bindcli.embed.inputs import Input
from bindcli.modality import Kind
from bindcli.serve import tokens, urls
from bindcli.serve.app import Settings, build_app
from bindcli.serve.batching import Batcher
from bindcli.serve.limits import Limits
from bindcli.serve.urls import UrlPolicy, UrlRefused
from cli_support import FIXTURES, media

IMG, WAV, MP4, GRAY = (media(n) for n in ("dog_image.jpg", "dog_audio.wav", "synthetic_0.mp4",
                                           "synthetic_gray_0.jpg"))
TIKTOKEN = Path(__file__).resolve().parents[1] / "fixtures" / "tiktoken" / "cl100k_base.tiktoken.gz"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
TOKEN = "s3cret"


def tiktoken_cache(folder: Path) -> Path:
    """A TIKTOKEN_CACHE_DIR holding cl100k_base, as tiktoken's first download leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(gzip.decompress(TIKTOKEN.read_bytes()))
    return folder


def b64(path: str | Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


@pytest.fixture(scope="module")
def embedder():
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth", device="cpu",
                               precision="fp32", cache=False) as e:
        yield e


@contextlib.contextmanager
def client(embedder, **settings):
    batcher = Batcher(embedder, max_batch=8, max_wait=0.005)
    with TestClient(build_app(batcher, Settings(**settings))) as c:
        yield c


@pytest.fixture(scope="module")
def api(embedder):
    """Weaviate's routes on, a token for the rest, a browser origin allowed."""
    with client(embedder, token=TOKEN, compat=frozenset({"weaviate"}), cors_origins=("https://app.example",)) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def here(embedder, *inputs: Input, raw: bool) -> np.ndarray:
    return np.array([e.raw if raw else e.unit for e in embedder.embed(list(inputs))])


def sensors(folder: Path) -> tuple[Path, Path]:
    """An IMU recording as the container's test CSVs hold it (a header, gyroscope columns
    first, 2000 rows), and the same samples as bind's (6, T) accelerometer-first array."""
    rng = np.random.default_rng(3)
    accel, gyro = rng.normal(0, 2, (2000, 3)), rng.normal(0, 0.3, (2000, 3))
    csv = folder / "imu.csv"
    rows = "\n".join(",".join(f"{v:.9f}" for v in row) for row in np.hstack([gyro, accel]))
    csv.write_text("gyro_x,gyro_y,gyro_z,accl_x,accl_y,accl_z\n" + rows + "\n")
    npy = folder / "imu.npy"
    np.save(npy, np.hstack([accel, gyro]).T.astype(np.float32))
    return csv, npy


def depth_pngs(folder: Path) -> tuple[Path, Path]:
    """A 16-bit depth PNG in millimetres (bind's depth) and an 8-bit colour picture of it,
    as the container's examples send."""
    mm = (1000 + 3000 * np.add.outer(np.linspace(0, 1, 240), np.linspace(0, 1, 320))).astype(np.uint16)
    measured, picture = folder / "depth16.png", folder / "depth8.jpg"
    Image.fromarray(mm).save(measured)
    Image.fromarray((mm / 16).astype(np.uint8)).convert("RGB").save(picture)
    return measured, picture


# --- Weaviate's inference container ----------------------------------------------------------


def test_weaviate_probes_and_meta_need_no_token(api, embedder):
    for path in ("/.well-known/ready", "/.well-known/live"):
        assert api.get(path).status_code == 204 and api.head(path).status_code == 204
    meta = api.get("/meta")
    assert meta.status_code == 200 and meta.json()["model"] == embedder.model_id
    assert api.get("/v1/models").status_code == 401  # the token still guards bind's own routes


def test_vectorize_as_weaviate_sends_it_gives_raw_vectors_of_every_kind(api, embedder, tmp_path):
    imu_csv, imu_npy = sensors(tmp_path)
    depth, _ = depth_pngs(tmp_path)
    body = {"texts": ["a dog", "a car"], "images": [b64(IMG), "DATA:image/jpeg;BASE64," + b64(IMG)],
            "audio": [b64(WAV)], "video": [b64(MP4)], "imu": [b64(imu_csv)], "thermal": [b64(GRAY)],
            "depth": [b64(depth)]}
    # Weaviate's client sends neither Content-Type nor Authorization
    answer = api.post("/vectorize", content=json.dumps(body).encode())
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert set(got) == {"textVectors", "imageVectors", "audioVectors", "videoVectors", "imuVectors",
                        "thermalVectors", "depthVectors"}
    expected = {
        "textVectors": here(embedder, Input.text("a dog"), Input.text("a car"), raw=True),
        "imageVectors": here(embedder, Input(IMG, Kind.IMAGE), Input(IMG, Kind.IMAGE), raw=True),
        "audioVectors": here(embedder, Input(WAV, Kind.AUDIO), raw=True),
        "videoVectors": here(embedder, Input(MP4, Kind.VIDEO), raw=True),
        "imuVectors": here(embedder, Input(str(imu_npy), Kind.IMU), raw=True),
        "thermalVectors": here(embedder, Input(GRAY, Kind.THERMAL), raw=True),
        "depthVectors": here(embedder, Input(str(depth), Kind.DEPTH), raw=True),
    }
    for key, vectors in expected.items():
        np.testing.assert_allclose(got[key], vectors, rtol=1e-5, atol=1e-5, err_msg=key)
    assert abs(np.linalg.norm(got["textVectors"][0]) - 1) > 0.5  # raw: scaled by the logit scale


def test_vectorize_answers_every_key_when_asked_for_one_kind(api):
    got = api.post("/vectorize", content=b'{"texts": ["a dog"]}').json()
    assert [len(v) for v in got.values()] == [1, 0, 0, 0, 0, 0, 0]


def test_an_8bit_depth_picture_is_refused_saying_what_to_send(api, tmp_path):
    _, picture = depth_pngs(tmp_path)
    answer = api.post("/vectorize", content=json.dumps({"texts": ["x"], "depth": [b64(picture)]}).encode())
    assert answer.status_code == 400
    assert answer.json() == {"error": "depth[0]: an 8-bit colour image is not a depth map; expected a 16-bit "
                                      "PNG in millimetres or a float .npy/.npz in metres"}


@pytest.mark.parametrize("body, error", [
    (b"{", "the body is not JSON"),
    (b'{"images": "abc"}', "images must be a list of strings"),
    (b'{"images": ["!!!"]}', "images[0]: the data is not valid base64"),
    (b'{"texts": [""]}', "texts[0]: empty text"),
])
def test_weaviate_refusals_are_an_error_string(api, body, error):
    answer = api.post("/vectorize", content=body)
    assert answer.status_code == 400 and isinstance(answer.json()["error"], str)
    assert answer.json()["error"].startswith(error), answer.json()


def test_weaviate_routes_are_off_unless_asked_for(embedder):
    with client(embedder) as c:
        assert c.get("/.well-known/ready").status_code == 404
        assert c.post("/vectorize", content=b'{"texts": ["x"]}').status_code == 404


def test_imu_csv_columns_are_read_by_their_names(tmp_path):
    from bindcli.media.imu import named_columns, read_imu

    csv, npy = sensors(tmp_path)
    np.testing.assert_allclose(read_imu(csv), np.load(npy), atol=1e-6)
    assert named_columns("t,AccX,AccY,AccZ,GyroX,GyroY,GyroZ") == [1, 2, 3, 4, 5, 6]
    assert named_columns("accelerometer_x,accelerometer_y,accelerometer_z,gyro_x,gyro_y,gyro_z") == list(range(6))
    assert named_columns("a,b,c,d,e,f") is None  # no names: the file's order, as before
    assert named_columns("acc_x,acc_x,acc_z,gyr_x,gyr_y,gyr_z") is None


# --- /v1/embeddings: Jina-style objects, bare base64, options ----------------------------------


def embeddings(c: TestClient, **body) -> tuple[int, dict]:
    answer = c.post("/v1/embeddings", json=body, headers=AUTH)
    return answer.status_code, answer.json()


def vectors(answer: dict) -> np.ndarray:
    return np.array([d["embedding"] for d in answer["data"]])


def test_jina_style_object_items_are_unit_unless_normalized_is_false(api, embedder):
    wav = "data:audio/wav;name=bark.wav;base64," + b64(WAV)
    items = [{"text": "a dog"}, {"image": b64(IMG)}, {"audio": wav}, {"video": b64(MP4)}]
    sent = [Input.text("a dog"), Input(IMG, Kind.IMAGE), Input(WAV, Kind.AUDIO), Input(MP4, Kind.VIDEO)]
    for normalized in (None, True, False):
        options = {} if normalized is None else {"normalized": normalized}
        status, answer = embeddings(api, model="jina-clip-v2", input=items, embedding_type="float",
                                    dimensions=0, **options)
        assert status == 200, answer
        np.testing.assert_allclose(vectors(answer), here(embedder, *sent, raw=normalized is False),
                                   rtol=1e-5, atol=1e-5)


def test_bare_base64_with_a_modality_and_data_urls_in_any_case(api, embedder):
    unit = here(embedder, Input(IMG, Kind.IMAGE), raw=False)
    for body in ({"input": [b64(IMG)], "modality": "image"},
                 {"input": ["DATA:IMAGE/JPEG;BASE64," + b64(IMG)]},
                 {"input": ["data:image/jpeg;name=dog.jpg;base64," + b64(IMG)]}):
        status, answer = embeddings(api, **body)
        assert status == 200, answer
        np.testing.assert_allclose(vectors(answer), unit, atol=1e-6)


def test_base64_vectors_as_jina_asks_for_them(api, embedder):
    status, answer = embeddings(api, input=[{"text": "a dog"}], embedding_type="base64")
    got = np.frombuffer(base64.b64decode(answer["data"][0]["embedding"]), "<f4")
    np.testing.assert_allclose(got, here(embedder, Input.text("a dog"), raw=False)[0], atol=1e-6)


@pytest.mark.parametrize("body, error", [
    ({"input": ["a dog"], "dimensions": 16}, "dimensions 16: this model's vectors have 32 dimensions"),
    ({"input": ["a dog"], "dimensions": "32"}, "dimensions '32': this model's vectors have 32 dimensions"),
    ({"input": ["a dog", ""]}, "input 1: empty text"),
    ({"input": ["  "]}, "input 0: empty text"),
    ({"input": [{"image": b64(IMG), "text": "x"}]}, "input 0: an object item holds one field"),
    ({"input": [{"smell": "x"}]}, "input 0: an object item holds one field"),
    ({"input": [b64(IMG)], "modality": "smell"}, "modality: unknown modality 'smell'"),
    ({"input": ["!!!"], "modality": "image"}, "input 0: the data is not valid base64"),
    ({"input": ["a dog"], "embedding_type": "binary"}, "embedding_type must be float or base64"),
    ({"input": ["a dog"], "normalized": "yes"}, "normalized must be true or false"),
    ({"input": [{"image": "https://example.com/dog.jpg"}]}, "input 0: URL inputs are off on this server"),
])
def test_what_cannot_be_embedded_is_a_400_naming_it(api, body, error):
    status, answer = embeddings(api, **body)
    assert status == 400 and answer["error"]["message"].startswith(error), answer
    assert answer["detail"] == answer["error"]["message"]  # where Jina's clients read it


def test_dimensions_of_the_models_width_is_taken(api, embedder):
    status, answer = embeddings(api, input="a dog", dimensions=32)
    assert status == 200 and len(answer["data"][0]["embedding"]) == 32


def test_aliases_and_one_model_by_id(api, embedder):
    assert api.post("/embeddings", json={"input": "a dog"}, headers=AUTH).status_code == 200
    listed = api.get("/models", headers=AUTH).json()["data"][0]
    assert listed["id"] == embedder.model_id and listed["limits"]["max_inputs"] == 2048
    one = api.get(f"/v1/models/{embedder.model_id}", headers=AUTH)
    assert one.status_code == 200 and one.json()["id"] == embedder.model_id
    missing = api.get("/v1/models/text-embedding-3-small", headers=AUTH)
    assert missing.status_code == 404 and "text-embedding-3-small" in missing.json()["error"]["message"]


def test_max_inputs_is_the_servers_to_set(embedder):
    with client(embedder, limits=Limits(max_inputs=3)) as c:
        answer = c.post("/v1/embeddings", json={"input": ["a"] * 4})
        assert answer.status_code == 413
        assert answer.json()["error"]["message"] == "4 inputs, over the 3-input limit (bind serve --max-inputs)"
        assert c.get("/v1/models").json()["data"][0]["limits"]["max_inputs"] == 3


def test_cors_preflight_is_answered_for_the_allowed_origin_only(api, embedder):
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = api.options("/v1/embeddings", headers={"Origin": "https://app.example", **asked})
    assert allowed.status_code == 200  # no token: a preflight carries none
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = api.options("/v1/embeddings", headers={"Origin": "https://evil.example", **asked})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    posted = api.post("/v1/embeddings", json={"input": "a dog"}, headers={"Origin": "https://app.example", **AUTH})
    assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == "https://app.example"
    with client(embedder) as c:  # no --cors-origin: no preflight answered
        assert c.options("/v1/embeddings", headers={"Origin": "https://app.example", **asked}).status_code == 405


# --- token ids: LangChain's OpenAIEmbeddings with its defaults ---------------------------------


@pytest.fixture
def cl100k(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache(tmp_path / "tiktoken")))
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()


def test_langchain_openai_embeddings_with_its_defaults(api, embedder, cl100k):
    from langchain_openai import OpenAIEmbeddings

    lc = OpenAIEmbeddings(base_url="http://testserver/v1", api_key=TOKEN, http_client=api, max_retries=0)
    assert lc.check_embedding_ctx_length  # it sends token ids
    texts = ["a dog barking in the park", "a red car", "café ☕ naïve"]
    got = np.array(lc.embed_documents(texts))
    np.testing.assert_allclose(got, here(embedder, *map(Input.text, texts), raw=False), atol=1e-6)
    np.testing.assert_allclose(lc.embed_query("a red car"), got[1], atol=1e-6)


def test_the_openai_client_sends_token_ids_and_objects(api, embedder, cl100k):
    import openai
    import tiktoken

    c = openai.OpenAI(base_url="http://testserver/v1", api_key=TOKEN, http_client=api, max_retries=0)
    ids = tiktoken.get_encoding("cl100k_base").encode("a dog")
    got = c.embeddings.create(model="text-embedding-3-small", input=[ids, ids])
    unit = here(embedder, Input.text("a dog"), Input(IMG, Kind.IMAGE), raw=False)
    np.testing.assert_allclose([d.embedding for d in got.data], unit[[0, 0]], atol=1e-6)
    mixed = c.embeddings.create(model="x", input=[{"text": "a dog"}, {"image": b64(IMG)}])  # type: ignore[list-item]
    np.testing.assert_allclose([d.embedding for d in mixed.data], unit, atol=1e-6)


def test_token_ids_without_their_encoding_say_how_to_send_texts(api, monkeypatch):
    import tiktoken

    def offline(name: str):
        raise ConnectionError("no network")

    tokens._encoding.cache_clear()
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    try:
        status, answer = embeddings(api, input=[[64, 5679]])
    finally:
        tokens._encoding.cache_clear()
    assert status == 400
    message = answer["error"]["message"]
    assert "TIKTOKEN_CACHE_DIR" in message and "check_embedding_ctx_length=False" in message, message
    monkeypatch.setitem(__import__("sys").modules, "tiktoken", None)
    status, answer = embeddings(api, input=[[64, 5679]])
    assert "pip install tiktoken" in answer["error"]["message"]
    assert "check_embedding_ctx_length=False" in answer["error"]["message"]


def test_token_ids_that_are_no_encodings_are_refused(api, cl100k):
    status, answer = embeddings(api, input=[[10**9]])
    assert status == 400 and "not of the cl100k_base encoding" in answer["error"]["message"]


# --- URL inputs --------------------------------------------------------------------------------


class _Site(http.server.BaseHTTPRequestHandler):
    """/dog.jpg, /big (past any small limit), /slow, and /to?url=... (a redirect there)."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/dog.jpg":
            self._send(Path(IMG).read_bytes(), "image/jpeg")
        elif self.path == "/big":
            self._send(b"\0" * 200_000, "image/png")
        elif self.path == "/slow":
            time.sleep(3)
            self._send(b"late", "image/png")
        elif self.path.startswith("/to?url="):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to?url="):])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def _send(self, body: bytes, mime: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LOCAL = UrlPolicy(max_bytes=1 << 20, timeout=10, allowed=(ipaddress.ip_network("127.0.0.1/32"),))


def test_a_url_input_is_fetched_when_the_operator_allows_it(embedder, site):
    with client(embedder, urls=LOCAL) as c:
        for body in ({"input": [{"image": f"{site}/dog.jpg"}]}, {"input": [f"{site}/dog.jpg"], "modality": "image"}):
            answer = c.post("/v1/embeddings", json=body)
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(vectors(answer.json()), here(embedder, Input(IMG, Kind.IMAGE), raw=False),
                                       atol=1e-6)
        refused = c.post("/v1/embeddings", json={"input": [{"image": "http://10.1.2.3/x.jpg"}]})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == (
            "input 0: 10.1.2.3 is 10.1.2.3, a private address: refused (bind serve --url-allow-net)")


@pytest.mark.parametrize("url, error", [
    ("http://127.0.0.1:9/x.jpg", "127.0.0.1 is 127.0.0.1, a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
    ("http://[::1]/x", "a loopback address"),
    ("http://[::ffff:10.0.0.1]/x", "a private address"),
    ("http://192.168.1.1/x", "a private address"),
    ("http://0.0.0.0/x", "an unspecified address"),
    ("ftp://example.com/x", "only http and https URLs are fetched"),
])
def test_special_addresses_are_refused_before_any_connection(url, error):
    with pytest.raises(UrlRefused, match=error.replace("[", r"\[")):
        urls.fetch(url, UrlPolicy(max_bytes=1000))


def test_redirects_size_and_time_are_bounded(site):
    body, mime, final = urls.fetch(f"{site}/to?url=/dog.jpg", LOCAL)
    assert body == Path(IMG).read_bytes() and mime == "image/jpeg" and final == f"{site}/dog.jpg"
    port = site.rsplit(":", 1)[1]
    with pytest.raises(UrlRefused, match="127.0.0.2 is 127.0.0.2, a loopback address"):
        urls.fetch(f"{site}/to?url=http://127.0.0.2:{port}/dog.jpg", LOCAL)  # allowed host, refused target
    with pytest.raises(UrlRefused, match="a link-local address"):
        urls.fetch(f"{site}/to?url=http://169.254.169.254/", LOCAL)
    with pytest.raises(UrlRefused, match="over the 1000-byte per-file limit"):
        urls.fetch(f"{site}/big", UrlPolicy(max_bytes=1000, allowed=LOCAL.allowed))
    with pytest.raises(UrlRefused, match="timed out|took too long"):
        urls.fetch(f"{site}/slow", UrlPolicy(max_bytes=1000, timeout=0.3, allowed=LOCAL.allowed))
    with pytest.raises(UrlRefused, match="answered HTTP 404"):
        urls.fetch(f"{site}/nothing", LOCAL)


def test_a_url_that_is_plain_text_stays_a_text(embedder):
    with client(embedder) as c:  # no modality, no object: OpenAI's clients embed the string
        answer = c.post("/v1/embeddings", json={"input": ["https://example.com/dog.jpg"]})
        assert answer.status_code == 200
        np.testing.assert_allclose(vectors(answer.json()),
                                   here(embedder, Input.text("https://example.com/dog.jpg"), raw=False), atol=1e-6)


def test_an_image_in_memory_gets_its_suffix_from_its_bytes(tmp_path):
    from bindcli.serve.inputs import sniffed_suffix

    buf = io.BytesIO()
    np.save(buf, np.zeros((6, 10), np.float32))
    assert sniffed_suffix(buf.getvalue(), Kind.IMU) == ".npy"
    assert sniffed_suffix(b"1,2,3,4,5,6\n", Kind.IMU) == ".csv"
    assert sniffed_suffix(buf.getvalue(), Kind.DEPTH) == ".npy"
    assert sniffed_suffix(Path(IMG).read_bytes(), Kind.DEPTH) == ""
