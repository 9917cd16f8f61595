"""The page's thumbnails: made once per state of a file, within their folder's bound."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from PIL import Image

from bindcli.errors import InputError
from bindcli.serve.thumbs import SIDE, Thumbnails
from cli_support import MEDIA


def test_a_thumbnail_is_made_once_and_again_when_the_file_changes(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    photo = tmp_path / "a.jpg"
    shutil.copy(MEDIA / "dog_image.jpg", photo)
    first = thumbs.get(str(photo), "image")
    assert max(Image.open(io.BytesIO(first)).size) == SIDE
    assert len(list((tmp_path / "thumbs").iterdir())) == 1
    assert thumbs.get(str(photo), "image") == first
    shutil.copy(MEDIA / "car_image.jpg", photo)
    os.utime(photo, ns=(1, 1))
    assert thumbs.get(str(photo), "image") != first
    assert len(list((tmp_path / "thumbs").iterdir())) == 2


def test_the_folder_keeps_under_its_bound_dropping_the_least_recently_used(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs", max_bytes=40_000)
    names = ["dog_image.jpg", "car_image.jpg", "bird_image.jpg", "synthetic_gray_0.jpg", "synthetic_rgba_0.png"]
    for n, name in enumerate(names):
        copy = tmp_path / name
        shutil.copy(MEDIA / name, copy)
        os.utime(copy, ns=(n, n))
        thumbs.get(str(copy), "image")
        total = sum(f.stat().st_size for f in (tmp_path / "thumbs").iterdir())
        assert total <= 40_000
    kept = len(list((tmp_path / "thumbs").iterdir()))
    assert 1 <= kept < len(names)


def test_what_cannot_be_drawn_says_why(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    with pytest.raises(InputError, match="has no picture"):
        thumbs.get(str(MEDIA / "bird_audio.wav"), "audio")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nothing")
    with pytest.raises(InputError, match="cannot read image"):
        thumbs.get(str(bad), "image")
    poster = Image.open(io.BytesIO(thumbs.get(str(MEDIA / "synthetic_0.mp4"), "video")))
    assert poster.format == "JPEG"
