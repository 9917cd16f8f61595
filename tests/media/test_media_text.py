"""Text: CLIP BPE token ids exactly as upstream, and `.txt` files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bindcli.errors import InputError
from bindcli.media import load, tokenize
from bindcli.media.tokenizer import EOT, SOT
from bindcli.modality import Kind


def test_tokens_match_upstream(reference_texts, preprocessed):
    expected = preprocessed["text/tokens"]
    tokens = tokenize(reference_texts)
    assert tokens.dtype == torch.int64 and tokens.shape == (len(reference_texts), 77)
    np.testing.assert_array_equal(tokens.numpy(), expected)


def test_known_rows_and_long_text_keeps_eot():
    rows = tokenize(["A dog.", "", "word " * 100])
    assert rows[0, :5].tolist() == [SOT, 320, 1929, 269, EOT] and rows[0, 5:].eq(0).all()
    assert rows[1, :2].tolist() == [SOT, EOT]
    assert rows[2, 76] == EOT and rows[2].argmax() == 76 and rows[2].ne(0).all()


def test_single_string_is_refused():
    with pytest.raises(TypeError):
        tokenize("a dog")


def test_txt_file_equals_string(tmp_path):
    (tmp_path / "caption.txt").write_text("\ufeffA dog &amp; a  car\n", encoding="utf-8")
    out = load(tmp_path / "caption.txt", Kind.TEXT)
    assert out.shape == (77,) and out.dtype == torch.int64
    torch.testing.assert_close(out, tokenize(["A dog & a car"])[0])


def test_non_utf8_text_file(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load(tmp_path / "latin1.txt", Kind.TEXT)
