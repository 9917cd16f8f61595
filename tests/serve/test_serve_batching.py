"""The server's batcher alone, with a stand-in encoder: batches across callers, requests take
turns on the loaders, a failing batch fails only the input at fault, cancelled inputs drop."""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

from bindcli.errors import InputError
from bindcli.embed.inputs import Input
from bindcli.serve.batching import Batcher


class Recorder:
    """Encodes a text's token row as its sum; fails any batch holding the token sum `poison`."""

    def __init__(self, poison: int | None = None, hold: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.poison, self.hold = poison, hold

    def prepare(self, towers: frozenset[str]) -> None:
        pass

    def encode(self, tower: str, batch) -> np.ndarray:
        if self.hold is not None:
            self.hold.wait(10)
        sums = [int(t.sum()) for t in batch]
        if self.poison in sums:
            raise RuntimeError("bad batch")
        self.batches.append(sums)
        return np.array([[s, 1.0] for s in sums], dtype=np.float32)


def batcher(encoder: Recorder, **kw) -> Batcher:
    embedder = types.SimpleNamespace(encoder=encoder, options=None, model_id="m", cache=None)
    return Batcher(embedder, **kw)  # type: ignore[arg-type]


def texts(*words: str) -> list[tuple[Input, str]]:
    return [(Input.text(w), w) for w in words]


def test_inputs_of_separate_callers_share_a_batch_and_each_gets_its_own_vector():
    encoder = Recorder()
    b = batcher(encoder, max_batch=8, max_wait=0.5)
    try:
        futures = [b.submit(texts(f"word {n}"))[0] for n in range(8)]
        results = [f.result(timeout=10) for f in futures]
    finally:
        b.close()
    assert [len(batch) for batch in encoder.batches] == [8]
    assert [r.input.source for r in results] == [f"word {n}" for n in range(8)]
    assert len({float(r.raw[0]) for r in results}) == 8


def test_a_failing_batch_is_retried_so_only_the_bad_input_fails():
    from bindcli import media

    poison = int(media.tokenize(["poison"])[0].sum())
    encoder = Recorder(poison=poison)
    b = batcher(encoder, max_batch=4, max_wait=0.2)
    try:
        futures = b.submit(texts("a", "poison", "b", "c"))
        with pytest.raises(InputError, match="poison: could not be encoded"):
            futures[1].result(timeout=10)
        assert all(f.result(timeout=10).sha256 for f in (futures[0], futures[2], futures[3]))
    finally:
        b.close()


def test_a_big_request_does_not_hold_up_a_small_one():
    hold = threading.Event()
    encoder = Recorder(hold=hold)
    b = batcher(encoder, max_batch=1, max_wait=0, workers=2)
    try:
        big = b.submit(texts(*(f"big number {n}" for n in range(200))))
        small = b.submit(texts("small"))[0]
        hold.set()
        for f in [small, *big]:
            f.result(timeout=30)
    finally:
        b.close()
    order = [s for batch in encoder.batches for s in batch]
    assert order.index(int(small.result().raw[0])) < 20  # first in, first out: 200th


def test_cancelled_inputs_are_dropped_not_encoded():
    hold = threading.Event()
    encoder = Recorder(hold=hold)
    b = batcher(encoder, max_batch=1, max_wait=0, workers=1)
    try:
        first = b.submit(texts("first"))[0]
        rest = b.submit(texts(*(f"gone {n}" for n in range(20))))
        for f in rest:
            f.cancel()
        hold.set()
        first.result(timeout=10)
    finally:
        b.close()
    assert b.metrics.dropped >= 19 and len(encoder.batches) <= 2


def test_the_embedders_own_cache_answers_across_threads(tmp_path):
    """The batcher looks up and stores in the cache its embedder opened (on this thread, not
    the loaders' or the model's): a second request for the same text is not encoded again."""
    from bindcli.collections.store import Store
    from bindcli.embed.embedder import Embedder
    from bindcli.model.config import load_config
    from bindcli.model.placement import Placement

    encoder = Recorder()
    embedder = Embedder(
        load_config("imagebind_huge"), tmp_path / "unused.pth", Placement("cpu", "fp32"),  # type: ignore[arg-type]
        cache=Store(tmp_path / "cache.sqlite3"), owns_cache=True, encoder=encoder, known_id="m",
    )
    answers = []
    with embedder:
        for _ in range(2):
            b = Batcher(embedder, max_batch=1, max_wait=0)
            try:
                answers.append(b.submit(texts("a dog"))[0].result(timeout=10))
            finally:
                b.close()  # waits for the store
    first, second = answers
    assert not first.cached and second.cached and len(encoder.batches) == 1
    np.testing.assert_array_equal(first.raw, second.raw)
    assert first.sha256 == second.sha256


def test_the_socket_is_private_replaces_a_stale_one_and_refuses_a_live_one(tmp_path):
    import socket

    from bindcli.errors import UsageError
    from bindcli.serve.server import AlreadyRunning, unix_socket

    path = tmp_path / "run" / "s.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a server killed with -9 leaves this behind
    stale.close()
    with unix_socket(path) as live:
        assert path.stat().st_mode & 0o777 == 0o600 and live.fileno() >= 0
        with pytest.raises(AlreadyRunning, match="already running"):
            with unix_socket(path):
                pass
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(UsageError, match="not a socket"):
        with unix_socket(path):
            pass
