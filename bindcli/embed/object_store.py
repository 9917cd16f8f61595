"""Files named by URI (`s3://bucket/key`, `gs://...`, any filesystem pyarrow or fsspec knows):
listed where a job is planned, read where it runs.

`bind index s3://bucket/prefix --engine ray` lists the prefix on the driver, taking each
object's size and mtime from the listing (so an unchanged object is passed over as an
unchanged file is) and keeping its URI as its path; the Ray workers fetch each object's bytes,
hash them as they arrive and decode a local copy, so the driver reads no object. Credentials
are each library's own, from the environment of the process that reads (`AWS_*`,
`GOOGLE_APPLICATION_CREDENTIALS`, ...); `worker_environment` is what the driver passes on to
the workers. pyarrow (a dependency of Ray Data) is imported only once a URI is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bindcli._util.hashing import BLOCK
from bindcli._util.paths import canonical, is_uri
from bindcli.errors import InputError, UnlistedRoot

if TYPE_CHECKING:  # pragma: no cover
    from pyarrow.fs import FileInfo, FileSystem

#: the environment variables the filesystem libraries read their credentials and endpoints
#: from (the AWS SDK's, Google's, Azure's, the GCS emulator's)
CREDENTIAL_VARIABLES = ("AWS_", "GOOGLE_", "AZURE_", "STORAGE_EMULATOR_HOST")


@dataclasses.dataclass(frozen=True)
class ObjectFile:
    """An object a listing found: its URI (what a collection stores as its path) and the size
    and mtime the listing gave, under the names `os.stat` gives a local file's, so that
    `bindcli.collections.ingest.index` asks either the same way (`found.stat().st_size`)."""

    uri: str
    st_size: int
    st_mtime_ns: int

    def __str__(self) -> str:
        return self.uri

    def stat(self) -> "ObjectFile":
        return self


def filesystem(uri: str) -> "tuple[FileSystem, str]":
    """The filesystem `uri` names and the path within it: pyarrow's own (S3, GCS, HDFS, Azure,
    local), else fsspec's for the scheme, as a pyarrow filesystem."""
    from pyarrow import ArrowInvalid, fs

    try:
        return fs.FileSystem.from_uri(uri)
    except ArrowInvalid as unknown:  # a scheme pyarrow does not know
        try:
            import fsspec.core

            found, path = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise InputError(uri, f"no filesystem for this URI ({unknown}; fsspec: {exc})") from None
        return fs.PyFileSystem(fs.FSSpecHandler(found)), path
    except OSError as exc:
        raise InputError(uri, reason(exc)) from None


def listing(root: str) -> tuple[bool, list[ObjectFile]]:
    """The objects `root` names: (True, [it]) for one object, else (False, every object under
    it as a prefix, sorted by key). A missing bucket or prefix, or one this process may not
    read, is an InputError naming `root`."""
    from pyarrow import fs

    root = str(canonical(root))  # no trailing slash
    store, path = filesystem(root)
    try:
        info = store.get_file_info(path)
        if info.type == fs.FileType.File:
            return True, [_object(root, info)]
        infos = store.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=False))
    except FileNotFoundError as exc:
        raise InputError(root, reason(exc)) from None
    except OSError as exc:
        raise UnlistedRoot(root, reason(exc)) from None
    files = sorted((i for i in infos if i.type == fs.FileType.File), key=lambda i: i.path)
    return False, [_object(root + i.path[len(path.rstrip("/")):], i) for i in files]


def _object(uri: str, info: "FileInfo") -> ObjectFile:
    # a store that keeps no mtime gives none: then the size alone says "unchanged"
    return ObjectFile(uri, info.size or 0, info.mtime_ns or 0)


def fetch(uri: str, copy: str | Path) -> str:
    """Write the object's bytes to the local file `copy`, hashing them as they arrive; returns
    their SHA-256 (`bindcli._util.hashing`'s, so the object shares the cache with a local copy)."""
    store, path = filesystem(uri)
    digest = hashlib.sha256()
    try:
        with store.open_input_stream(path) as source, open(copy, "wb") as sink:
            while block := source.read(BLOCK):
                digest.update(block)
                sink.write(block)
    except OSError as exc:
        raise InputError(uri, reason(exc)) from None
    return digest.hexdigest()


def reason(exc: OSError) -> str:
    """A filesystem library's error as the one-line reason of an InputError."""
    if isinstance(exc, FileNotFoundError):
        return "no such object or prefix"
    if isinstance(exc, PermissionError):
        return "permission denied (check the credentials the environment gives)"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"\s*\(Request ID: [^)]*\)", "", first)


def worker_environment(sources: Iterable[str], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The driver's credential variables (`CREDENTIAL_VARIABLES`), for workers that read URIs:
    none when no source is a URI, so the cluster's own environment (an instance role) serves."""
    if not any(is_uri(s) for s in sources):
        return {}
    return {k: v for k, v in environ.items() if k.startswith(CREDENTIAL_VARIABLES)}
