"""Query expressions: the syntax, the combined vector, and leaving the query's own files out."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bindcli.errors import QueryError, UsageError
from bindcli.query import Query, Term
from bindcli.collections.store import Hit
from cli_support import MEDIA, bind, jsonl, media


def test_parse_operators_weights_and_text_terms():
    query = Query.parse(["a.jpg", "-", "0.5:b.wav", "+", "c.png", "d.png"], ["-0.3:snow", "sky"])
    assert query.terms == (
        Term("a.jpg", 1.0), Term("b.wav", -0.5), Term("c.png", 1.0), Term("d.png", 1.0),
        Term("snow", -0.3, literal=True), Term("sky", 1.0, literal=True),
    )
    assert query.files == ["a.jpg", "b.wav", "c.png", "d.png"] and query.texts == ["snow", "sky"]


def test_parse_keeps_an_existing_file_whose_name_looks_weighted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "2:odd.jpg").write_bytes(b"")
    assert Query.parse(["2:odd.jpg"]).terms == (Term("2:odd.jpg", 1.0),)


@pytest.mark.parametrize("tokens", [["a.jpg", "-"], ["a.jpg", "+", "-", "b.jpg"], []])
def test_parse_rejects_dangling_operators_with_a_usage_error(tokens):
    with pytest.raises(QueryError) as caught:
        Query.parse(tokens)
    assert isinstance(caught.value, UsageError)


def test_leave_out_asks_for_more_until_k_remain(tmp_path):
    own = tmp_path / "q.jpg"
    own.write_bytes(b"")
    link = tmp_path / "link.jpg"
    link.symlink_to(own)
    query = Query.parse([str(link)])
    ranked = [Hit(str(own), "image", 0.9), Hit(str(link), "image", 0.8)] + [
        Hit(str(tmp_path / f"{i}.jpg"), "image", 0.5 - i / 100) for i in range(5)
    ]
    asked = []

    def search(n):
        asked.append(n)
        return ranked[:n]

    kept = query.leave_out(search, 2, lambda h: h.path)
    assert [h.path for h in kept] == [str(tmp_path / "0.jpg"), str(tmp_path / "1.jpg")]
    assert asked == [3, 6]  # the query's real file came back twice, under two names


def test_a_symlinked_query_is_not_its_own_best_hit(tmp_path, monkeypatch):
    """The query file reached through a symlink is still the query: neither arith over a
    folder nor search over a collection may return it."""
    monkeypatch.setenv("BIND_DATA_DIR", str(tmp_path / "data"))
    link = tmp_path / "dog_link.jpg"
    link.symlink_to(os.path.join(MEDIA, "dog_image.jpg"))
    assert bind("index", MEDIA, "-q").exit_code == 0
    found = bind("search", str(link), "--modality", "image", "-k", "3", "-f", "jsonl")
    assert found.exit_code == 0, found.stderr
    paths = [os.path.realpath(h["path"]) for h in jsonl(found.stdout)]
    assert len(paths) == 3 and os.path.realpath(media("dog_image.jpg")) not in paths
    gallery = bind("arith", str(link), "-g", MEDIA, "-k", "3", "-f", "jsonl")
    paths = [os.path.realpath(h["path"]) for h in jsonl(gallery.stdout)]
    assert len(paths) == 3 and os.path.realpath(media("dog_image.jpg")) not in paths


def test_vector_combines_the_terms_embeddings():
    class Fake:
        def __init__(self, raw):
            self.raw = np.asarray(raw, np.float32)

    query = Query.parse([], ["a", "-1:b"])
    np.testing.assert_allclose(query.vector([Fake([3, 0]), Fake([0, 10])]), [2 ** -0.5, -(2 ** -0.5)])


@pytest.mark.parametrize("text, term", [
    ("10:30 train", Term("10:30 train", 1.0, literal=True)),  # a time, not weight 10
    ("16:9 screen", Term("16:9 screen", 1.0, literal=True)),
    ("0.5: spaced", Term("0.5: spaced", 1.0, literal=True)),
    ("2e-1:dog", Term("dog", 0.2, literal=True)),
    ("-.5:cage", Term("cage", -0.5, literal=True)),
    (r"\0.5:dog", Term("0.5:dog", 1.0, literal=True)),  # a backslash makes the rest the text
    (r"0.5:\3 dogs", Term("3 dogs", 0.5, literal=True)),
    (r"\\dog", Term(r"\dog", 1.0, literal=True)),
    ("note:dog", Term("note:dog", 1.0, literal=True)),
])
def test_only_a_number_colon_and_a_word_is_a_weight(text, term):
    assert Query.parse([], [text]).terms == (term,)


@pytest.mark.parametrize("token", ["nan:dog", "inf:dog", "-Infinity:dog", "1e999:dog"])
def test_non_finite_weights_are_refused(token):
    with pytest.raises(QueryError, match="finite"):
        Query.parse([], [token])
    with pytest.raises(QueryError, match="finite"):
        Query.parse([token])


def test_a_weighted_file_whose_name_starts_with_a_digit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "2.jpg").write_bytes(b"")
    assert Query.parse(["0.5:2.jpg"]).terms == (Term("2.jpg", 0.5),)


def test_search_refuses_a_nan_weight_with_a_usage_error():
    result = bind("search", "--text", "nan:dog")
    assert result.exit_code == 2 and "finite" in result.stderr and "NaN" not in result.stdout
