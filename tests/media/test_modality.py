"""The modality registry: one complete record per kind, and what is derived from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bindcli.errors import UnknownModalityError
from bindcli.modality import EXTENSIONS, MODALITIES, TOWERS, Kind, detect, sniff

MEDIA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "imagebind-reference" / "media"


def test_every_kind_has_one_complete_record():
    assert set(MODALITIES) == set(Kind)
    for kind, modality in MODALITIES.items():
        assert modality.kind is kind and modality.tower in TOWERS
        assert modality.templates and all("{}" in t for t in modality.templates)
        assert callable(modality._loader()), kind


def test_extensions_are_derived_and_unambiguous():
    claimed = [ext for m in MODALITIES.values() for ext in m.extensions]
    assert len(claimed) == len(set(claimed)) == len(EXTENSIONS)
    assert detect("x.JPG") is Kind.IMAGE and detect("x.npy") is Kind.IMU
    assert detect("x.png", "depth") is Kind.DEPTH
    with pytest.raises(UnknownModalityError, match="unknown extension '.xyz'"):
        detect("x.xyz")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One real file per format bind reads that a leading signature identifies, made by the
    libraries that write them (the extension is the answer `sniff` must give)."""
    import soundfile
    from PIL import Image

    folder = tmp_path_factory.mktemp("sniff")
    picture = Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3))
    for ext in (".jpg", ".png", ".gif", ".webp", ".bmp", ".tif"):
        picture.save(folder / f"image{ext}")
    sound = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for ext in (".wav", ".flac", ".ogg"):
        soundfile.write(folder / f"sound{ext}", sound, 16000)
    np.save(folder / "imu.npy", np.zeros((6, 2000), np.float32))
    np.savez(folder / "imu.npz", imu=np.zeros((6, 2000), np.float32))
    shutil.copy(MEDIA_DIR / "synthetic_0.mp4", folder / "video.mp4")
    (folder / "note.txt").write_text("BMW and a dog, in UTF-8: é", encoding="utf-8")
    return sorted(folder.iterdir())


def test_sniff_reads_the_kind_from_the_first_bytes(files):
    for path in files:
        assert sniff(path.read_bytes()) == path.suffix, path.name


@pytest.mark.parametrize(("head", "extension"), [
    (b"\0\0\0\x1cftypM4A \0\0\0\0", ".m4a"),
    (b"\0\0\0\x1cftypqt  \0\0\0\0", ".mov"),
    (b"\0\0\0\x1cftypavif\0\0\0\0", ".avif"),
    (b"\0\0\0\x1cftypisom\0\0\0\0", ".mp4"),
    (b"RIFF\0\0\0\0AVI LIST", ".avi"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", ".webm"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", ".mkv"),
    (b"ID3\x04\0\0\0\0\0\0", ".mp3"),
    (b"\xff\xfb\x90\x64\0\0", ".mp3"),
    (b"\xff\xf1\x50\x80\0\0", ".aac"),
])
def test_sniff_knows_containers_by_their_headers(head, extension):
    assert sniff(head) == extension


@pytest.mark.parametrize("data", [b"", b"   \n", b"\0\x01\x02\x03binary", b"RIFF\0\0\0\0XXXX", "é".encode("latin-1")])
def test_sniff_says_nothing_of_bytes_it_cannot_place(data):
    assert sniff(data) is None


def test_every_extension_sniff_gives_is_a_kind_bind_reads(files):
    heads = [b"\0\0\0\x1cftyp" + brand for brand in (b"M4A ", b"M4B ", b"qt  ", b"avif", b"avis", b"isom")]
    heads += [b"RIFF\0\0\0\0" + form for form in (b"WAVE", b"WEBP", b"AVI ")]
    found = {sniff(data) for data in heads + [path.read_bytes() for path in files]}
    assert found <= set(EXTENSIONS)
