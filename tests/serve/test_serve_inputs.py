"""What a request may hold, against a real server: no body makes it answer 500 or log a
traceback (deep nesting, lone surrogates, huge numbers, wrong types, duplicate fields, bad
base64, names that are not UTF-8), and its answers speak HTTP to HTTP clients (the client's
file names, the `modality` field, a bearer scheme in any case, yes-or-no options)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from cli_support import bind, jsonl, media
from test_serve import Served, multipart, post_and_leave, request, start

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json", **AUTH}
IMG = media("dog_image.jpg")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-inputs")
    served = start(tmp, "--port", "0", "--token", TOKEN, "--max-wait-ms", "300",
                   "--max-body-mb", "2", "--max-file-mb", "1", "--max-text-chars", "200")
    yield served
    assert served.stop() == 0


class Log:
    """What the server writes to its log from now on."""

    def __init__(self, server: Served) -> None:
        self.server, self.start = server, len(server.err.read_text())

    def new(self) -> str:
        return self.server.err.read_text()[self.start:]


def post(server: Served, body: bytes, path: str = "/v1/embed", query: str = "") -> tuple[int, dict]:
    status, _, answer = request(server, "POST", path + query, body, JSON)
    return status, json.loads(answer)


def _nested(depth: int) -> bytes:
    return b'{"inputs":' + b"[" * depth + b"]" * depth + b"}"


JSON_BODIES = {
    "nested 100,000 deep": _nested(100_000),
    "an array nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "objects nested 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "nested a text deep": b'{"inputs":[{"text":' + b"[" * 5_000 + b"]" * 5_000 + b"}]}",
    "nested a path deep": b'{"inputs":[{"path":' + b"[" * 900 + b"]" * 900 + b"}]}",
    "a 5,000-digit number": b'{"inputs":[{"text":"x"}],"raw":' + b"9" * 5_000 + b"}",
    "a number past float's range": b'{"inputs":[{"text":"x"}],"cache":1e999}',
    "a huge number as the inputs": b'{"inputs":1e999}',
    "NaN": b'{"inputs":[{"text":"x"}],"raw":NaN}',
    "inputs of a wrong type": b'{"inputs":{"text":"x"}}',
    "an input of a wrong type": b'{"inputs":["x"]}',
    "a text of a wrong type": b'{"inputs":[{"text":["x"]}]}',
    "a path of a wrong type": b'{"inputs":[{"path":{"a":1}}]}',
    "data of a wrong type": b'{"inputs":[{"data":123,"filename":"a.jpg"}]}',
    "a filename of a wrong type": b'{"inputs":[{"data":"AAAA","filename":[1]}]}',
    "a modality of a wrong type": b'{"inputs":[{"text":"x","modality":1e999}]}',
    "a modality list": b'{"inputs":[{"text":"x"}],"modality":["text"]}',
    "an unknown modality": b'{"inputs":[{"text":"x"}],"modality":"smell"}',
    "duplicate fields": b'{"inputs":[{"text":"x"}],"inputs":[{"text":"y"}]}',
    "duplicate fields in an input": b'{"inputs":[{"text":"x","text":"y"}]}',
    "a body that is a list": b'[{"text":"x"}]',
    "a body that is a string": b'"x"',
    "a body that is not UTF-8": b'{"inputs":[{"text":"caf\xe9"}]}',
    "a body that is not JSON": b"{",
    "an empty body": b"",
    "no inputs": b'{"inputs":[]}',
    "an input with nothing": b'{"inputs":[{}]}',
    "an encoding format of a wrong type": b'{"inputs":[{"text":"x"}],"encoding_format":{"a":1}}',
    "a yes-or-no option that is a string": b'{"inputs":[{"text":"x"}],"raw":"maybe"}',
    "a yes-or-no option that is a list": b'{"inputs":[{"text":"x"}],"cache":[]}',
}

PER_INPUT = {  # refused alone: the request is answered, the input says why
    "a lone surrogate": (b'{"inputs":[{"text":"\\ud800"},{"text":"a dog"}]}', "not valid UTF-8"),
    "a lone low surrogate": (b'{"inputs":[{"text":"caf\\udce9"},{"text":"a dog"}]}', "byte 0xe9"),
    "a file name that is not UTF-8": (b'{"inputs":[{"path":"/nowhere/caf\\udce9.jpg"},{"text":"a dog"}]}',
                                      "no such file"),
    "bad base64": (b'{"inputs":[{"data":"!!!","filename":"a.jpg"},{"text":"a dog"}]}', "not valid base64"),
    "base64 that is not ASCII": (b'{"inputs":[{"data":"\\u00e9\\ud800","filename":"a.jpg"},{"text":"a dog"}]}',
                                 "not valid base64"),
    "a NUL in a path": (b'{"inputs":[{"path":"/tmp/a\\u0000.jpg"},{"text":"a dog"}]}', "NUL"),
    "a NUL in a file name": (b'{"inputs":[{"data":"AAAA","filename":"a.jpg\\u0000","modality":"image"},'
                             b'{"text":"a dog"}]}', "cannot read image"),
    "a surrogate in a file name": (b'{"inputs":[{"data":"AAAA","filename":"caf\\udce9.jpg"},{"text":"a dog"}]}',
                                   "cannot read image"),
}


def _answers_and_logs_nothing(server: Served, log: Log) -> None:
    assert request(server, "GET", "/health", headers=AUTH)[0] == 200
    assert post(server, b'{"inputs":[{"text":"still here"}]}')[0] == 200
    assert "Traceback" not in log.new() and "ERROR" not in log.new(), log.new()


@pytest.mark.parametrize("body", JSON_BODIES.values(), ids=JSON_BODIES.keys())
@pytest.mark.parametrize("path", ["/v1/embed", "/v1/embeddings"])
def test_a_bad_json_body_is_a_400_with_a_message(server, body, path):
    log = Log(server)
    status, answer = post(server, body, path)
    assert status in (400, 413), answer
    assert answer["error"]["message"] and answer["error"]["type"] == "invalid_request_error"
    _answers_and_logs_nothing(server, log)


def test_json_refusals_say_what_is_wrong(server):
    said = {name: post(server, JSON_BODIES[name])[1]["error"]["message"] for name in (
        "nested 100,000 deep", "a 5,000-digit number", "duplicate fields", "a text of a wrong type",
        "a yes-or-no option that is a string")}
    assert said == {
        "nested 100,000 deep": "the body is not JSON this server reads: nested too deeply",
        "a 5,000-digit number": "the body is not JSON this server reads: a number too long",
        "duplicate fields": "the body names the field inputs twice",
        "a text of a wrong type": "input 0: text must be a string",
        "a yes-or-no option that is a string": "raw must be true or false, not 'maybe'",
    }


@pytest.mark.parametrize("body, error", PER_INPUT.values(), ids=PER_INPUT.keys())
def test_a_bad_input_fails_alone_and_its_name_comes_back_as_sent(server, body, error):
    log = Log(server)
    status, answer = post(server, body)
    assert status == 200, answer
    failed, fine = answer["results"]
    assert failed["input"] == json.loads(body)["inputs"][0].get("path", failed["input"])
    assert error in failed["error"] and "embedding" in fine
    _answers_and_logs_nothing(server, log)


@pytest.mark.parametrize("flag", ["raw", "cache"])
def test_a_yes_or_no_option_that_is_neither_is_a_400_naming_it(server, flag):
    status, answer = post(server, b'{"inputs":[{"text":"x"}]}', query=f"?{flag}=maybe")
    assert status == 400 and answer["error"]["message"] == f"{flag} must be true or false, not 'maybe'"
    for given, raw in (("no", False), ("TRUE", True), ("0", False)):
        status, answer = post(server, b'{"inputs":[{"text":"x"}]}', query=f"?raw={given}")
        assert status == 200 and (abs(sum(v * v for v in answer["results"][0]["embedding"]) - 1) > 1e-3) == raw


def _multipart_raw(parts: list[tuple[bytes, bytes]]) -> tuple[bytes, dict]:
    """A multipart body of (Content-Disposition, value) parts written as bytes, names that
    are not UTF-8 included."""
    body = b"".join(b"--bb\r\nContent-Disposition: " + d + b"\r\n\r\n" + v + b"\r\n" for d, v in parts)
    return body + b"--bb--\r\n", {"Content-Type": "multipart/form-data; boundary=bb", **AUTH}


MULTIPART_BODIES = {
    "a file name that is not UTF-8": [(b'form-data; name="file"; filename="caf\xe9.jpg"', b"xx")],
    "a text that is not UTF-8": [(b'form-data; name="text"', b"caf\xe9")],
    "a field name that is not UTF-8": [(b'form-data; name="f\xe9"', b"x"), (b'form-data; name="text"', b"x")],
    "a NUL in a file name": [(b'form-data; name="file"; filename="a\x00.jpg"', b"xx")],
    "a slash in a file name": [(b'form-data; name="file"; filename="../../x/a.jpg"', b"xx")],
    "an unknown modality": [(b'form-data; name="file"; filename="a.jpg"', b"xx"), (b'form-data; name="modality"', b"smell")],
    "duplicate modality fields": [(b'form-data; name="file"; filename="a.xyz"', b"xx"),
                                  (b'form-data; name="modality"', b"image"), (b'form-data; name="modality"', b"audio")],
    "no parts": [],
    "a text too long": [(b'form-data; name="text"', b"x" * 201)],
    "no disposition": [(b"", b"x")],
}


@pytest.mark.parametrize("parts", MULTIPART_BODIES.values(), ids=MULTIPART_BODIES.keys())
def test_a_multipart_body_is_answered_or_refused_never_a_500(server, parts):
    log = Log(server)
    body, headers = _multipart_raw(parts)
    status, _, answer = request(server, "POST", "/v1/embed", body, headers)
    assert status in (200, 400), answer
    _answers_and_logs_nothing(server, log)


def test_a_malformed_multipart_body_is_a_400(server):
    log = Log(server)
    for body in (b"--bb\r\nno headers end", b"garbage", b"--bb\r\nContent-Disposition: form-data\r\n\r\nx"):
        status, _, answer = request(server, "POST", "/v1/embed", body,
                                    {"Content-Type": "multipart/form-data; boundary=bb", **AUTH})
        assert status in (200, 400), answer
    _answers_and_logs_nothing(server, log)


def test_errors_name_the_clients_file_not_the_servers_spool_file(server):
    body, kind = multipart([("file", "mine.jpg", b"not a jpeg"), ("text", "", "a dog")])
    status, _, answer = request(server, "POST", "/v1/embed", body, {"Content-Type": kind, **AUTH})
    sent = json.loads(answer)["results"][0]
    status, answer = post(server, b'{"inputs":[{"data":"AAAA","filename":"sent.jpg"}]}')
    as_json = answer["results"][0]
    assert (sent["input"], as_json["input"]) == ("mine.jpg", "sent.jpg")
    assert "'mine.jpg'" in sent["error"] and "'sent.jpg'" in as_json["error"], (sent, as_json)
    assert "bind-serve-" not in sent["error"] + as_json["error"]


def test_an_unknown_kind_is_told_the_http_way(server):
    body, kind = multipart([("file", "a.xyz", b"?")])
    status, _, answer = request(server, "POST", "/v1/embed", body, {"Content-Type": kind, **AUTH})
    error = json.loads(answer)["results"][0]["error"]
    assert error.startswith("unknown extension '.xyz'; send a modality field with one of: image") and "--as" not in error


def test_a_fifo_is_called_a_fifo(server, tmp_path):
    fifo = tmp_path / "stream.jpg"
    os.mkfifo(fifo)
    status, answer = post(server, json.dumps({"inputs": [{"path": str(fifo)}]}).encode())
    assert status == 200 and answer["results"][0]["error"].startswith("is a named pipe (FIFO)")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_read_in_any_case(server, scheme):
    assert request(server, "GET", "/v1/models", headers={"Authorization": f"{scheme} {TOKEN}"})[0] == 200
    assert request(server, "GET", "/v1/models", headers={"Authorization": f"{scheme} {TOKEN.upper()}"})[0] == 401
    assert request(server, "GET", "/v1/models", headers={"Authorization": f"Basic {TOKEN}"})[0] == 401


def _gone(server: Served) -> int:
    """How many /v1/embed requests were left by their client (status 499)."""
    text = request(server, "GET", "/metrics", headers=AUTH)[2].decode()
    found = re.search(r'^bind_requests_total\{route="/v1/embed",status="499"\} (\d+)$', text, re.M)
    return int(found.group(1)) if found else 0


def test_a_client_that_goes_away_leaves_the_log_quiet(server):
    log = Log(server)
    gone_before = _gone(server)
    body = json.dumps({"inputs": [{"text": "left early"}], "cache": False}).encode()
    post_and_leave(server, body, f"Authorization: Bearer {TOKEN}\r\n")  # within the 300 ms wait
    deadline = time.monotonic() + 20
    while _gone(server) == gone_before:
        assert time.monotonic() < deadline, "the server did not see the client go"
        time.sleep(0.05)
    _answers_and_logs_nothing(server, log)
    assert log.new() == ""


def test_a_size_limit_of_zero_is_a_usage_error(tmp_path):
    (tmp_path / "taken").write_text("")  # were the limit taken, this socket path would refuse instead
    for option in ("--max-body-mb", "--max-file-mb"):
        for size in ("0", "-1", "1e-9", "nan"):
            done = bind("serve", "--socket", tmp_path / "taken", option, size)
            assert done.exit_code == 2 and option in done.stderr and "give a finite size above 0" in done.stderr, done.stderr


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_address_is_printed_in_brackets(tmp_path):
    served = start(tmp_path, "--host", "::1", "--port", "0")
    try:
        found = re.search(r"and (http://\S+)$", served.err.read_text(), re.M)
        assert found and re.fullmatch(r"http://\[::1\]:\d+", found.group(1)), served.err.read_text()
    finally:
        assert served.stop() == 0


def test_a_file_name_and_a_text_that_are_not_utf8_fail_or_work_alone_through_the_server(server, tmp_path):
    """`bind embed odd/*` with `caf\\xe9.jpg` among them: the same rows and errors as in-process."""
    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")
    odd.write_bytes(Path(IMG).read_bytes())
    args = ("embed", odd, IMG, "--text", os.fsdecode(b"caf\xe9"), "-f", "jsonl", "--no-cache")
    served = bind(*args, "--server", f"unix:{server.sock}", env={"BIND_TOKEN": TOKEN})
    here = bind(*args, "--no-server")
    assert "served at" in served.stderr
    assert served.exit_code == here.exit_code == 1, served.stderr
    assert [r["input"] for r in jsonl(served.stdout)] == [r["input"] for r in jsonl(here.stdout)] == [
        "$'" + str(tmp_path) + "/caf\\xe9.jpg'", IMG]
    error = "bind: $'caf\\xe9': not valid UTF-8 (byte 0xe9 at character 4); give the text in UTF-8"
    assert error in served.stderr.splitlines() and error in here.stderr.splitlines()
