"""`bind embed` writes each JSONL/CSV row to stdout as soon as its batch is done, in input
order, so a pipeline starts at once and a crash keeps every row already embedded."""

from __future__ import annotations

import csv
import io
import os
import threading

import pytest

from bindcli.embed.embedder import Embedder
from cli_support import bind, jsonl, media

FILES = [media("dog_image.jpg"), media("car_image.jpg"), media("bird_image.jpg")]


@pytest.fixture
def crash_on_third_batch(monkeypatch):
    """The encoder dies (as a killed or out-of-memory run would) on its third batch, after
    checking that the earlier batches' rows are on stdout already."""
    real, seen = Embedder._run, []

    def run(self, tower, batch):
        seen.append(tower)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(self, tower, batch)

    monkeypatch.setattr(Embedder, "_run", run)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_rows_already_embedded_survive_a_crash(fmt, crash_on_third_batch):
    result = bind("embed", *FILES, "-f", fmt, "-b", "1", "--no-cache")
    assert result.exit_code == 130 and "interrupted" in result.stderr
    if fmt == "jsonl":
        assert [r["input"] for r in jsonl(result.stdout)] == FILES[:2]
    else:
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0][:3] == ["input", "modality", "e0"] and [r[0] for r in rows[1:]] == FILES[:2]


def test_streamed_rows_keep_input_order_with_a_failure_between(tmp_path):
    result = bind("embed", FILES[0], tmp_path / "missing.jpg", FILES[1], "-t", "a dog", "-b", "1")
    assert result.exit_code == 1 and "missing.jpg: no such file" in result.stderr
    assert [r["input"] for r in jsonl(result.stdout)] == [FILES[0], FILES[1], "a dog"]


def test_a_fifo_named_by_o_gets_the_rows_as_they_come(tmp_path, crash_on_third_batch):
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    result = bind("embed", *FILES, "-o", fifo, "-b", "1", "--no-cache")
    reader.join(timeout=60)
    assert result.exit_code == 130
    assert [r["input"] for r in jsonl(received[0])] == FILES[:2]
