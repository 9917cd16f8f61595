"""Incremental indexing with a counting stand-in encoder: what gets embedded, reused, removed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from bindcli.errors import InputError
from bindcli.collections.ingest import index, walk
from bindcli.embed.embedder import BaseEmbedder
from bindcli.embed.stages import Embedding
from bindcli._util.hashing import sha256_file
from bindcli.collections.store import Store


class CountingEncoder(BaseEmbedder):
    """Embeds a file as a vector derived from its bytes, yielding results in reverse order;
    remembers every path it encoded, the hashes it was told, and how often it was run.
    `cache` maps (sha256, kind) to vectors it answers with instead, as the Embedder's cache."""

    def __init__(self, fail: str = "", cache: dict | None = None) -> None:
        self.calls: list[str] = []
        self.hashes: dict[str, str] = {}
        self.runs = 0
        self.fail = fail
        self.cache = cache or {}

    def _results(self, todo, progress):
        self.runs += 1
        for n, inp, sha in reversed(todo):
            path = inp.source
            self.hashes[path] = sha
            if (sha, inp.kind.value) in self.cache:
                yield n, Embedding(inp, sha, self.cache[(sha, inp.kind.value)], cached=True)
                continue
            self.calls.append(Path(path).name)
            if self.fail and self.fail in path:
                yield n, InputError(path, "corrupt")
                continue
            seed = int(hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8], 16)
            yield n, Embedding(inp, sha, np.random.default_rng(seed).standard_normal(8).astype(np.float32))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    for name, data in {
        "a.jpg": b"image a",
        "b.wav": b"audio b",
        "c.mp4": b"video c",
        "d.txt": b"a dog barking",
        "sub/e.png": b"image e",
        "notes.md": b"not media",
        ".hidden.jpg": b"hidden image",
    }.items():
        (root / name).write_bytes(data)
    (root / ".git").mkdir()
    (root / ".git" / "x.jpg").write_bytes(b"in a hidden folder")
    return root


def _run(db, coll, roots, enc, **kw):
    """Index with commits every 2 files."""
    return index(db, coll, list(walk(roots, **kw)), roots, lambda: enc, batch_size=2)


def test_reindex_embeds_only_new_or_changed_content(tmp_path, folder):
    with Store(tmp_path / "c.sqlite3") as db:
        coll = db.create_collection("c", "model-a", "test")
        enc = CountingEncoder()
        first = _run(db, coll, [folder], enc)
        assert sorted(enc.calls) == ["a.jpg", "b.wav", "c.mp4", "d.txt", "e.png"]
        assert enc.runs == 1 and enc.hashes == {p: sha256_file(p) for p in enc.hashes}
        assert first.embedded == {"image": 2, "audio": 1, "video": 1, "text": 1}
        assert db.counts(coll) == {"audio": 1, "image": 2, "text": 1, "video": 1}

        (folder / "a.jpg").write_bytes(b"image a, edited")  # changed
        os.rename(folder / "b.wav", folder / "sub" / "renamed.wav")  # renamed
        (folder / "c.mp4").unlink()  # deleted
        (folder / "copy.png").write_bytes(b"image e")  # duplicate content
        enc.calls.clear()
        second = _run(db, coll, [folder], enc)
        assert enc.calls == ["a.jpg"]
        assert second.embedded == {"image": 1}
        assert second.reused == {"audio": 1, "image": 1}
        assert second.unchanged == {"text": 1, "image": 1}
        assert second.removed == 2  # c.mp4 and the old b.wav
        states = db.file_states(coll)
        assert states[str(folder / "c.mp4")].deleted
        assert not states[str(folder / "sub" / "renamed.wav")].deleted
        assert db.counts(coll) == {"audio": 1, "image": 3, "text": 1}

        enc.calls.clear()
        third = _run(db, coll, [folder], enc)
        assert enc.calls == [] and third.removed == 0 and sum(third.unchanged.values()) == 5


def test_vectors_other_commands_embedded_come_from_the_cache(tmp_path, folder):
    cache = {
        (sha256_file(folder / "a.jpg"), "image"): np.ones(8, np.float32),
        (sha256_file(folder / "b.wav"), "image"): np.ones(8, np.float32),  # another kind
    }
    with Store(tmp_path / "c.sqlite3") as db:
        enc = CountingEncoder(cache=cache)
        report = _run(db, db.create_collection("c", "model-a", "test"), [folder], enc)
        assert sorted(enc.calls) == ["b.wav", "c.mp4", "d.txt", "e.png"]
        assert report.reused == {"image": 1}


def test_a_bad_file_is_reported_and_skipped_and_retried_next_time(tmp_path, folder):
    with Store(tmp_path / "c.sqlite3") as db:
        coll = db.create_collection("c", "model-a", "test")
        report = _run(db, coll, [folder], CountingEncoder(fail="b.wav"))
        assert [e.source for e in report.failed] == [str(folder / "b.wav")]
        assert "audio" not in db.counts(coll) and sum(db.counts(coll).values()) == 4
        enc = CountingEncoder()
        _run(db, coll, [folder], enc)
        assert enc.calls == ["b.wav"]


def test_walk_skips_hidden_unknown_and_excluded_files(folder):
    names = lambda found: sorted(p.relative_to(folder).as_posix() for p, _ in found)  # noqa: E731
    assert names(walk([folder])) == ["a.jpg", "b.wav", "c.mp4", "d.txt", "sub/e.png"]
    assert names(walk([folder], exclude=["*.wav", "sub"])) == ["a.jpg", "c.mp4", "d.txt"]
    assert names(walk([folder], exclude=["sub/*.png"])) == ["a.jpg", "b.wav", "c.mp4", "d.txt"]
    assert ".hidden.jpg" in names(walk([folder], include_hidden=True))
    assert ".git/x.jpg" in names(walk([folder], include_hidden=True))


def test_files_named_directly_are_taken_or_reported(folder):
    found = list(walk([folder / ".hidden.jpg", folder / "notes.md", folder / "nope"]))
    assert found[0] == (folder / ".hidden.jpg", found[0][1]) and found[0][1].value == "image"
    assert isinstance(found[1], InputError) and "unknown extension" in found[1].reason
    assert isinstance(found[2], InputError) and found[2].reason == "no such file or folder"


def test_only_files_under_the_walked_roots_are_marked_deleted(tmp_path, folder):
    with Store(tmp_path / "c.sqlite3") as db:
        coll = db.create_collection("c", "model-a", "test")
        _run(db, coll, [folder], CountingEncoder())
        report = _run(db, coll, [folder / "sub"], CountingEncoder())
        assert report.removed == 0 and sum(db.counts(coll).values()) == 5


def test_results_are_committed_as_they_arrive_from_one_embedder_run(tmp_path, folder):
    """One embed call for the whole run; its first results are committed (in batches of 2)
    while it is still working, which is what a killed run keeps."""
    with Store(tmp_path / "c.sqlite3") as db:
        coll = db.create_collection("c", "model-a", "test")
        committed_meanwhile = []

        class Watched(CountingEncoder):
            def _results(self, todo, progress):
                for result in super()._results(todo, progress):
                    committed_meanwhile.append(sum(db.counts(coll).values()))
                    yield result

        progress = []
        found = list(walk([folder]))
        index(db, coll, found, [folder], Watched, batch_size=2,
              on_progress=lambda r: progress.append(sum(r.done().values())))
        assert committed_meanwhile == [0, 0, 2, 2, 4]
        assert progress == [2, 4, 5] and sum(db.counts(coll).values()) == 5


def test_a_folder_that_cannot_be_listed_keeps_its_items(tmp_path, folder, monkeypatch):
    """A listing that fails (permissions, a network blip on a bucket) says nothing about what
    the folder holds: its items stay; a folder that is gone loses them."""
    import bindcli.collections.ingest as indexer

    with Store(tmp_path / "c.sqlite3") as db:
        coll = db.create_collection("c", "model-a", "test")
        _run(db, coll, [folder], CountingEncoder())
        walk_folders = os.walk

        def failing(top, *args, onerror=None, **kw):  # `sub` cannot be read
            for entry in walk_folders(top, *args, onerror=onerror, **kw):
                if Path(entry[0]).name == "sub":
                    onerror(PermissionError(13, "Permission denied", entry[0]))
                    continue
                yield entry

        monkeypatch.setattr(indexer.os, "walk", failing)
        found = list(walk([folder]))
        assert [e.reason for e in found if isinstance(e, InputError)] == ["Permission denied"]
        report = index(db, coll, found, [folder], CountingEncoder, batch_size=2)
        assert report.removed == 0 and sum(db.counts(coll).values()) == 5
        monkeypatch.undo()
        (folder / "sub" / "e.png").unlink()
        (folder / "sub").rmdir()
        report = _run(db, coll, [folder / "sub"], CountingEncoder())
        assert report.removed == 1 and sum(db.counts(coll).values()) == 4
