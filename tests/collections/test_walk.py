"""What `bind index` takes from a folder: every image suffix Pillow reads, bind's own outputs
left out (and said so), symlinked folders followed once."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from bindcli.errors import InputError
from bindcli.collections.ingest import walk
from bindcli.modality import Kind
from cli_support import MEDIA, bind


def test_jfif_avif_and_netpbm_are_images(tmp_path):
    image = Image.open(MEDIA / "dog_image.jpg").convert("RGB")
    for suffix in ("jfif", "ppm", "pgm", "avif"):
        image.save(tmp_path / f"dog.{suffix}", format={"jfif": "JPEG"}.get(suffix))
    found = sorted((p.name, k) for p, k in walk([tmp_path]))
    assert found == [(f"dog.{s}", Kind.IMAGE) for s in ("avif", "jfif", "pgm", "ppm")]
    result = bind("embed", tmp_path / "dog.avif", tmp_path / "dog.ppm", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr


def test_binds_own_outputs_are_skipped_and_reported(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    shutil.copy(MEDIA / "dog_image.jpg", root / "dog.jpg")
    assert bind("embed", root / "dog.jpg", "-o", root / "vectors.npy").exit_code == 0
    assert bind("embed", root / "dog.jpg", "--out-dir", root / "each").exit_code == 0
    np.save(root / "walk.npy", np.zeros((10, 6), np.float32))  # an IMU recording: no manifest
    skipped = []
    found = sorted(p.name for p, _ in walk([root], on_skip=skipped.append))
    assert found == ["dog.jpg", "walk.npy"]
    assert sorted(p.name for p in skipped) == ["dog.jpg.npy", "vectors.npy"]
    result = bind("index", root, "--db", tmp_path / "c.sqlite3")
    assert result.exit_code == 0, result.stderr
    assert "skipped 2 files bind wrote" in result.stderr
    assert "2 files" in result.stderr.splitlines()[-1]


def test_a_foreign_manifest_json_does_not_stop_the_walk(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps([1, 2]))
    shutil.copy(MEDIA / "dog_image.jpg", tmp_path / "dog.jpg")
    assert [p.name for p, _ in walk([tmp_path])] == ["dog.jpg"]


def test_symlinked_folders_are_followed_once_even_in_a_loop(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(MEDIA / "car_image.jpg", elsewhere / "car.jpg")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    shutil.copy(MEDIA / "dog_image.jpg", root / "sub" / "dog.jpg")
    os.symlink(elsewhere, root / "linked")
    os.symlink(root, root / "sub" / "loop")  # back up to the root: a loop
    os.symlink(root / "sub", root / "again")  # a folder reached twice
    found = [p for p, _ in walk([root])]
    assert sorted(found) == sorted([elsewhere / "car.jpg", root / "sub" / "dog.jpg"])


def test_a_file_reached_twice_is_found_once(tmp_path):
    shutil.copy(MEDIA / "dog_image.jpg", tmp_path / "dog.jpg")
    os.symlink(tmp_path / "dog.jpg", tmp_path / "latest.jpg")
    found = [p for p, _ in walk([tmp_path, tmp_path / "dog.jpg", tmp_path / "latest.jpg"])]
    assert found == [tmp_path / "dog.jpg"]
    result = bind("index", tmp_path, tmp_path / "latest.jpg", "--db", tmp_path / "c.sqlite3")
    assert result.exit_code == 0 and "1 files" in result.stderr, result.stderr


def test_a_uri_is_walked_by_the_rules_of_a_folder(tmp_path):
    """A URI root (here file://, listed through pyarrow as s3:// is) yields its objects as
    URIs with the listing's size and mtime, hidden, excluded and unknown names left out."""
    root = tmp_path / "media"
    for rel in ("a.jpg", "notes.xyz", ".hidden.jpg", "sub/b.wav", "sub/.h/c.jpg", "skip/d.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * len(rel))
    uri = root.as_uri()
    found = list(walk([uri + "/"], exclude=["skip"]))
    assert [(str(p), k) for p, k in found] == [(f"{uri}/a.jpg", Kind.IMAGE), (f"{uri}/sub/b.wav", Kind.AUDIO)]
    stat = (root / "sub/b.wav").stat()
    assert (found[1][0].stat().st_size, found[1][0].stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert [str(p) for p, _ in walk([f"{uri}/a.jpg", uri], exclude=["skip"])] == [f"{uri}/a.jpg", f"{uri}/sub/b.wav"]
    (missing,) = walk([f"{uri}/nothing-here"])
    assert str(missing) == f"{uri}/nothing-here: no such object or prefix"


def test_a_scheme_pyarrow_lacks_is_read_through_fsspec_and_an_unknown_one_is_named():
    import fsspec
    from bindcli.embed.object_store import fetch

    memory = fsspec.filesystem("memory")
    memory.pipe("/bind-walk/a.jpg", b"abc")
    memory.pipe("/bind-walk/sub/b.wav", b"abcd")
    try:
        found = [(str(p), k, p.stat().st_size) for p, k in walk(["memory://bind-walk"])]
        assert found == [("memory://bind-walk/a.jpg", Kind.IMAGE, 3), ("memory://bind-walk/sub/b.wav", Kind.AUDIO, 4)]
    finally:
        memory.rm("/bind-walk", recursive=True)
    (unknown,) = walk(["nosuchscheme://x/a.jpg"])
    assert str(unknown).startswith("nosuchscheme://x/a.jpg: no filesystem for this URI")
    with pytest.raises(InputError, match="^memory://bind-walk/gone.jpg: no such object or prefix$"):
        fetch("memory://bind-walk/gone.jpg", "unused")
