"""Content hashes: streamed over the whole file, with progress, and the same for texts."""

from __future__ import annotations

import hashlib

from bindcli._util import hashing


def test_sha256_file_streams_the_whole_content_and_reports_progress(tmp_path):
    data = bytes(range(256)) * 9000  # > two 1 MiB blocks
    (tmp_path / "f.bin").write_bytes(data)
    heard = []
    digest = hashing.sha256_file(tmp_path / "f.bin", lambda *report: heard.append(report))
    assert digest == hashlib.sha256(data).hexdigest()
    assert heard == [("f.bin", n, len(data)) for n in (hashing.BLOCK, 2 * hashing.BLOCK, len(data))]


def test_update_from_file_continues_a_running_hash(tmp_path):
    (tmp_path / "tail").write_bytes(b"tail")
    digest = hashlib.sha256(b"head ")
    assert hashing.update_from_file(digest, tmp_path / "tail") == 4
    assert digest.hexdigest() == hashlib.sha256(b"head tail").hexdigest()


def test_sha256_text_is_that_of_its_utf8_bytes():
    assert hashing.sha256_text("a dög") == hashlib.sha256("a dög".encode()).hexdigest()
