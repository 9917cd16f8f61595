"""Bring a collection up to date with folders on disk, embedding only what is new.

A file is unchanged while its path, size and mtime are; anything else is hashed, and a content
hash already known (a rename, a duplicate, or a file another command embedded) reuses its
vector. Work is committed a batch at a time, so an interrupted run keeps every finished batch
and a re-run picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli.errors import InputError
from bindcli.modality import EXTENSIONS, Kind, detect
from bindcli.store import Collection, Item, Store, sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.runtime import Embedder

#: embeds (path, kind) pairs; one vector or InputError per input, in order
EmbedFn = Callable[[Sequence[tuple[str, Kind]]], Sequence["np.ndarray | InputError"]]
#: vectors other runs already computed for (path, kind, content sha256); None where unknown
LookupFn = Callable[[Sequence[tuple[str, Kind, str]]], Sequence["np.ndarray | None"]]


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
) -> Iterator[tuple[Path, Kind] | InputError]:
    """Supported files under `roots`, sorted, as absolute paths with their kind (`as_kind`
    overrides the extension's).

    A file named directly is always taken (or reported if its kind is unknown); inside folders,
    files of unknown kind are passed over silently, hidden ones unless `include_hidden`, and
    anything whose name or path relative to the root matches an `exclude` glob.
    """

    def excluded(path: Path, root: Path) -> bool:
        rel = path.relative_to(root).as_posix()
        return any(fnmatch.fnmatch(path.name, g) or fnmatch.fnmatch(rel, g) for g in exclude)

    for root in roots:
        root = Path(root).expanduser().absolute()
        if root.is_file():
            try:
                yield root, detect(root, as_kind)
            except InputError as exc:
                yield exc
            continue
        if not root.is_dir():
            yield InputError(root, "no such file or folder")
            continue
        for folder, dirs, files in os.walk(root):
            base = Path(folder)
            dirs[:] = sorted(
                d for d in dirs
                if (include_hidden or not d.startswith(".")) and not excluded(base / d, root)
            )
            for name in sorted(files):
                path = base / name
                kind = EXTENSIONS.get(path.suffix.lower())
                if kind is None or (name.startswith(".") and not include_hidden):
                    continue
                if not excluded(path, root):
                    yield path, as_kind or kind


def callbacks(embedder: "Embedder") -> tuple[EmbedFn, LookupFn | None]:
    """`index`'s embed and cache-lookup callbacks for a runtime Embedder (no lookup without
    a cache); the Embedder itself writes what it encodes to its cache."""
    from bindcli.runtime import Input

    def embed(batch: Sequence[tuple[str, Kind]]) -> list:
        results = embedder.embed([Input(path, kind) for path, kind in batch])
        return [r if isinstance(r, InputError) else r.raw for r in results]

    def cached(asked: Sequence[tuple[str, Kind, str]]) -> list:
        keys = [embedder.cache_key(Input(path, kind), sha) for path, kind, sha in asked]
        found = embedder.cache.cache_get(keys)
        return [found.get(key) for key in keys]

    return embed, (cached if embedder.cache is not None else None)


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r) + os.sep) for r in roots)


def index(
    store: Store,
    collection: Collection,
    found: Iterable[tuple[Path, Kind] | InputError],
    roots: Sequence[str | Path],
    embed: EmbedFn,
    *,
    cached: LookupFn | None = None,
    batch_size: int = 32,
    on_progress: Callable[[Report], None] = lambda report: None,
) -> Report:
    """Bring `collection` up to date with `found` (what `walk(roots)` yields).

    Known content is reused from the collection, then from `cached` (the embedding cache);
    only the rest is embedded. Items under `roots` that were not found are marked deleted.
    """
    report = Report()
    known = store.file_states(collection)
    seen: set[str] = set()
    pending: list[tuple[Path, Kind, os.stat_result]] = []
    for entry in found:
        if isinstance(entry, InputError):
            report.failed.append(entry)
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
        pending.append((path, kind, stat))
        if len(pending) == batch_size:
            seen.update(_index_batch(store, collection, pending, embed, cached, report))
            pending = []
            on_progress(report)
    if pending:
        seen.update(_index_batch(store, collection, pending, embed, cached, report))
    on_progress(report)
    absolute = [Path(r).expanduser().absolute() for r in roots]
    gone = [p for p, s in known.items() if not s.deleted and p not in seen and _under(p, absolute)]
    store.mark_deleted(collection, gone)
    report.removed = len(gone)
    return report


def _index_batch(
    store: Store,
    collection: Collection,
    batch: Sequence[tuple[Path, Kind, os.stat_result]],
    embed: EmbedFn,
    cached: LookupFn | None,
    report: Report,
) -> list[str]:
    """Hash, reuse or embed one batch and commit it in one transaction; returns the paths
    now indexed."""
    hashed: list[tuple[Path, Kind, os.stat_result, str]] = []
    for path, kind, stat in batch:
        try:
            hashed.append((path, kind, stat, sha256_file(path)))
        except OSError as exc:
            report.failed.append(InputError(path, exc.strerror or str(exc)))
    vectors = store.vectors_by_content(collection, {(h, kind.value) for _, kind, _, h in hashed})
    if cached:
        ask = {(h, kind.value): (str(path), kind, h) for path, kind, _, h in hashed}
        ask = {c: q for c, q in ask.items() if c not in vectors}
        answers = cached(list(ask.values())) if ask else []
        vectors.update({c: v for c, v in zip(ask, answers) if v is not None})
    todo: dict[tuple[str, str], Path] = {}
    for path, kind, _, h in hashed:
        if (h, kind.value) not in vectors:
            todo.setdefault((h, kind.value), path)  # duplicates within a batch: embed once
    results = embed([(str(p), Kind(c[1])) for c, p in todo.items()]) if todo else []
    fresh: dict[tuple[str, str], np.ndarray] = {}
    for content, result in zip(todo, results):
        if isinstance(result, InputError):
            report.failed.append(result)
        else:
            fresh[content] = np.asarray(result, dtype=np.float32).ravel()
    vectors.update(fresh)
    items = []
    for path, kind, stat, h in hashed:
        content = (h, kind.value)
        if content not in vectors:
            continue
        first = todo.get(content) == path and content in fresh
        (report.embedded if first else report.reused)[kind.value] += 1
        vector = vectors[content]
        items.append(Item(str(path), kind.value, stat.st_size, stat.st_mtime_ns, h, vector))
    store.put_items(collection, items)
    return [item.path for item in items]
