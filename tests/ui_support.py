"""The page's tests: a small collection (pictures, sounds, a film, a file name with markup, a
file that no longer decodes, one replaced by a link to a file outside) and a `bind serve --ui`
over it on a loopback port; where the distribution's Chromium is."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_support import MEDIA, SMALL, bind

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"bind: the page is at (http://127\.0\.0\.1:(\d+)/ui/)")
WAIT = 90  # seconds a server gets to start (it imports torch) on a loaded machine
MARKUP = "<img src=x onerror=alert(1)>.jpg"
class Page:
    """A `bind serve --ui` process and the page's address."""

    def __init__(self, proc: subprocess.Popen, url: str, port: int, err: Path) -> None:
        self.proc, self.url, self.port, self.err = proc, url, port, err

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def make_collection(tmp: Path) -> dict[str, Path]:
    """The collection of `tmp/data/bind.sqlite3`, made from copies of the fixture media;
    after indexing, `broken.jpg` is overwritten with bytes no decoder reads and `swapped.jpg`
    becomes a link to `outside/secret.jpg`. Returns the named files."""
    folder = tmp / "media"
    folder.mkdir(parents=True)
    names = ["dog_image.jpg", "car_image.jpg", "bird_image.jpg", "bird_audio.wav", "synthetic_0.mp4"]
    for name in names:
        shutil.copy(MEDIA / name, folder / name)
    shutil.copy(MEDIA / "dog_image.jpg", folder / MARKUP)
    shutil.copy(MEDIA / "car_image.jpg", folder / "broken.jpg")
    shutil.copy(MEDIA / "bird_image.jpg", folder / "swapped.jpg")
    result = bind("index", folder, env={"BIND_DATA_DIR": str(tmp / "data")})
    assert result.exit_code == 0, result.stderr
    (folder / "broken.jpg").write_bytes(b"not a picture any more")
    outside = tmp / "outside"
    outside.mkdir()
    shutil.copy(MEDIA / "car_image.jpg", outside / "secret.jpg")
    (folder / "swapped.jpg").unlink()
    (folder / "swapped.jpg").symlink_to(outside / "secret.jpg")
    return {"folder": folder, "secret": outside / "secret.jpg", **{n: folder / n for n in names}}


def start_page(tmp: Path, *args: str) -> Page:
    """Starts `bind serve --ui` over the collection file of `tmp/data` and waits (bounded)
    for the page's line."""
    err = tmp / f"server-{len(list(tmp.glob('server-*')))}.err"
    environ = {**os.environ, **SMALL, "BIND_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(ROOT),
               "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bindcli", "serve", "--ui", "--port", "0",
         "--socket", str(tmp / f"{err.stem}.sock"), *args],
        stdout=subprocess.DEVNULL, stderr=err.open("w"), env=environ,
    )
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = READY.search(err.read_text())
        if found:
            return Page(proc, found.group(1), int(found.group(2)), err)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"bind serve --ui did not start:\n{err.read_text()}")
