"""Where the checkpoint lives, how it gets there, and what is recorded about it.

Upstream downloads to `.checkpoints/` under whatever directory you happen to be in and trusts
any file it finds there (`imagebind_model.imagebind_huge`). Here the file lives in one
per-user cache, arrives through a locked, resumable download into `<name>.part`, and gets a
record beside it (`<name>.json`: size, SHA-256, source) that `verify` checks again later.
Where a config's weights are published is `bindcli.model.pretrained`'s registry, or a JSON
config's own `"weights"`; `verify` checks a published checkpoint against the published hash
too, so a corrupted file that was never recorded does not pass. Nothing here imports torch,
so resolving a path stays cheap, and nothing draws: progress goes to a callback, and so do
messages (to stderr unless one is given), for the CLI to show them.

Imports: bindcli._util, bindcli.errors, bindcli.model.config, bindcli.model.pretrained (the
registry of published weights; no torch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Optional, Union

import filelock

from bindcli import __version__
from bindcli._util import atomic
from bindcli.errors import WeightsError, WeightsNotDownloaded
from bindcli._util.hashing import Progress, update_from_file
from bindcli._util.folders import cache_dir
from bindcli.model.pretrained import REGISTRY, Pretrained

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.model.config import ModelConfig

#: the config whose weights `bind weights` and `resolve()` fetch unless told otherwise
DEFAULT_CONFIG = "imagebind_huge"
#: a config as `--model-config` names it (a built-in name or a JSON file's path), or loaded
Config = Union[str, "ModelConfig"]
OFFLINE_VARS = ("BIND_OFFLINE", "HF_HUB_OFFLINE")
#: seconds to wait for a connection or for the next bytes of a response
NETWORK_TIMEOUT = 30.0
#: tries per download call; each try after a dropped connection resumes where it stopped
ATTEMPTS = 5
#: seconds before retry n is `RETRY_DELAY * n`
RETRY_DELAY = 2.0
_CHUNK = 1 << 20

#: what a download has to say (the licence, a wait, a retry); the default writes to stderr
Notify = Callable[[str], None]
#: (bytes so far, bytes in all or None) of the one file a download fetches
_Report = Callable[[int, Optional[int]], None]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Source(enum.Enum):
    """Who named the checkpoint: each is a different mistake when the file is missing."""

    OPTION = "--weights"
    ENV = "BIND_WEIGHTS"
    CACHE = "cache"


_HINTS = {
    Source.OPTION: "check the path given",
    Source.ENV: "fix or unset BIND_WEIGHTS",
    Source.CACHE: "run `bind weights download`",
}


def published(config: Config = DEFAULT_CONFIG) -> Pretrained | None:
    """Where `config`'s weights are published: its JSON file's `"weights"`, else the registry's
    entry for its name; None where neither says."""
    if isinstance(config, str):
        if config in REGISTRY:
            return REGISTRY[config]
        if not Path(config).expanduser().is_file():
            return None
        from bindcli.model.config import load_config  # only for a JSON file: doctor imports no model code

        config = load_config(config)
    return config.weights or REGISTRY.get(config.name)


def _name(config: Config) -> str:
    return config if isinstance(config, str) else config.name


def weights_url(config: Config = DEFAULT_CONFIG) -> str:
    """`BIND_WEIGHTS_URL` (a mirror), else where `config`'s weights are published."""
    if os.environ.get("BIND_WEIGHTS_URL"):
        return os.environ["BIND_WEIGHTS_URL"]
    entry = published(config)
    if entry is None:
        raise WeightsError(
            f"no published weights are known for the model config {_name(config)!r}; pass --weights "
            "PATH or set BIND_WEIGHTS to its checkpoint (or BIND_WEIGHTS_URL to download one, or "
            'give a JSON config a "weights": {"url": ...}).'
        )
    return entry.url


def offline_var() -> str | None:
    """The variable that turned offline mode on, or None when the network may be used."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return var
    return None


def cached_path(url: str | None = None) -> Path:
    """Where the download of `url` is (or would be) kept: the cache, under the URL's file name."""
    name = Path(urllib.parse.urlsplit(url or weights_url()).path).name
    return cache_dir() / (name or REGISTRY[DEFAULT_CONFIG].file_name)


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


#: the source of a record that `verify` made for a file bind did not download or convert: it
#: gives `info` and later `verify` runs the hash, but not the model's id (see `identifies`)
VERIFIED_SOURCE = "hashed by `bind weights verify`"


def identifies(record: dict[str, Any] | None, size: int) -> str | None:
    """The SHA-256 that names a weights file of `size` bytes in model ids, from its record.

    None for a file without one, and for a hash `verify` recorded later: such a file's id was
    made from its size and mtime, and collections built with it must keep matching it.
    """
    if not record or record.get("size") != size or record.get("source") == VERIFIED_SOURCE:
        return None
    return record.get("sha256") or None


def record_verified(result: "Verification") -> Path:
    """Record the hash `verify` computed for a file that had no record, so that `info` shows it
    and the next `verify` has something to compare with; returns the record's path."""
    write_record(result.path, sha256=result.sha256, source=VERIFIED_SOURCE)
    return record_path(result.path)


def write_record(path: Path, *, sha256: str, source: str) -> None:
    """Record size and hash of `path` atomically, so `verify` can tell later if it changed."""
    record = {
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": sha256,
        "source": source,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic.write_file(record_path(path), json.dumps(record, indent=2) + "\n")


def locate(weights: str | Path | None = None, config: Config = DEFAULT_CONFIG) -> tuple[Path, Source]:
    """Where the checkpoint is or would be, and who said so: --weights, BIND_WEIGHTS or the cache.

    Never downloads; the path may not exist yet.
    """
    if weights is not None:
        return Path(weights).expanduser(), Source.OPTION
    if os.environ.get("BIND_WEIGHTS"):
        return Path(os.environ["BIND_WEIGHTS"]).expanduser(), Source.ENV
    return cached_path(weights_url(config)), Source.CACHE


def resolve(
    weights: str | Path | None = None,
    *,
    config: Config = DEFAULT_CONFIG,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> Path:
    """The checkpoint to load: the given path, else `BIND_WEIGHTS`, else the cache, else download
    `config`'s published weights.

    An explicit path must exist: falling back to another file would load weights the user did
    not ask for.
    """
    path, source = locate(weights, config)
    if source is Source.CACHE and not path.is_file():
        return download(dest=path, config=config, progress=progress, notify=notify)
    return existing(path, _HINTS[source])


def find(weights: str | Path | None = None, config: Config = DEFAULT_CONFIG) -> Path:
    """The checkpoint `resolve` would load, without downloading; a WeightsError if it is not
    there (`WeightsNotDownloaded` where `resolve` would download it, or could not: no URL is
    known for `config`)."""
    try:
        path, source = locate(weights, config)
    except WeightsError as err:  # only `weights_url` raises: the cache cannot hold them either
        raise WeightsNotDownloaded(None, str(err)) from None
    if source is Source.CACHE and not path.is_file():
        raise WeightsNotDownloaded(path, _missing(path, _HINTS[source]))
    return existing(path, _HINTS[source])


def existing(path: Path, hint: str = "") -> Path:
    """`path` if it is a file, else a WeightsError naming it (and `hint`, what to do about it)."""
    if not path.is_file():
        raise WeightsError(_missing(path, hint))
    return path


def _missing(path: Path, hint: str) -> str:
    what = "is not a file" if path.exists() else "does not exist"
    return f"the weights file {path} {what}" + (f"; {hint}." if hint else ".")


def _given(given: str | None) -> tuple[str, str] | None:
    """The hash the user asked for and who: `given` (`--sha256`), else `BIND_WEIGHTS_SHA256`."""
    for sha256, by in ((given, "--sha256"), (os.environ.get("BIND_WEIGHTS_SHA256"), "BIND_WEIGHTS_SHA256")):
        if sha256 and sha256.strip():
            return sha256.strip().lower(), by
    return None


def _expected(given: str | None, config: Config) -> str | None:
    """The hash a download must have: `given`, else `BIND_WEIGHTS_SHA256`, else the published one."""
    asked = _given(given)
    entry = published(config)
    return asked[0] if asked else entry.sha256 if entry else None


def reference(path: Path, config: Config = DEFAULT_CONFIG, given: str | None = None) -> tuple[str, str] | None:
    """The SHA-256 `path` must have and who says so: `given` (`--sha256`), else
    `BIND_WEIGHTS_SHA256`, else the published hash where `path` is `config`'s published
    checkpoint (at the cache path, or under the published file's name); None where none says.

    Not the size: the registry's is the tensors' share of the file, not the file's.
    """
    asked = _given(given)
    entry = published(config)
    if asked or entry is None or entry.sha256 is None:
        return asked
    here = Path(path).expanduser().resolve()
    cached = {cached_path(entry.url).resolve(), cached_path(weights_url(config)).resolve()}
    if here.name != entry.file_name and here not in cached:
        return None
    return entry.sha256, f"the published SHA-256 of {_name(config)}"


def against(record: dict[str, Any] | None, by: str | None) -> str:
    """What a check compared with: the record, the reference hash (`reference`'s who), or both."""
    what = [f"the record of {record.get('created', 'an unknown date')}"] if record else []
    return " and ".join(what + ([by] if by else []))


def download(
    url: str | None = None,
    dest: Path | None = None,
    *,
    config: Config = DEFAULT_CONFIG,
    expected_sha256: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> Path:
    """Fetch `url` (default: `config`'s) to `dest` (default: the cache) unless it is already
    there; return `dest`.

    Bytes go to `<dest>.part`, which survives an interrupted run and is resumed with an HTTP
    Range request; the file is renamed into place only when its size matches the server's and
    its SHA-256 matches the expected one (`expected_sha256`, else `BIND_WEIGHTS_SHA256`, else
    the registry's) when there is one. A lock file serialises concurrent downloads: a second
    process waits, then finds the file. `progress` hears how many bytes have arrived, and
    `notify` (default: stderr) the licence and any wait or retry.
    """
    url = url or weights_url(config)
    dest = Path(dest) if dest is not None else cached_path(url)
    notify = notify or _to_stderr
    expected = _expected(expected_sha256, config)
    if offline_var():
        raise WeightsError(_offline_message(url, dest, config))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"cannot create the weights folder {dest.parent}: {err.strerror}.") from err
    with _download_lock(dest, notify):
        if dest.is_file() and not force:
            return dest
        entry = published(config)
        if entry is not None and entry.notice:
            notify(entry.notice)
        with atomic.atomic_path(dest, partial=".part") as tmp:
            part = _Partial(tmp)
            _fetch(url, part, _named(progress, dest.name), notify)
            sha256 = part.hasher.hexdigest()
            if expected and sha256 != expected:
                part.path.unlink()
                raise WeightsError(
                    f"the download of {url} has SHA-256 {sha256}, not the expected {expected} "
                    "(--sha256, BIND_WEIGHTS_SHA256 or the published one); the file was deleted. "
                    "Check the URL or the expected hash."
                )
        write_record(dest, sha256=sha256, source=url)
    return dest


@dataclasses.dataclass(frozen=True)
class Verification:
    """What `verify` found: the file's size and hash, and each disagreement with its record
    and the reference hash."""

    path: Path
    size: int
    sha256: str
    record: dict[str, Any] | None
    expected_sha256: str | None
    problems: tuple[str, ...]
    #: who says the file must have `expected_sha256` (see `reference`)
    expected_by: str | None = None

    @property
    def checked(self) -> bool:
        """Whether there was anything to compare with (a record or an expected hash)."""
        return self.record is not None or self.expected_sha256 is not None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    path: Path,
    *,
    expected_sha256: str | None = None,
    config: Config = DEFAULT_CONFIG,
    progress: Progress | None = None,
) -> Verification:
    """Recompute size and SHA-256 of `path` and compare them with its record and the reference
    hash (`expected_sha256`, else `BIND_WEIGHTS_SHA256`, else `config`'s published one if it is
    that checkpoint: see `reference`); `progress` hears the bytes hashed."""
    path = existing(Path(path).expanduser(), "nothing to verify")
    expected, by = reference(path, config, expected_sha256) or (None, None)
    record = read_record(path)
    hasher = hashlib.sha256()
    size = update_from_file(hasher, path, progress)
    sha256 = hasher.hexdigest()
    problems = []
    if record is not None and record.get("size") != size:
        problems.append(f"size is {size} bytes, the record says {record.get('size')}")
    if record is not None and record.get("sha256") != sha256:
        problems.append(f"SHA-256 is {sha256}, the record says {record.get('sha256')}")
    if expected is not None and expected != sha256:
        problems.append(f"SHA-256 is {sha256}, expected {expected} ({by})")
    return Verification(path, size, sha256, record, expected, tuple(problems), by)


def _named(progress: Progress | None, name: str) -> _Report:
    """The byte counter `_Partial` reports to, telling `progress` which file it is."""
    if progress is None:
        return lambda done, total: None
    return lambda done, total: progress(name, done, total)


def _offline_message(url: str, dest: Path, config: Config) -> str:
    entry = published(config)
    size = f" ({entry.size_text})" if entry and entry.size and url == entry.url else ""
    return (
        f"no model weights at {dest}, and offline mode is on ({offline_var()}=1), so they were "
        f"not downloaded. Download {url}{size} on a machine with network access and put it at "
        f"{dest}, or pass --weights PATH (or set BIND_WEIGHTS) to use a checkpoint elsewhere."
    )


@contextlib.contextmanager
def _download_lock(dest: Path, notify: Notify) -> Iterator[None]:
    lock = filelock.FileLock(str(dest.with_name(dest.name + ".lock")))
    try:
        lock.acquire(timeout=0.5)
    except filelock.Timeout:
        notify(f"waiting for another bind process that is downloading {dest} ...")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class _Retry(Exception):
    """A failure worth another try: a dropped connection, a timeout, a 5xx answer."""


class _Partial:
    """The `.part` file and the SHA-256 of the bytes in it, kept in step across retries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hasher = hashlib.sha256()
        self.size = update_from_file(self.hasher, path) if path.is_file() else 0

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.size = 0

    def append(self, stream: IO[bytes], total: int | None, report: _Report) -> None:
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


def _fetch(url: str, part: _Partial, report: _Report, notify: Notify) -> None:
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
            notify(f"download {again} ({err}); retrying in {RETRY_DELAY * attempt:g} s")
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


def _fetch_once(url: str, part: _Partial, report: _Report) -> None:
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

