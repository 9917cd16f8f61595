"""Several processes meeting on a collection file that does not exist yet (`xargs -P`, two
`bind index DIR &`): the first use must work for all of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: waits on stdin until every process is ready, then opens the file, makes the collection
#: (whoever is first) and writes an item of its own
_CLIENT = """
import sys
import numpy as np
from bindcli.collections.store import Item, Store
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
with Store(sys.argv[1]) as store:
    coll = store.create_collection("c", "m", "model")  # a second one returns the first
    store.put_items(coll, [Item(sys.argv[2], "image", 1, 1, "ab", np.ones(4, np.float32))])
print("ok")
"""

PROCESSES, ROUNDS = 4, 2


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_file_all_succeed(tmp_path):
    for round_ in range(ROUNDS):
        db = tmp_path / f"fresh{round_}" / "bind.sqlite3"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CLIENT, str(db), f"/p/{n}.jpg"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for n in range(PROCESSES)
        ]
        try:
            for p in procs:  # all imported and waiting: now release them at once
                assert p.stdout.readline() == "ready\n"
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            results = [p.communicate(timeout=60) for p in procs]
        finally:
            for p in procs:
                p.kill()
        failures = [err for p, (_, err) in zip(procs, results) if p.returncode != 0]
        assert not failures, failures[0]
        from bindcli.collections.store import Store

        with Store(db) as store:
            assert len(store.collections()) == 1
            assert len(store.file_states(store.require("c"))) == PROCESSES
