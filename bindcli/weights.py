"""Where the checkpoint lives, how it gets there, and what is in it.

Upstream downloads to `.checkpoints/` under whatever directory you happen to be in and trusts
any file it finds there (spec section 7, row 17). Here the file lives in one per-user cache,
arrives through a locked, resumable download into `<name>.part`, and gets a record beside it
(`<name>.json`: size, SHA-256, source) that `verify` checks again later. Torch is imported only
by `convert` and `info`, so resolving a path stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import filelock
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bindcli import __version__
from bindcli.errors import WeightsError
from bindcli.modality import TOWERS

OFFICIAL_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
OFFICIAL_SIZE_HINT = "about 4.8 GB"
LICENCE_NOTICE = (
    "The ImageBind weights are Meta's, licensed CC BY-NC-SA 4.0 (non-commercial, share-alike; "
    "https://creativecommons.org/licenses/by-nc-sa/4.0/). By downloading them you accept those "
    "terms; they also govern the embeddings you make with them."
)
OFFLINE_VARS = ("BIND_OFFLINE", "HF_HUB_OFFLINE")

_HINTS = {
    "--weights": "check the path given",
    "BIND_WEIGHTS": "fix or unset BIND_WEIGHTS",
    "cache": "run `bind weights download`",
}
_CHUNK = 1 << 20
#: seconds to wait for a connection or for the next bytes of a response
NETWORK_TIMEOUT = 30.0
#: tries per download call; each try after a dropped connection resumes where it stopped
ATTEMPTS = 5
#: seconds before retry n is `RETRY_DELAY * n`
RETRY_DELAY = 2.0


def cache_dir() -> Path:
    """`BIND_CACHE_DIR`, else `$XDG_CACHE_HOME/bind`, else `~/.cache/bind`."""
    if os.environ.get("BIND_CACHE_DIR"):
        return Path(os.environ["BIND_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "bind"
    return Path.home() / ".cache" / "bind"


def weights_url() -> str:
    """`BIND_WEIGHTS_URL` (a mirror), else Meta's official URL."""
    return os.environ.get("BIND_WEIGHTS_URL") or OFFICIAL_URL


def offline_var() -> str | None:
    """The variable that turned offline mode on, or None when the network may be used."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return var
    return None


def cached_path(url: str | None = None) -> Path:
    """Where the download of `url` is (or would be) kept: the cache, under the URL's file name."""
    name = Path(urllib.parse.urlsplit(url or weights_url()).path).name
    return cache_dir() / (name or Path(OFFICIAL_URL).name)


def record_path(path: Path) -> Path:
    """The record beside a weights file: `<name>.json`."""
    return path.with_name(path.name + ".json")


def read_record(path: Path) -> dict[str, Any] | None:
    """The record of `path`, or None when it has none (a file placed there by hand)."""
    try:
        return json.loads(record_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise WeightsError(f"the record {record_path(path)} cannot be read ({err}); delete it.") from err


def write_record(path: Path, *, sha256: str, source: str) -> None:
    """Record size and hash of `path` atomically, so `verify` can tell later if it changed."""
    record = {
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": sha256,
        "source": source,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    target = record_path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def locate(weights: str | Path | None = None) -> tuple[Path, str]:
    """Where the checkpoint is or would be, and who said so: --weights, BIND_WEIGHTS or the cache.

    Never downloads; the path may not exist yet.
    """
    if weights is not None:
        return Path(weights).expanduser(), "--weights"
    if os.environ.get("BIND_WEIGHTS"):
        return Path(os.environ["BIND_WEIGHTS"]).expanduser(), "BIND_WEIGHTS"
    return cached_path(), "cache"


def resolve(weights: str | Path | None = None, *, progress: bool = True) -> Path:
    """The checkpoint to load: the given path, else `BIND_WEIGHTS`, else the cache, else download.

    An explicit path must exist: falling back to another file would load weights the user did
    not ask for.
    """
    path, source = locate(weights)
    if source == "cache" and not path.is_file():
        return download(weights_url(), path, progress=progress)
    return find(weights)


def find(weights: str | Path | None = None) -> Path:
    """The checkpoint `resolve` would load, without downloading; a WeightsError if it is not there."""
    path, source = locate(weights)
    return existing(path, _HINTS[source])


def existing(path: Path, hint: str = "") -> Path:
    """`path` if it is a file, else a WeightsError naming it (and `hint`, what to do about it)."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise WeightsError(f"the weights file {path} {what}" + (f"; {hint}." if hint else "."))
    return path


def download(
    url: str | None = None,
    dest: Path | None = None,
    *,
    expected_sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Fetch `url` to `dest` (default: the cache) unless it is already there; return `dest`.

    Bytes go to `<dest>.part`, which survives an interrupted run and is resumed with an HTTP
    Range request; the file is renamed into place only when its size matches the server's and
    its SHA-256 matches `expected_sha256` (default `BIND_WEIGHTS_SHA256`) when one is given.
    A lock file serialises concurrent downloads: a second process waits, then finds the file.
    """
    url = url or weights_url()
    dest = Path(dest) if dest is not None else cached_path(url)
    expected = (expected_sha256 or os.environ.get("BIND_WEIGHTS_SHA256") or "").strip().lower() or None
    if offline_var():
        raise WeightsError(_offline_message(url, dest))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"cannot create the weights folder {dest.parent}: {err.strerror}.") from err
    with _download_lock(dest):
        if dest.is_file() and not force:
            return dest
        print(LICENCE_NOTICE, file=sys.stderr)
        part = _Partial(dest.with_name(dest.name + ".part"))
        with _progress_bar(progress) as bar:
            task = bar.add_task(dest.name, total=None)
            _fetch(url, part, lambda done, total: bar.update(task, completed=done, total=total))
        sha256 = part.hasher.hexdigest()
        if expected and sha256 != expected:
            part.path.unlink()
            raise WeightsError(
                f"the download of {url} has SHA-256 {sha256}, not the expected {expected} "
                "(BIND_WEIGHTS_SHA256); the file was deleted. Check the URL or the expected hash."
            )
        os.replace(part.path, dest)
        write_record(dest, sha256=sha256, source=url)
    return dest


@dataclasses.dataclass(frozen=True)
class Verification:
    """What `verify` found: the file's size and hash, and each disagreement with its record."""

    path: Path
    size: int
    sha256: str
    record: dict[str, Any] | None
    expected_sha256: str | None
    problems: tuple[str, ...]

    @property
    def checked(self) -> bool:
        """Whether there was anything to compare with (a record or an expected hash)."""
        return self.record is not None or self.expected_sha256 is not None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, *, expected_sha256: str | None = None, progress: bool = True) -> Verification:
    """Recompute size and SHA-256 of `path` and compare them with its record and `expected_sha256`."""
    path = existing(Path(path).expanduser(), "nothing to verify")
    expected = (expected_sha256 or os.environ.get("BIND_WEIGHTS_SHA256") or "").strip().lower() or None
    record = read_record(path)
    hasher = hashlib.sha256()
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"hashing {path.name}", total=path.stat().st_size)
        size = _hash_file(path, hasher, lambda done: bar.update(task, completed=done))
    sha256 = hasher.hexdigest()
    problems = []
    if record is not None and record.get("size") != size:
        problems.append(f"size is {size} bytes, the record says {record.get('size')}")
    if record is not None and record.get("sha256") != sha256:
        problems.append(f"SHA-256 is {sha256}, the record says {record.get('sha256')}")
    if expected is not None and expected != sha256:
        problems.append(f"SHA-256 is {sha256}, expected {expected}")
    return Verification(path, size, sha256, record, expected, tuple(problems))


def convert(src: Path, dst: Path, dtype: str | None = None) -> Path:
    """Write a safetensors copy of `src` (optionally bf16/fp16) to `dst`, atomically.

    A safetensors file is read without unpickling and memory-maps tensor by tensor; in bf16 it
    is half the size. The copy gets its own record, so `verify` works on it too.
    """
    from safetensors.torch import save_file

    from bindcli.model.checkpoint import read_state_dict
    from bindcli.model.factory import resolve_dtype

    try:
        torch_dtype = resolve_dtype(dtype) if dtype else None
    except ValueError as err:
        raise WeightsError(f"{err}.") from None
    src, dst = existing(Path(src).expanduser(), "nothing to convert"), Path(dst).expanduser()
    if dst.suffix != ".safetensors":
        raise WeightsError(f"the converted file {dst} must end in .safetensors.")
    if dst.resolve() == src.resolve():
        raise WeightsError(f"convert would overwrite its source {src}; choose another output path.")
    state = read_state_dict(src, dtype=torch_dtype)
    # safetensors refuses tensors that share memory or are not contiguous
    tensors = {key: value.contiguous() for key, value in state.items()}
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={"format": "pt", "converted_from": src.name})
        shutil.copymode(src, tmp)  # safetensors creates files private (0600)
        sha256 = _sha256_of(tmp)
        os.replace(tmp, dst)
        write_record(dst, sha256=sha256, source=f"converted from {src.name}")
    except OSError as err:
        raise WeightsError(f"cannot write {dst}: {err.strerror or err}.") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dst


@dataclasses.dataclass(frozen=True)
class TowerInfo:
    """One tower's share of a checkpoint."""

    tower: str
    tensors: int
    parameters: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What `bind weights info` shows: towers, counts, dtypes, size and the recorded hash."""

    path: Path
    file_size: int
    dtypes: tuple[str, ...]
    towers: tuple[TowerInfo, ...]
    sha256: str | None

    @property
    def parameters(self) -> int:
        return sum(t.parameters for t in self.towers)


def info(path: Path) -> CheckpointInfo:
    """Summarise a checkpoint from its tensor headers (memory-mapped, so cheap even at 4.8 GB)."""
    import math

    from bindcli.model.checkpoint import tensor_specs, tower_of_key

    path = existing(Path(path).expanduser(), "nothing to describe")
    specs = tensor_specs(path)
    towers: dict[str, list[int]] = {}
    for key, (shape, dtype) in specs.items():
        counts = towers.setdefault(tower_of_key(key) or "other", [0, 0, 0])
        counts[0] += 1
        counts[1] += math.prod(shape)
        counts[2] += math.prod(shape) * dtype.itemsize
    record = read_record(path)
    return CheckpointInfo(
        path=path,
        file_size=path.stat().st_size,
        dtypes=tuple(sorted({str(dtype).removeprefix("torch.") for _, dtype in specs.values()})),
        towers=tuple(TowerInfo(name, *towers[name]) for name in sorted(towers, key=_tower_order)),
        sha256=record.get("sha256") if record else None,
    )


def _tower_order(tower: str) -> tuple[int, str]:
    return (TOWERS.index(tower) if tower in TOWERS else len(TOWERS), tower)


def _offline_message(url: str, dest: Path) -> str:
    size = f" ({OFFICIAL_SIZE_HINT})" if url == OFFICIAL_URL else ""
    return (
        f"no model weights at {dest}, and offline mode is on ({offline_var()}=1), so they were "
        f"not downloaded. Download {url}{size} on a machine with network access and put it at "
        f"{dest}, or pass --weights PATH (or set BIND_WEIGHTS) to use a checkpoint elsewhere."
    )


@contextlib.contextmanager
def _download_lock(dest: Path) -> Iterator[None]:
    lock = filelock.FileLock(str(dest.with_name(dest.name + ".lock")))
    try:
        lock.acquire(timeout=0.5)
    except filelock.Timeout:
        print(f"waiting for another bind process that is downloading {dest} ...", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _progress_bar(enabled: bool) -> Progress:
    """A Rich bar on stderr; silent when disabled or when stderr is not a terminal."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
    )


def _hash_file(path: Path, hasher: Any, report: Any = None) -> int:
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            done += len(chunk)
            if report is not None:
                report(done)
    return done


def _sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    _hash_file(path, hasher)
    return hasher.hexdigest()


class _Retry(Exception):
    """A failure worth another try: a dropped connection, a timeout, a 5xx answer."""


class _Partial:
    """The `.part` file and the SHA-256 of the bytes in it, kept in step across retries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hasher = hashlib.sha256()
        self.size = _hash_file(path, self.hasher) if path.is_file() else 0

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.size = 0

    def append(self, stream: IO[bytes], total: int | None, report: Any) -> None:
        """Copy `stream` to the end of the file; a network failure is a `_Retry`, a disk one is not."""
        with open(self.path, "ab") as f:
            while True:
                try:
                    chunk = stream.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _Retry(f"connection lost after {self.size} bytes ({err!r})") from err
                if not chunk:
                    return
                try:
                    f.write(chunk)
                    f.flush()
                except OSError as err:
                    raise WeightsError(f"cannot write {self.path}: {err.strerror or err}.") from err
                self.hasher.update(chunk)
                self.size += len(chunk)
                report(self.size, total)


class _NoNetwork(Exception):
    """The host name does not resolve: this machine has no network, retrying cannot help."""


def _fetch(url: str, part: _Partial, report: Any) -> None:
    """Fill `part` with the whole body of `url`, retrying with resumption; bounded by ATTEMPTS."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _fetch_once(url, part, report)
            return
        except _NoNetwork as err:
            raise WeightsError(f"cannot download {url}: {err}. {_what_now(part)}") from err
        except _Retry as err:
            if attempt == ATTEMPTS:
                raise WeightsError(
                    f"downloading {url} failed {ATTEMPTS} times (last: {err}). {_what_now(part)}"
                ) from err
            again = "interrupted" if part.size else "failed"
            print(f"download {again} ({err}); retrying in {RETRY_DELAY * attempt:g} s", file=sys.stderr)
            time.sleep(RETRY_DELAY * attempt)


def _what_now(part: _Partial) -> str:
    """How to go on after a failed download: resume it, or bring the file by hand."""
    if part.size:
        return (
            f"The {part.size} bytes received so far are kept in {part.path}; run "
            "`bind weights download` again to resume."
        )
    dest = part.path.with_name(part.path.name.removesuffix(".part"))
    return (
        f"Nothing was received. Without network access here, download it elsewhere "
        f"and put it at {dest}, or pass --weights PATH (or set BIND_WEIGHTS)."
    )


def _fetch_once(url: str, part: _Partial, report: Any) -> None:
    headers = {"User-Agent": f"bind/{__version__}"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=NETWORK_TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and part.size:
            part.restart()  # the partial file is longer than the server's: start over
            raise _Retry("the server refused to resume; starting over") from err
        if err.code >= 500 or err.code == 429:
            raise _Retry(f"HTTP {err.code} {err.reason}") from err
        raise WeightsError(f"{url} answered HTTP {err.code} {err.reason}; check the URL (BIND_WEIGHTS_URL).") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, socket.gaierror):
            raise _NoNetwork(f"the host name does not resolve ({err.reason})") from err
        raise _Retry(f"cannot connect: {err.reason}") from err
    except (OSError, http.client.HTTPException) as err:
        raise _Retry(f"cannot connect: {err}") from err
    with response:
        total = _expected_total(response, part)
        report(part.size, total)
        part.append(response, total, report)
    if total is not None and part.size < total:
        raise _Retry(f"connection closed after {part.size} of {total} bytes")
    if total is not None and part.size > total:
        part.restart()
        raise _Retry(f"received more bytes than the {total} announced; starting over")


def _expected_total(response: http.client.HTTPResponse, part: _Partial) -> int | None:
    """The full file size the server announces; restarts `part` when the server ignored Range."""
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != part.size:
            part.restart()
            raise _Retry("the server resumed at the wrong offset; starting over")
        return None if match.group(2) == "*" else int(match.group(2))
    if part.size:
        part.restart()  # a 200 answer to a Range request: the server sends the whole file again
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None

