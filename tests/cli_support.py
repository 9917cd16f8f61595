"""Running `bind` in-process for the CLI tests, always with the small fixture model at fp32."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner, Result

from bindcli.cli.app import app

FIXTURES = Path(__file__).parent / "fixtures" / "imagebind-reference"
MEDIA = FIXTURES / "media"
SMALL = {
    "BIND_MODEL_CONFIG": str(FIXTURES / "public_config.json"),
    "BIND_WEIGHTS": str(FIXTURES / "public.pth"),
    "BIND_PRECISION": "fp32",
    "BIND_DEVICE": "cpu",
}


CUT_SHORT = (
    "cut short: its header promises 32000 samples (2.00 s), the file holds 16000 (1.00 s); "
    "using what is there"
)


def cut_short_wav(folder: Path) -> tuple[Path, Path]:
    """A WAV whose header promises 2 s at 16 kHz but that holds only the first second, as a
    download cut off leaves it (its `CUT_SHORT` warning), and that first second written whole."""
    import soundfile

    sound = (0.5 * np.sin(np.arange(32000) / 7)).astype(np.float32)
    whole, first = folder / "whole.wav", folder / "first.wav"
    soundfile.write(whole, sound, 16000, subtype="PCM_16")
    soundfile.write(first, sound[:16000], 16000, subtype="PCM_16")
    cut = folder / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:-16000 * 2])
    return cut, first


def bind(*args: str | Path, input: str | bytes | None = None, env: dict | None = None) -> Result:
    """`bind ARGS` with the small model; stdout and stderr kept apart."""
    environ = {**SMALL, "NO_COLOR": "1", "COLUMNS": "120", **(env or {})}
    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=environ)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def embedded(*args: str | Path) -> list[np.ndarray]:
    """`bind embed ARGS`'s vectors (unit length), in order."""
    out = bind("embed", *args, "-f", "jsonl")
    assert out.exit_code == 0, out.stderr
    return [np.array(r["embedding"]) for r in jsonl(out.stdout)]


def index_summary(result: Result) -> dict[str, int]:
    """The counts in `bind index`'s closing line: embedded, reused, unchanged, removed, failed."""
    line = result.stderr.strip().splitlines()[-1]
    tail = line.rsplit(";", 1)[1]
    return {word: int(n) for n, word in (part.split() for part in tail.split(","))}


def reference(key: str) -> np.ndarray:
    """Upstream's output for a media file (end_to_end.npz), normalised."""
    vector = np.load(FIXTURES / "end_to_end.npz")[key]
    return vector / np.linalg.norm(vector)


def copy_media(folder: Path, names: list[str]) -> Path:
    """`folder`, made, holding copies of these fixture media files."""
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(MEDIA / name, folder / name)
    return folder


def media(name: str) -> str:
    return os.path.join(MEDIA, name)


#: `bind ARGS` whose every commit is followed by a pause, so that even a very fast machine is
#: caught part-way by `killed_after_commits`
PACED_BIND = (
    "import sys, time\n"
    "from bindcli.collections import store\n"
    "commit = store.Store.put_items\n"
    "def paced(self, *args):\n"
    "    commit(self, *args)\n"
    "    time.sleep(0.1)\n"
    "store.Store.put_items = paced\n"
    "from bindcli.cli.app import main\n"
    "sys.argv = ['bind', *sys.argv[1:]]\n"
    "main()\n"
)


def write_notes(folder: Path, count: int, event: str, digits: int = 3) -> list[Path]:
    """`count` small distinct text files `n000.txt`... in `folder` (made if need be), each
    "note I: EVENT I times": inputs that embed fast and never share a cache entry."""
    folder.mkdir(parents=True, exist_ok=True)
    notes = [folder / f"n{i:0{digits}}.txt" for i in range(count)]
    for i, note in enumerate(notes):
        note.write_text(f"note {i}: {event} {i} times", encoding="utf-8")
    return notes


def killed_after_commits(args: list[str], db: Path, items: int, env: dict | None = None) -> None:
    """Runs paced `bind ARGS` in a subprocess (the small model) and SIGKILLs it once `db`
    holds `items` items (or after two minutes, or when it ended by itself)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PACED_BIND, *args], env={**os.environ, **SMALL, **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    committed, deadline = 0, time.monotonic() + 120
    while committed < items and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
        if db.exists():
            with contextlib.suppress(sqlite3.OperationalError), contextlib.closing(
                sqlite3.connect(db)
            ) as con:
                committed = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()


# --- collection files read straight with sqlite3 (bind runs SQL only in its store) -----------


def sql(db: Path, statement: str, *args: object) -> list[tuple]:
    """The rows of one statement run on the collection file `db` in a connection of its own
    (autocommit: a write is committed when this returns)."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as con:
        return con.execute(statement, args).fetchall()


def integrity_ok(db: Path) -> bool:
    """SQLite's own check of the whole file."""
    return sql(db, "PRAGMA integrity_check") == [("ok",)]


def sqlite_search(
    db: Path, collection: str, query: np.ndarray, k: int = 10, *,
    kinds: list[str] | None = None, min_score: float | None = None,
) -> list:
    """The `k` live items of `collection` nearest `query` by cosine, read straight from
    SQLite and scored in numpy: the reference the searches are checked against."""
    from bindcli.collections.store import DTYPES, Hit, path_from_db
    from bindcli.vectors import at_least, normalise

    rows = sql(
        db, "SELECT i.path, i.kind, i.vector, c.dtype FROM items i JOIN collections c "
        "ON c.id = i.collection_id WHERE c.name=? AND i.deleted=0 ORDER BY i.id", collection,
    )
    rows = [r for r in rows if not kinds or r[1] in kinds]
    if not rows:
        return []
    matrix = np.stack([np.frombuffer(r[2], DTYPES[r[3]]).astype(np.float32) for r in rows])
    scores = matrix @ normalise(np.asarray(query, dtype=np.float32).ravel())
    passed = np.ones(len(scores), bool) if min_score is None else at_least(scores, min_score)
    order = [i for i in np.argsort(-scores, kind="stable") if passed[i]][:k]
    return [Hit(path_from_db(rows[i][0]), rows[i][1], float(scores[i])) for i in order]


def write_av(path, codec: str, rate: int, tone: np.ndarray, video: bool = False, shade: int = 0) -> None:
    """`tone` (mono float32) encoded with `codec`; with `video`, beside 25 grey frames of 64 x 48
    at 10 fps, growing lighter from `shade`."""
    import av

    with av.open(str(path), "w") as container:
        if video:
            vstream = container.add_stream("libx264", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = container.add_stream(codec, rate=rate)
        astream.layout = "mono"
        encoder_format = astream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=encoder_format, layout="mono", rate=rate)
        frame_size = astream.codec_context.frame_size or 1024
        for start in range(0, len(tone), frame_size):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + frame_size], format="flt", layout="mono")
            chunk.sample_rate = rate
            for out in resampler.resample(chunk):
                container.mux(astream.encode(out))
        container.mux(astream.encode(None))
        if video:
            for i in range(25):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (shade + i * 10) % 256, np.uint8), format="rgb24")
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
