"""Bring a collection up to date with folders on disk, embedding only what is new.

A file is unchanged while its path, size and mtime are; anything else is hashed, and a content
hash already known (a rename, a duplicate, or a file another command embedded) reuses its
vector. New content is embedded in one run of the embedder (one loader pipeline, which answers
from the embedding cache first), and results are committed a batch at a time as they arrive, so
an interrupted run keeps every finished batch (and the embedding cache what was encoded but not
yet committed) and a re-run picks up where it stopped. Nothing here imports torch: a re-run
over unchanged files costs the `stat` calls.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli._util.chunks import batched
from bindcli._util.paths import canonical, is_uri
from bindcli.collections.manifest import written_by_bind
from bindcli.collections.nearest import update_index_files
from bindcli.collections.store import CollectionRecord, Item, Store
from bindcli.embed.inputs import Input, in_segments
from bindcli.embed.object_store import ObjectFile, listing
from bindcli.embed.stages import Segments, digests
from bindcli.errors import InputError, UnlistedRoot, UsageError
from bindcli.modality import EXTENSIONS, Kind, detect
from bindcli.windows import READINGS, Reading, Window

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import BaseEmbedder


@dataclasses.dataclass
class Report:
    """What one run did, per kind; `failed` names every file that was skipped."""

    embedded: Counter = dataclasses.field(default_factory=Counter)
    reused: Counter = dataclasses.field(default_factory=Counter)
    unchanged: Counter = dataclasses.field(default_factory=Counter)
    removed: int = 0
    failed: list[InputError] = dataclasses.field(default_factory=list)

    def done(self) -> Counter:
        """Files now in the collection from this run's walk, per kind."""
        return self.embedded + self.reused + self.unchanged


def walk(
    roots: Iterable[str | Path],
    *,
    exclude: Sequence[str] = (),
    include_hidden: bool = False,
    as_kind: Kind | None = None,
    on_skip: Callable[[Path], None] = lambda path: None,
) -> Iterator[tuple[Path | ObjectFile, Kind] | InputError]:
    """Supported files under `roots`, sorted, as canonical paths (`bindcli._util.paths.canonical`)
    with their kind (`as_kind` overrides the extension's). A root that is a URI is listed
    through its filesystem (`bindcli.embed.object_store`), a key's `/`-separated parts as folders.

    A file named directly is always taken (or reported if its kind is unknown); inside folders,
    files of unknown kind are passed over silently, hidden ones unless `include_hidden`, and
    anything whose name or path relative to the root matches an `exclude` glob. bind's own
    outputs (`bind embed -o X.npy` beside its `X.npy.json`, `--out-dir` vectors listed in the
    folder's `manifest.json`) are not inputs: each goes to `on_skip`. Symlinked folders are
    followed, each real folder walked once (which also ends symlink loops), and each file is
    yielded once however many ways lead to it.
    """

    def excluded(path: Path, root: Path) -> bool:
        return _excluded(path.relative_to(root).as_posix(), exclude)

    visited: set[str] = set()
    found: set[Path | ObjectFile] = set()  # a file named twice, or reached by a symlink too: once
    for given in roots:
        if is_uri(given):
            for entry in _walk_objects(str(given), exclude, include_hidden, as_kind):
                if isinstance(entry, InputError):
                    yield entry
                elif entry[0] not in found:
                    found.add(entry[0])
                    yield entry
            continue
        root = Path(given).expanduser().absolute()
        if root.is_file():
            try:
                kind = detect(root, as_kind)
            except InputError as exc:
                yield exc
                continue
            if (path := canonical(root)) not in found:
                found.add(path)
                yield path, kind
            continue
        if not root.is_dir():
            yield InputError(root, "no such file or folder")
            continue
        unreadable: list[OSError] = []  # folders os.walk could not list, reported as such
        for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable.append):
            yield from _unlisted(unreadable)
            real = canonical(folder)
            if str(real) in visited:  # a loop, or a folder reached twice
                dirs[:] = []
                continue
            visited.add(str(real))
            base = Path(folder)
            dirs[:] = sorted(
                d for d in dirs
                if (include_hidden or not d.startswith(".")) and not excluded(base / d, root)
            )
            outputs = written_by_bind(real, files)
            for name in sorted(files):
                path = base / name
                kind = EXTENSIONS.get(path.suffix.lower())
                if kind is None or (name.startswith(".") and not include_hidden):
                    continue
                if excluded(path, root):
                    continue
                if name in outputs:
                    on_skip(real / name)
                    continue
                # the folder is real already; only a symlinked file needs resolving
                path = canonical(path) if os.path.islink(path) else real / name
                if path not in found:
                    found.add(path)
                    yield path, as_kind or kind
        yield from _unlisted(unreadable)


def _unlisted(errors: list[OSError]) -> Iterator[UnlistedRoot]:
    """The folders os.walk failed to list so far (emptied as they are yielded)."""
    while errors:
        exc = errors.pop(0)
        yield UnlistedRoot(canonical(exc.filename), exc.strerror or str(exc))


def _excluded(rel: str, exclude: Sequence[str]) -> bool:
    """Whether a file or folder, by its `/`-separated path below the root, matches a glob."""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(rel, g) for g in exclude)


def _walk_objects(
    root: str, exclude: Sequence[str], include_hidden: bool, as_kind: Kind | None
) -> Iterator[tuple[ObjectFile, Kind] | InputError]:
    """What `walk` takes from a URI: the object it names, or the objects under the prefix by
    the rules for a folder (each part of a key below the prefix counts as a folder's name)."""
    try:
        named, objects = listing(root)
    except InputError as exc:
        yield exc
        return
    if named:
        try:
            yield objects[0], detect(objects[0].uri, as_kind)
        except InputError as exc:
            yield exc
        return
    below = len(str(canonical(root))) + 1  # where a key's part below the prefix starts
    for obj in objects:
        parts = obj.uri[below:].split("/")
        kind = EXTENSIONS.get(Path(parts[-1]).suffix.lower())
        if kind is None or (not include_hidden and any(p.startswith(".") for p in parts)):
            continue
        if not any(_excluded("/".join(parts[: n + 1]), exclude) for n in range(len(parts))):
            yield obj, as_kind or kind




def _under(path: str, roots: Sequence[str | Path]) -> bool:
    # canonical: collections made before paths were hold `..` and symlinked folders (only
    # paths this run did not see come here, so resolving them costs little)
    path = str(canonical(path))
    return any(path == str(r) or path.startswith(str(r) + os.sep) for r in roots)


def index(
    store: Store,
    collection: CollectionRecord,
    found: Iterable[tuple[Path | ObjectFile, Kind] | InputError],
    roots: Sequence[str | Path],
    embedder: "Callable[[], BaseEmbedder]",
    *,
    batch_size: int = 32,
    on_progress: Callable[[Report], None] = lambda report: None,
    segments: Window | None = None,
    readings: Sequence[Reading] = (),
) -> Report:
    """Bring `collection` up to date with `found` (what `walk(roots)` yields).

    Known content is reused from the collection; the rest is streamed through one run of the
    embedder that `embedder()` returns, called only once something must be embedded (so an
    unchanged collection never builds one), each content once (what came from its cache counts
    as reused). Objects named by URI are not read here: the embedder hashes them as it reads
    them (so their content is not matched before they are embedded).
    Commits hold `batch_size` files. Items under `roots` that were not found are marked
    deleted. With `segments`, audio, video and IMU files are read in its windows (each of
    `readings` they have, else their kind's default), an item per window, a file's windows
    replacing what it had; the collection records the spec, and another spec re-embeds all. Last, the collection's vector index files are brought up to date
    (`nearest.update_index_files`).
    """
    report = Report()
    _pin_window(store, collection, segments)
    known = store.file_states(collection)
    seen: set[str] = set()
    pending: list[tuple[Path, Kind, os.stat_result]] = []
    objects: list[tuple[ObjectFile, Kind, ObjectFile]] = []  # hashed where they are read
    unlisted: set[str] = set()  # folders whose content is unknown: nothing under them is gone
    for entry in found:
        if isinstance(entry, InputError):
            report.failed.append(entry)
            if isinstance(entry, UnlistedRoot):
                unlisted.add(str(canonical(entry.source)))
            continue
        path, kind = entry
        try:
            stat = path.stat()
        except OSError as exc:
            report.failed.append(InputError(path, exc.strerror or str(exc)))
            continue
        state = known.get(str(path))
        if state and not state.deleted and (state.size, state.mtime_ns) == (
            stat.st_size, stat.st_mtime_ns
        ):
            seen.add(str(path))
            report.unchanged[kind.value] += 1
            continue
        (objects if isinstance(path, ObjectFile) else pending).append((path, kind, stat))
    commit = _Committer(store, collection, batch_size, seen, lambda: on_progress(report))
    waiting: dict[tuple[str, str], list[tuple[Path, os.stat_result]]] = {}
    for part in batched(pending, batch_size):
        hashed = _hash(part, report)
        vectors = store.vectors_by_content(collection, {(h, k.value) for _, k, _, h in hashed})
        for path, kind, stat, sha in hashed:
            content = (sha, kind.value)
            if content in vectors and not _in_time(kind, segments):  # segments: from the cache
                report.reused[kind.value] += 1
                commit.add(Item(str(path), kind.value, stat.st_size, stat.st_mtime_ns, sha, vectors[content]))
            else:
                waiting.setdefault(content, []).append((path, stat))
    todo = list(waiting)
    asked = [Input(str(waiting[c][0][0]), Kind(c[1])) for c in todo]
    asked += [Input(str(path), kind) for path, kind, _ in objects]
    hashes = [sha for sha, _ in todo]  # objects: the embedder hashes them as it reads them
    if segments is not None:
        return _index_segments(store, collection, asked, hashes, waiting, todo, embedder, segments, readings,
                               report, commit, known, seen, roots, unlisted)
    results = embedder().stream(asked, hashes=hashes) if asked else ()
    for n, result in results:
        if isinstance(result, InputError):
            report.failed.append(result)
            continue
        vector = np.asarray(result.raw, dtype=np.float32).ravel()
        if n >= len(todo):
            path, kind, stat = objects[n - len(todo)]
            (report.reused if result.cached else report.embedded)[kind.value] += 1
            commit.add(Item(str(path), kind.value, stat.st_size, stat.st_mtime_ns, result.sha256, vector))
            continue
        sha, kind = todo[n]
        for copy, (path, stat) in enumerate(waiting[todo[n]]):
            # duplicates are embedded once; cached content not at all
            (report.reused if copy or result.cached else report.embedded)[kind] += 1
            commit.add(Item(str(path), kind, stat.st_size, stat.st_mtime_ns, sha, vector))
    return _finish(store, collection, report, commit, known, seen, roots, unlisted)


def _finish(
    store: Store, collection: CollectionRecord, report: Report, commit: "_Committer",
    known: dict, seen: set[str], roots: Sequence[str | Path], unlisted: set[str],
) -> Report:
    """Commit the rest, mark what was not found deleted, update the index files."""
    commit.flush()
    walked, unknown = [canonical(r) for r in roots], sorted(unlisted)
    gone = [
        p for p, s in known.items()
        if not s.deleted and p not in seen and _under(p, walked) and not _under(p, unknown)
    ]
    store.mark_deleted(collection, gone)
    report.removed = len(gone)
    update_index_files(store, collection)
    return report


def _in_time(kind: Kind, segments: Window | None) -> bool:
    """Whether a file of `kind` is indexed in segments in this run."""
    return segments is not None and kind.value in READINGS


def _pin_window(store: Store, collection: CollectionRecord, segments: Window | None) -> None:
    """Record the window spec the collection's segments are made with; another spec than
    the recorded one starts it afresh, so no window of the old spec survives beside the new
    ones. A collection holds segments or whole files, never both: the other is refused."""
    made_with = json.loads(collection.made_with)
    pinned = made_with.get("segments")
    if pinned == (segments.text if segments else None):
        return
    fresh = not store.live_shape(collection)[0]
    if segments is None or (pinned is None and not fresh):
        has = f"segments ({pinned})" if pinned else "whole files"
        wanted = f"--segments {segments.text}" if segments else "whole files"
        raise UsageError(
            f"collection {collection.name!r} holds {has}; index {wanted} into another collection "
            f"(-c NAME){f', or add --segments {pinned}' if pinned else ''}"
        )
    made_with["segments"] = segments.text
    store.restart(collection, json.dumps(made_with), forget_items=not fresh)


def _index_segments(
    store: Store, collection: CollectionRecord, asked: list[Input], hashes: list[str],
    waiting: dict, todo: list, embedder: "Callable[[], BaseEmbedder]", segments: Window,
    readings: Sequence[Reading], report: Report, commit: "_Committer", known: dict, seen: set[str],
    roots: Sequence[str | Path], unlisted: set[str],
) -> Report:
    """`index`'s embedding step with segments: each file read in windows (files without
    time whole), each result's items committed together in place of the file's old ones."""
    timed: list[Input | InputError] = []
    owner: list[int] = []  # the position in `asked` of each of `timed`
    for n, inp in enumerate(asked):
        for each in in_segments([inp], segments, readings):
            timed.append(each)
            owner.append(n)
    known_hashes = [hashes[n] if n < len(hashes) else None for n in owner]
    results = embedder().stream(timed, hashes=known_hashes) if timed else ()
    for m, result in results:
        if isinstance(result, InputError):
            report.failed.append(result)
            continue
        n = owner[m]
        if n < len(todo):
            copies = [(path, stat, todo[n][1]) for path, stat in waiting[todo[n]]]
        else:
            path, kind, stat = asked[n].source, asked[n].kind.value, None
            copies = [(path, stat, kind)]
        for copy, (path, stat, kind) in enumerate(copies):
            (report.reused if copy or result.cached else report.embedded)[kind] += 1
            size, mtime = (stat.st_size, stat.st_mtime_ns) if stat is not None else (0, 0)
            if isinstance(result, Segments):
                reading = result.input.reading.value
                commit.add_file([
                    Item(str(path), kind, size, mtime, result.sha256, e.raw, reading, e.start, e.end)
                    for e in result.parts
                ])
            else:
                commit.add(Item(str(path), kind, size, mtime, result.sha256, np.asarray(result.raw).ravel()))
    return _finish(store, collection, report, commit, known, seen, roots, unlisted)


def _hash(
    batch: Sequence[tuple[Path, Kind, os.stat_result]], report: Report
) -> list[tuple[Path, Kind, os.stat_result, str]]:
    """Content hashes (the digest stage, on threads); a file that cannot be read is reported
    and left out."""
    hashed = []
    shas = digests([Input(str(path), kind) for path, kind, _ in batch])
    for (path, kind, stat), sha in zip(batch, shas):
        if isinstance(sha, InputError):
            report.failed.append(sha)
        else:
            hashed.append((path, kind, stat, sha))
    return hashed


class _Committer:
    """Items written `size` at a time, each batch in one transaction, reporting progress."""

    def __init__(
        self, store: Store, collection: CollectionRecord, size: int, seen: set[str],
        on_commit: Callable[[], None],
    ) -> None:
        self.store, self.collection, self.size = store, collection, size
        self.seen, self.on_commit = seen, on_commit
        self.items: list[Item] = []

    def add(self, item: Item) -> None:
        self.items.append(item)
        if len(self.items) >= self.size:
            self.flush()

    def add_file(self, items: list[Item]) -> None:
        """A file's segments, committed together in place of the ones it had."""
        self.flush()
        self.store.replace_segments(self.collection, items)
        self.seen.update(item.path for item in items)
        self.on_commit()

    def flush(self) -> None:
        self.store.put_items(self.collection, self.items)
        self.seen.update(item.path for item in self.items)
        self.items = []
        self.on_commit()
