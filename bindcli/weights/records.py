"""What is recorded beside a checkpoint (`<name>.json`: size, SHA-256, source) and the check
against it: `verify` recomputes both and compares them with the record and with the hash the
user or the publisher gives, so a corrupted file, recorded or not, does not pass.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from bindcli._util import atomic
from bindcli._util.hashing import Progress, update_from_file
from bindcli.errors import WeightsError
from bindcli.weights.source import (
    DEFAULT_CONFIG,
    Config,
    cached_path,
    config_name,
    existing,
    published,
    weights_url,
)


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


def _given(given: str | None) -> tuple[str, str] | None:
    """The hash the user asked for and who: `given` (`--sha256`), else `BIND_WEIGHTS_SHA256`."""
    for sha256, by in ((given, "--sha256"), (os.environ.get("BIND_WEIGHTS_SHA256"), "BIND_WEIGHTS_SHA256")):
        if sha256 and sha256.strip():
            return sha256.strip().lower(), by
    return None


def download_hash(given: str | None, config: Config) -> str | None:
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
    return entry.sha256, f"the published SHA-256 of {config_name(config)}"


def against(record: dict[str, Any] | None, by: str | None) -> str:
    """What a check compared with: the record, the reference hash (`reference`'s who), or both."""
    what = [f"the record of {record.get('created', 'an unknown date')}"] if record else []
    return " and ".join(what + ([by] if by else []))


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
