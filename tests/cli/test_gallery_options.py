"""`-k 0` means every result in search, arith and classify alike; `arith` ranks a collection of
any collection file (`--db`, `-c`), as `search` does."""

from __future__ import annotations

import pytest

from cli_support import bind, copy_media, jsonl

IMAGES = ["dog_image.jpg", "car_image.jpg", "bird_image.jpg", "synthetic_gray_0.jpg"]


@pytest.fixture
def indexed(tmp_path):
    root = copy_media(tmp_path / "photos", IMAGES)
    db = tmp_path / "trip.sqlite3"
    assert bind("index", root, "--db", db, "-c", "trip").exit_code == 0
    return root, db


def test_top_k_zero_means_all_in_search_and_arith(indexed):
    root, db = indexed
    everything = bind("search", root / "dog_image.jpg", "--db", db, "-c", "trip", "-k", "0")
    assert everything.exit_code == 0, everything.stderr
    assert len(jsonl(everything.stdout)) == 3  # all but the query itself
    gallery = bind("arith", root / "dog_image.jpg", "-g", root, "-k", "0", "-f", "jsonl")
    assert gallery.exit_code == 0, gallery.stderr
    assert len(jsonl(gallery.stdout)) == 3
    help_text = bind("search", "--help").stdout
    assert "0: all" in help_text and "0: all" in bind("arith", "--help").stdout


def test_arith_ranks_a_collection_of_another_file(indexed):
    root, db = indexed
    query = [root / "dog_image.jpg", "-", "0.5:" + str(root / "car_image.jpg")]
    by_option = bind("arith", *query, "--db", db, "-c", "trip", "-k", "0", "-f", "jsonl")
    assert by_option.exit_code == 0, by_option.stderr
    by_name = bind("arith", *query, "--db", db, "-g", "trip", "-k", "0", "-f", "jsonl")
    from_folder = bind("arith", *query, "-g", root, "-k", "0", "-f", "jsonl")
    paths = [r["path"] for r in jsonl(from_folder.stdout)]
    assert [r["path"] for r in jsonl(by_option.stdout)] == paths == [
        r["path"] for r in jsonl(by_name.stdout)
    ]
    assert str(root / "dog_image.jpg") not in paths and len(paths) == 2
    missing = bind("arith", *query, "--db", db, "-c", "nope")
    assert missing.exit_code == 1 and "no collection 'nope'" in missing.stderr
