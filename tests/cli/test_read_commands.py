"""Commands that only read a collection file never create one: a typo in --db is an error
naming the file, and listing what a missing file holds is an empty answer."""

from __future__ import annotations

import json

import pytest

from bindcli._util.folders import default_db_path
from cli_support import bind


@pytest.mark.parametrize("command", [
    ["search", "--text", "a dog"],
    ["collections", "info", "default"],
    ["collections", "remove", "default"],
])
def test_naming_a_missing_file_is_one_error_and_creates_nothing(tmp_path, command):
    typo = tmp_path / "typo.sqlite3"
    result = bind(*command, "--db", typo)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"bind: {typo}: no such collection file (`bind index` creates it)\n"
    assert list(tmp_path.iterdir()) == []


def test_listing_a_missing_file_is_an_empty_answer_and_creates_nothing(tmp_path):
    for db in ([], ["--db", tmp_path / "new.sqlite3"]):
        listed = bind("collections", "list", "-f", "jsonl", *db)
        assert listed.exit_code == 0 and listed.stdout == "" and "no collections" in listed.stderr
        info = bind("cache", "info", "-f", "json", *db)
        assert info.exit_code == 0, info.stderr
        assert (json.loads(info.stdout)["entries"], json.loads(info.stdout)["file_bytes"]) == (0, 0)
    assert not default_db_path().exists() and list(tmp_path.iterdir()) == []


def test_search_on_the_default_file_before_any_index_creates_nothing():
    result = bind("search", "--text", "a dog")
    assert result.exit_code == 1 and "no such collection file" in result.stderr
    assert not default_db_path().exists()
