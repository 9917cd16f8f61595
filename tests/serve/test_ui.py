"""`bind serve --ui` over HTTP: the collections' state, search by text, files, recordings,
results and weights with filters, compare, classify, thumbnails, and what is refused: files
that are no items, links put in an item's place, calls from other sites, uploads over the
limits, the token."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from bindcli.serve.ui import COOKIE, CSP
from cli_support import SMALL, bind
from ui_support import MARKUP, READY, ROOT, WAIT, make_collection, start_page

pytestmark = pytest.mark.slow  # it starts servers

API = {"X-Bind-UI": "1"}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    return tmp, make_collection(tmp)


@pytest.fixture(scope="module")
def page(made):
    served = start_page(made[0], "--max-file-mb", "0.5")
    yield served
    assert served.stop() == 0


@pytest.fixture(scope="module")
def web(page):
    with httpx.Client(base_url=page.url.removesuffix("/ui/"), timeout=120) as client:
        yield client


def search(web, *fields: tuple[str, str], files=None) -> dict:
    answer = web.post("/ui/api/search", data=_pairs(fields), files=files, headers=API)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _pairs(fields):
    out: dict[str, list[str]] = {}
    for key, value in fields:
        out.setdefault(key, []).append(value)
    return out


def names(found: dict) -> list[str]:
    return [h["name"] for h in found["hits"]]


def test_the_page_and_its_files_come_with_a_policy_that_runs_only_its_own_script(web):
    for path in ("/ui/", "/ui/static/app.js", "/ui/static/style.css", "/health"):
        answer = web.get(path)
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert web.get("/ui/").headers["content-type"].startswith("text/html")
    assert web.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
    assert web.get("/ui/static/..%2Fui.py").status_code == 404
    assert web.get("/health").json()["ui"].endswith("/ui/")


def test_the_state_of_each_collection(web, made):
    answer = web.get("/ui/api/collections", headers=API).json()
    (coll,) = answer["collections"]
    assert coll["name"] == "default" and coll["searchable"]
    assert coll["per_modality"] == {"audio": 1, "image": 6, "video": 1}
    assert coll["files"] == 8 and coll["model_id"] and coll["updated"] > coll["created"] - 1
    assert coll["search"].startswith("exact")


def test_text_search_with_filters_names_each_hit_by_id(web, made):
    found = search(web, ("text", "a dog"), ("k", "50"))
    assert len(found["hits"]) == 8
    assert all(isinstance(h["id"], int) for h in found["hits"])
    scores = [h["score"] for h in found["hits"]]
    assert scores == sorted(scores, reverse=True)
    images = search(web, ("text", "a dog"), ("kind", "image"), ("k", "50"))
    assert {h["kind"] for h in images["hits"]} == {"image"} and len(images["hits"]) == 6
    assert all(h["pictured"] for h in images["hits"])
    assert names(search(web, ("text", "a dog"), ("glob", "*.wav"))) == ["bird_audio.wav"]
    assert names(search(web, ("text", "a dog"), ("glob", "*.mp4"), ("under", str(made[1]["folder"])))) \
        == ["synthetic_0.mp4"]
    assert search(web, ("text", "a dog"), ("under", str(made[0] / "outside")))["hits"] == []


def test_an_uploaded_file_finds_its_copy_first(web, made):
    with open(made[1]["bird_image.jpg"], "rb") as f:
        found = search(web, ("k", "3"), files=[("file", ("query.jpg", f.read(), "image/jpeg"))])
    assert found["hits"][0]["name"] in ("bird_image.jpg", "swapped.jpg")
    assert found["hits"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_more_like_a_result_leaves_that_result_out_and_weights_count(web):
    dog = next(h for h in search(web, ("text", "dog"), ("k", "50"))["hits"] if h["name"] == "dog_image.jpg")
    like = search(web, ("like", str(dog["id"])), ("k", "50"))
    assert "dog_image.jpg" not in names(like)
    assert like["hits"][0]["name"] == MARKUP and like["hits"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    # the same item at weight 1 against a text at weight 0.01 is nearly itself alone
    mixed = search(web, ("like", str(dog["id"])), ("text", "a car"), ("weight", "0.01"), ("k", "50"))
    assert names(mixed)[0] == MARKUP
    against = search(web, ("like", str(dog["id"])), ("weight", "-1"), ("k", "50"))
    assert names(against)[-1] == MARKUP
    bad = web.post("/ui/api/search", data={"like": "999999"}, headers=API)
    assert bad.status_code == 404


def test_a_recording_from_the_microphone_is_searched_as_audio(web, made):
    """MediaRecorder's WebM (Opus), as Chromium records it: read as audio when the page says
    so, though `.webm` reads as video by itself."""
    import av

    data = io.BytesIO()
    with av.open(data, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48000)
        tone = (0.3 * np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    recording = [("file", ("recording.webm", data.getvalue(), "audio/webm"))]
    as_video = web.post("/ui/api/search", files=recording, headers=API)
    assert as_video.status_code == 422 and "video" in as_video.json()["error"]["message"]
    # the page sends the kind right after the recording (httpx: a part without a file name)
    answer = web.post("/ui/api/search", files=[*recording, ("modality", (None, "audio"))], headers=API)
    assert answer.status_code == 200, answer.text
    assert answer.json()["hits"]


def test_compare_and_classify(web, made):
    files = [("file", (p.name, p.read_bytes())) for p in (made[1]["dog_image.jpg"], made[1]["car_image.jpg"])]
    matrix = web.post("/ui/api/compare", data={"text": "a dog"}, files=files, headers=API).json()
    assert matrix["names"] == ["a dog", "dog_image.jpg", "car_image.jpg"]
    table = np.array(matrix["matrix"])
    assert table.shape == (3, 3) and np.allclose(table, table.T) and np.allclose(np.diag(table), 1, atol=1e-3)
    labelled = web.post("/ui/api/classify", data={"label": ["dog", "car"]}, files=files[:1], headers=API).json()
    (result,) = labelled["results"]
    assert result["input"] == "dog_image.jpg"
    assert {x["label"] for x in result["labels"]} == {"dog", "car"}
    assert sum(x["probability"] for x in result["labels"]) == pytest.approx(1, abs=1e-3)
    assert web.post("/ui/api/classify", files=files[:1], headers=API).status_code == 400


def _ids(web) -> dict[str, int]:
    return {h["name"]: h["id"] for h in search(web, ("text", "x"), ("k", "50"))["hits"]}


def test_files_are_served_by_item_with_their_type_and_ranges(web, made):
    ids = _ids(web)
    picture = web.get(f"/ui/file/default/{ids['dog_image.jpg']}")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert picture.content == made[1]["dog_image.jpg"].read_bytes()
    part = web.get(f"/ui/file/default/{ids['bird_audio.wav']}", headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"RIFF"
    assert web.get(f"/ui/file/default/{ids['synthetic_0.mp4']}").headers["content-type"] == "video/mp4"


def test_thumbnails_and_posters_are_made_once_and_kept_beside_the_collection(web, made):
    ids = _ids(web)
    thumb = web.get(f"/ui/thumb/default/{ids['bird_image.jpg']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from PIL import Image

    assert max(Image.open(io.BytesIO(thumb.content)).size) == 320
    poster = web.get(f"/ui/thumb/default/{ids['synthetic_0.mp4']}")
    assert poster.status_code == 200 and Image.open(io.BytesIO(poster.content)).format == "JPEG"
    kept = list((made[0] / "data" / "bind.sqlite3.thumbs").glob("*.jpg"))
    assert len(kept) >= 2
    broken = web.get(f"/ui/thumb/default/{ids['broken.jpg']}")
    assert broken.status_code == 422 and "cannot read image" in broken.json()["error"]
    sound = web.get(f"/ui/thumb/default/{ids['bird_audio.wav']}")
    assert sound.status_code == 422 and "no picture" in sound.json()["error"]


def test_nothing_but_an_items_own_file_is_served(web, made):
    ids = _ids(web)
    secret = made[1]["secret"].read_bytes()
    swapped = web.get(f"/ui/file/default/{ids['swapped.jpg']}")
    assert swapped.status_code == 404 and secret not in swapped.content
    assert web.get(f"/ui/thumb/default/{ids['swapped.jpg']}").status_code == 404
    for path in ("/ui/file/default/999999", "/ui/file/default/-1", "/ui/file/nothing/1",
                 f"/ui/file/default/{made[1]['secret']}", "/ui/file/default/..%2F..%2Fetc%2Fpasswd",
                 "/ui/file/default/1/../../../etc/passwd", "/ui/file/default/1%00"):
        answer = web.get(path)
        assert answer.status_code == 404, path
        assert secret not in answer.content


def test_calls_from_other_sites_are_refused(web):
    assert web.get("/ui/api/collections").status_code == 403  # no page header: a form of another site
    rebound = web.get("/ui/api/collections", headers={**API, "Host": "evil.example:80"})
    assert rebound.status_code == 403 and "loopback" in rebound.json()["error"]["message"]
    assert web.get("/ui/file/default/1", headers={"Host": "evil.example"}).status_code == 403


def test_uploads_take_the_limits_of_the_embed_route(web):
    big = web.post("/ui/api/search", files=[("file", ("big.jpg", b"x" * 600_000))], headers=API)
    assert big.status_code == 413 and "per-file limit" in big.json()["error"]["message"]
    unreadable = web.post("/ui/api/search", files=[("file", ("bad.jpg", b"not a jpeg"))], headers=API)
    assert unreadable.status_code == 422 and unreadable.json()["error"]["message"].startswith("bad.jpg: ")
    assert web.post("/ui/api/search", data={"k": "5"}, headers=API).status_code == 400


def test_with_a_token_the_page_logs_in_once_and_the_api_still_wants_the_bearer(made):
    served = start_page(made[0], "--token", "s3cret")
    try:
        with httpx.Client(base_url=served.url.removesuffix("/ui/"), timeout=120) as web:
            assert web.get("/ui/").status_code == 200  # the page itself holds no data
            assert web.get("/ui/api/collections", headers=API).status_code == 401
            assert web.post("/ui/login", json={"token": "wrong"}).status_code == 401
            assert COOKIE not in web.cookies
            logged = web.post("/ui/login", json={"token": "s3cret"})
            assert logged.status_code == 200
            assert "httponly" in logged.headers["set-cookie"].lower()
            assert "samesite=strict" in logged.headers["set-cookie"].lower()
            assert "s3cret" not in logged.headers["set-cookie"]
            assert web.get("/ui/api/collections", headers=API).status_code == 200
            # the cookie is the page's: the API proper still asks for the bearer token
            assert web.post("/v1/embed", json={"inputs": [{"text": "x"}]}).status_code == 401
            web.cookies.clear()
            assert web.get("/ui/api/collections", headers={**API, "Authorization": "Bearer s3cret"}).status_code == 200
            assert web.get("/ui/api/collections", headers={**API, "Cookie": f"{COOKIE}=forged"}).status_code == 401
    finally:
        assert served.stop() == 0


def test_a_hit_of_a_segment_carries_its_times():
    from bindcli.collections.store import Hit
    from bindcli.serve.ui import _hit

    plain = _hit(Hit("/m/a.wav", "audio", 0.5), 3)
    assert "start" not in plain and plain["id"] == 3 and plain["name"] == "a.wav"
    segment = json.loads(json.dumps(_hit(Hit("/m/a.wav", "audio", 0.5, start=1.5, end=3.0), 3)))
    assert (segment["start"], segment["end"]) == (1.5, 3.0)


def test_bind_ui_serves_the_page_when_none_answers_and_then_finds_it(tmp_path):
    """`bind ui` with no server: it serves one (on the local socket and a loopback port);
    a second `bind ui` finds that one through the socket and names its page."""
    make_collection(tmp_path)
    environ = {**os.environ, **SMALL, "BIND_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT),
               "NO_COLOR": "1"}
    err = tmp_path / "ui.err"
    proc = subprocess.Popen([sys.executable, "-m", "bindcli", "ui", "--no-browser"],
                            stdout=subprocess.DEVNULL, stderr=err.open("w"), env=environ)
    try:
        deadline = time.monotonic() + WAIT
        while not READY.search(err.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        url = READY.search(err.read_text())
        assert url, err.read_text()
        answer = httpx.get(url.group(1).replace("/ui/", "/ui/api/collections"), headers=API, timeout=60)
        assert answer.json()["collections"][0]["files"] == 8
        again = bind("ui", "--no-browser", env={"BIND_DATA_DIR": str(tmp_path / "data")})
        assert again.exit_code == 0, again.stderr
        assert f"bind: the page is at {url.group(1)}" in again.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
