"""The output sink: exact float text, atomic files, stderr-only messages."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from bindcli._util import atomic, formats
from bindcli.errors import InputError, InputWarning, OutputError
from bindcli.cli.output import Output


def test_floats_round_trip_float32_exactly_and_stay_short():
    values = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    values[:3] = [1e-9, -3.4e38, 0.0]
    text = json.dumps(formats.floats(values))
    np.testing.assert_array_equal(np.array(json.loads(text), dtype=np.float32), values)
    assert len(text) < 1000 * 16


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out.json"
    atomic.write_file(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    atomic.write_file(tmp_path / "new" / "v.npy", formats.npy_bytes(np.ones(3, np.float32)))
    assert np.load(tmp_path / "new" / "v.npy").tolist() == [1, 1, 1]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path, umask):
    (tmp_path / "plain").write_text("x")
    atomic.write_file(tmp_path / "atomic", "x")
    assert _mode(tmp_path / "atomic") == _mode(tmp_path / "plain") == umask
    (tmp_path / "shared").write_text("old")
    os.chmod(tmp_path / "shared", 0o664)
    with atomic.atomic_path(tmp_path / "shared") as tmp:
        tmp.unlink()  # as a writer that makes its own, private file (safetensors) does
        tmp.write_bytes(b"new")
        os.chmod(tmp, 0o600)
    assert _mode(tmp_path / "shared") == 0o664  # a replaced file keeps its mode, as with open()


def test_a_partial_file_outlives_a_failed_block_unless_empty(tmp_path):
    target = tmp_path / "big.bin"
    for received in (b"", b"half"):
        with pytest.raises(OSError):
            with atomic.atomic_path(target, partial=".part") as tmp:
                assert tmp == tmp_path / "big.bin.part"
                tmp.write_bytes(tmp.read_bytes() + received)
                raise OSError("connection lost")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin.part"]
    with atomic.atomic_path(target, partial=".part") as tmp:
        tmp.write_bytes(tmp.read_bytes() + b" and the rest")
    assert target.read_bytes() == b"half and the rest" and not tmp.exists()


def test_an_unwritable_output_is_one_error_naming_it_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "notadir"
    blocker.write_text("a file, not a folder")
    for target in (blocker / "x.npy", blocker / "sub" / "x.npy"):
        with pytest.raises(OutputError) as caught:
            atomic.write_file(target, b"data")
        assert str(caught.value) == f"{target}: Not a directory"
    taken = tmp_path / "taken"
    taken.mkdir()  # a folder where the file should land: os.replace fails at the end
    with pytest.raises(OutputError) as caught:
        atomic.write_file(taken, "text")
    assert str(caught.value).startswith(f"{taken}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notadir", "taken"]
    assert list(taken.iterdir()) == []


def test_csv_and_jsonl_text():
    assert formats.csv_text(["a", "b"], [["x,y", 1]]) == 'a,b\n"x,y",1\n'
    assert formats.jsonl([{"é": 1}, {}]) == '{"é": 1}\n{}\n'


def test_messages_go_to_stderr_and_quiet_keeps_only_errors(capsys):
    loud, quiet = Output(), Output(quiet=True)
    loud.note("picked cpu")
    quiet.note("hidden")
    quiet.warn("careful")
    assert quiet.failed([InputError("a [1].jpg", "corrupt"), InputError("b.wav", "empty")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "bind: picked cpu", "bind: warning: careful", "bind: a [1].jpg: corrupt", "bind: b.wav: empty",
    ]


def test_input_warnings_from_any_thread_are_one_line_each_even_quiet(capsys):
    def load() -> None:
        warnings.warn(InputWarning("a.wav", "cut short"))

    others: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each warning once per place it is raised from
        warnings.showwarning = lambda message, *_: others.append(str(message))
        with Output(quiet=True).input_warnings():
            for _ in range(2):  # Python alone would show a repeated warning once
                worker = threading.Thread(target=load)
                worker.start()
                worker.join()
            warnings.warn("old", DeprecationWarning)
    assert capsys.readouterr().err.splitlines() == ["bind: warning: a.wav: cut short"] * 2
    assert others == ["old"]


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    with Output().progress(10, "Embedding") as advance:
        advance(5)
        advance(5, status="done")
    assert capsys.readouterr().err == ""


def test_a_symlink_given_as_the_output_is_written_through(tmp_path):
    real = tmp_path / "data" / "vectors.json"
    real.parent.mkdir()
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    atomic.write_file(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and _mode(real) == 0o640
    dangling = tmp_path / "next.json"
    dangling.symlink_to(tmp_path / "data" / "next-real.json")
    atomic.write_file(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "data" / "next-real.json").read_text() == "made"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["next-real.json", "vectors.json"]


def test_devices_and_pipes_are_written_to_directly(tmp_path):
    # devices are never written here: under root, a regression would replace /dev/null itself
    assert atomic.is_stream("/dev/null") and atomic.is_stream("/dev/stdout")
    assert not atomic.is_stream(tmp_path) and not atomic.is_stream(tmp_path / "new.json")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic.write_file(fifo, b"streamed")
    reader.join(timeout=30)
    assert received == [b"streamed"] and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_proc_self_fd_names_the_open_stdout(tmp_path):
    script = "from bindcli._util import atomic; atomic.write_file('/proc/self/fd/1', 'to stdout\\n')"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(atomic.__file__).parents[2])},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "to stdout\n", "")


def test_files_written_together_land_together_or_not_at_all(tmp_path):
    (tmp_path / "taken.json").mkdir()  # the second file cannot be put in place
    with pytest.raises(OutputError):
        atomic.write_files([(tmp_path / "taken", b"array"), (tmp_path / "taken.json", "{}")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.json"]


def test_bind_embed_streams_into_a_fifo_and_names_a_file_parent(tmp_path):
    from cli_support import bind, jsonl, media

    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    result = bind("embed", media("dog_image.jpg"), "-o", fifo)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.stderr
    assert [r["modality"] for r in jsonl(received[0])] == ["image"]
    (tmp_path / "file").write_text("x")
    result = bind("embed", media("dog_image.jpg"), "-o", tmp_path / "file" / "v.npy")
    assert result.exit_code == 1
    assert result.stderr == f"bind: {tmp_path / 'file' / 'v.npy'}: Not a directory\n"
