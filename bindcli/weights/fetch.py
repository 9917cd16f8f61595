"""How a checkpoint arrives: a locked, resumable download into `<name>.part`, renamed into
place once its size and hash check out, and recorded (`records`).

Upstream downloads to `.checkpoints/` under whatever directory you happen to be in and trusts
any file it finds there. Progress goes to a callback and messages to `notify` (stderr unless
one is given), for the CLI to show them.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Optional

import filelock

from bindcli import __version__
from bindcli._util import atomic
from bindcli._util.hashing import Progress, update_from_file
from bindcli.errors import WeightsError
from bindcli.weights.records import download_hash, write_record
from bindcli.weights.source import (
    DEFAULT_CONFIG,
    HINTS,
    Config,
    Source,
    cached_path,
    existing,
    named_path,
    offline_var,
    published,
    weights_url,
)

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
    path, source = named_path(weights, config)
    if source is Source.CACHE and not path.is_file():
        return download(dest=path, config=config, progress=progress, notify=notify)
    return existing(path, HINTS[source])


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
    expected = download_hash(expected_sha256, config)
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
