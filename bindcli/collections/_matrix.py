"""A collection's vectors as one contiguous, memory-mapped file beside the SQLite file.

SQLite stays the source of truth; this file is derived from it, so it can always be thrown
away and rebuilt. Reading vectors back from SQLite rows costs seconds at a million items; a
mapped matrix costs what the page cache holds, and a search reads it without copying it into
the process.

`<db>.vectors/c<id>.matrix` is a 4096-byte header (`MAGIC`, then JSON: which collection, the
generation of the collection it holds, dtype, dims, rows and how many are live, where each
section starts, the file's size), the matrix (rows x dims, the collection's little-endian
dtype, so float16 stays float16), then per row the item id (int64), a kind code (uint8, `DEAD` for a deleted item),
and the path (int64 offsets into UTF-8 bytes, surrogateescape).

Every change to a collection's items bumps its generation in SQLite (triggers, schema v3) and
stamps the changed item with it. `update_matrix` brings the file up to date by copying the old one
and patching in only the items stamped after its generation (appending new ones, overwriting
changed rows, marking deleted ones), or by rebuilding it when it is missing, torn, of another
collection or mostly dead rows. A new file is written beside the old one and renamed over it,
so a search that opened the old one keeps a whole, consistent file and a killed writer leaves
only a temporary file behind, which the next writer removes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
import mmap
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from bindcli._util.atomic import atomic_path
from bindcli.collections.store import DTYPES, CollectionRecord, Store
from bindcli.errors import OutputError

MAGIC = b"BINDVEC1"
FORMAT = 1
HEADER_BYTES = 4096
#: the kind code of a deleted item's row (kept until the next rebuild)
DEAD = 255
#: a patch that would leave more than this share of dead rows rebuilds the file instead
MAX_DEAD_SHARE = 0.25
_ALIGN = 64
_FETCH_ROWS = 4096


def index_dir(store: Store) -> Path:
    """The folder beside the collection file that holds its collections' index files."""
    return store.path.with_name(store.path.name + ".vectors")


def matrix_path(store: Store, collection: CollectionRecord) -> Path:
    return index_dir(store) / f"c{collection.id}.matrix"


class Matrix:
    """One opened index file: the mapped vectors and, per row, item id, kind and path."""

    def __init__(self, header: dict, buffer: mmap.mmap | bytes | bytearray) -> None:
        self.header = header
        self._buffer = buffer  # keeps the mapping alive as long as the arrays
        rows, dims = header["rows"], header["dims"]
        section = header["sections"]
        self.vectors = np.frombuffer(
            buffer, DTYPES[header["dtype"]], rows * dims, section["matrix"]
        ).reshape(rows, dims)
        self.ids = np.frombuffer(buffer, "<i8", rows, section["ids"])
        self.kinds = np.frombuffer(buffer, np.uint8, rows, section["kinds"])
        self.offsets = np.frombuffer(buffer, "<i8", rows + 1, section["offsets"])
        self.path_bytes = np.frombuffer(buffer, np.uint8, header["path_bytes"], section["paths"])
        self.kind_names: list[str] = header["kinds"]

    @property
    def generation(self) -> int:
        return self.header["generation"]

    @property
    def rows(self) -> int:
        return self.header["rows"]

    @property
    def dims(self) -> int:
        return self.header["dims"]

    @functools.cached_property
    def live(self) -> int:
        """Rows not deleted: the header says (a file from before it did is counted once)."""
        if "live" in self.header:
            return self.header["live"]
        return int(np.count_nonzero(self.kinds != DEAD))

    def path(self, row: int) -> str:
        start, end = self.offsets[row], self.offsets[row + 1]
        return self.path_bytes[start:end].tobytes().decode("utf-8", "surrogateescape")

    def kind(self, row: int) -> str:
        return self.kind_names[self.kinds[row]]

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The row of each item id (ids are stored ascending); -1 for an id not here."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.rows == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        rows = np.searchsorted(self.ids, ids).clip(0, self.rows - 1)
        return np.where(self.ids[rows] == ids, rows, -1)

    def select(
        self,
        kinds: Iterable[str] | None = None,
        under: Sequence[str] = (),
        globs: Sequence[str] = (),
    ) -> np.ndarray:
        """Which rows are live and pass the filters: of one of `kinds`, below one of the
        folders `under` (a path prefix at a separator), matching one of `globs`."""
        keep = self.kinds != DEAD
        wanted = set(kinds or ())
        if wanted:
            codes = [i for i, name in enumerate(self.kind_names) if name in wanted]
            keep &= np.isin(self.kinds, np.array(codes, dtype=np.uint8))
        if under:
            keep &= np.logical_or.reduce([self._under(folder) for folder in under])
        if globs:
            keep &= np.logical_or.reduce([self._matching(g) for g in globs])
        return keep

    def _with_prefix(self, prefix: bytes) -> np.ndarray:
        """Rows whose path starts with `prefix`, one byte column at a time on the survivors."""
        starts = self.offsets[:-1]
        rows = np.flatnonzero(self.offsets[1:] - starts >= len(prefix))
        for j, byte in enumerate(prefix):
            rows = rows[self.path_bytes[starts[rows] + j] == byte]
        return rows

    def _under(self, folder: str) -> np.ndarray:
        keep = np.zeros(self.rows, dtype=bool)
        folder = folder.rstrip("/" + os.sep) or folder
        exact = folder.encode("utf-8", "surrogateescape")
        keep[self._with_prefix(exact + os.sep.encode())] = True
        same = self._with_prefix(exact)
        keep[same[self.offsets[same + 1] - self.offsets[same] == len(exact)]] = True
        return keep

    def _matching(self, pattern: str) -> np.ndarray:
        """A glob against the whole path, or against the file name when it has no separator
        (as `bind index --exclude` reads one)."""
        keep = np.zeros(self.rows, dtype=bool)
        whole = os.sep in pattern or "/" in pattern
        if whole:
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            rows = self._with_prefix(literal.encode("utf-8", "surrogateescape"))
        else:
            rows = np.arange(self.rows)
        match = re.compile(fnmatch.translate(pattern)).match
        for row in rows:
            path = self.path(int(row))
            if match(path if whole else os.path.basename(path)):
                keep[row] = True
        return keep


# --- reading --------------------------------------------------------------------------------


def _parse_header(head: bytes, size: int, magic: bytes, fmt: int) -> dict | None:
    if len(head) < HEADER_BYTES or not head.startswith(magic):
        return None
    try:
        header = json.loads(head[len(magic):HEADER_BYTES].rstrip(b"\0"))
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("format") != fmt or header.get("bytes") != size:
        return None
    return header


def read_header(path: Path, magic: bytes = MAGIC, fmt: int = FORMAT) -> tuple[dict, int] | None:
    """The header of an index file (of the kind `magic` marks) and the file's size; None if it
    is missing or torn."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    header = _parse_header(head, size, magic, fmt)
    return None if header is None else (header, size)


def map_file(path: Path, magic: bytes = MAGIC, fmt: int = FORMAT) -> tuple[dict, mmap.mmap] | None:
    """An index file mapped read-only and the header read from that same mapping (so a file
    replaced meanwhile cannot pair one file's header with another's arrays); None if it is
    missing or torn."""
    try:
        with open(path, "rb") as f:
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # missing, unreadable, or empty (nothing to map)
        return None
    header = _parse_header(buffer[:HEADER_BYTES], len(buffer), magic, fmt)
    if header is None:
        buffer.close()
        return None
    return header, buffer


def belongs(header: dict, collection: CollectionRecord) -> bool:
    return header["collection"] == [collection.id, collection.created_at, collection.dtype]


def open_matrix_file(path: Path) -> Matrix | None:
    """The index file at `path`, mapped read-only; None if it is missing or torn."""
    found = map_file(path)
    return None if found is None else Matrix(*found)


def state(store: Store, collection: CollectionRecord) -> str:
    """`fresh`, `stale` (behind SQLite: the next search or `bind index` patches it) or
    `missing` (none yet, or torn: rebuilt on next use). Writes nothing."""
    found = read_header(matrix_path(store, collection))
    if found is None or not belongs(found[0], collection):
        return "missing"
    return "fresh" if found[0]["generation"] == store.generation(collection) else "stale"


def open_matrix(store: Store, collection: CollectionRecord) -> Matrix:
    """The collection's vectors as of now: its index file, refreshed first if it is behind
    SQLite. Where the folder cannot be written (a read-only collection file), a matrix built
    in memory from SQLite instead."""
    current = open_matrix_file(matrix_path(store, collection))
    if current is not None and belongs(current.header, collection):
        if current.generation == store.generation(collection):
            return current
    try:
        return update_matrix(store, collection)
    except (OSError, OutputError):
        return _in_memory(store, collection)


# --- writing --------------------------------------------------------------------------------


@contextlib.contextmanager
def writer_lock(lock: Path) -> Iterator[None]:
    """One writer at a time for what the file `lock` guards (a POSIX advisory lock;
    elsewhere none: `os.replace` still keeps readers safe)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: os.replace still keeps readers safe
        yield
        return
    with open(lock, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def remove_leftovers(path: Path) -> None:
    """Temporary files of writers that were killed (only called while holding the lock)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)


def update_matrix(store: Store, collection: CollectionRecord) -> Matrix:
    """Bring the collection's index file up to date with SQLite and open it: patched with
    what changed since its generation, or rebuilt if it is missing, torn or mostly dead."""
    path = matrix_path(store, collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(path.with_suffix(".lock")):
        remove_leftovers(path)
        old = open_matrix_file(path)
        if old is not None and not belongs(old.header, collection):
            old = None
        if old is None or old.generation != store.generation(collection):
            with atomic_path(path) as tmp, store.snapshot():
                if old is None or not _patch(store, collection, old, tmp):
                    _build(store, collection, tmp)
        fresh = open_matrix_file(path)
    assert fresh is not None, f"{path} vanished after it was written"
    return fresh


def discard(store: Store, collection: CollectionRecord) -> None:
    """Remove the collection's index files (when the collection goes)."""
    folder = index_dir(store)
    for suffix in ("matrix", "lock", "lists", "lists-lock"):
        (folder / f"c{collection.id}.{suffix}").unlink(missing_ok=True)
    for leftover in folder.glob(f".c{collection.id}.*.tmp"):
        leftover.unlink(missing_ok=True)


def header_bytes(header: dict, magic: bytes = MAGIC) -> bytes:
    raw = magic + json.dumps(header).encode()
    if len(raw) > HEADER_BYTES:
        raise ValueError("index header too long")  # pragma: no cover - a few hundred bytes
    return raw.ljust(HEADER_BYTES, b"\0")


def aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _encoded(path: str) -> bytes:
    """A path's bytes as the file holds them (a name that is not UTF-8 through
    surrogateescape, as `Matrix.path` reads it back)."""
    return path.encode("utf-8", "surrogateescape")


class _Layout:
    """What goes after the matrix, and the header that says where everything is."""

    def __init__(self, collection: CollectionRecord, gen: int, dims: int) -> None:
        self.collection, self.generation, self.dims = collection, gen, dims
        self.kind_names: list[str] = []

    def code(self, kind: str) -> int:
        if kind not in self.kind_names:
            self.kind_names.append(kind)
        return self.kind_names.index(kind)

    def write_tail(
        self, f, rows: int, ids: np.ndarray, kinds: np.ndarray, paths: Sequence[bytes]
    ) -> None:
        """Ids, kinds and paths after the matrix (`f` positioned at its end), then the header."""
        itemsize = DTYPES[self.collection.dtype].itemsize
        sections = {"matrix": HEADER_BYTES}
        offset = HEADER_BYTES + rows * self.dims * itemsize
        lengths = np.fromiter((len(p) for p in paths), dtype=np.int64, count=rows)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype("<i8")
        for name, data in (
            ("ids", ids.astype("<i8").tobytes()),
            ("kinds", kinds.astype(np.uint8).tobytes()),
            ("offsets", offsets.tobytes()),
            ("paths", b"".join(paths)),
        ):
            start = aligned(offset)
            f.write(b"\0" * (start - offset))
            f.write(data)
            sections[name] = start
            offset = start + len(data)
        header = {
            "format": FORMAT,
            "collection": [self.collection.id, self.collection.created_at, self.collection.dtype],
            "generation": self.generation,
            "dtype": self.collection.dtype,
            "dims": self.dims,
            "rows": rows,
            "kinds": self.kind_names,
            "live": int(np.count_nonzero(kinds != DEAD)),
            "path_bytes": int(offsets[-1]),
            "sections": sections,
            "bytes": offset,
        }
        f.seek(0)
        f.write(header_bytes(header))
        f.flush()
        os.fsync(f.fileno())


def _build(store: Store, collection: CollectionRecord, tmp: Path) -> None:
    """The whole file from SQLite's live items, in id order, streamed a chunk at a time."""
    gen = store.generation(collection)
    layout = _Layout(collection, gen, store.live_shape(collection)[1])
    ids: list[int] = []
    kinds: list[int] = []
    paths: list[bytes] = []
    with open(tmp, "wb") as f:
        f.write(b"\0" * HEADER_BYTES)
        for chunk in store.live_items(collection, _FETCH_ROWS):
            for item in chunk:
                ids.append(item.id)
                kinds.append(layout.code(item.kind))
                paths.append(_encoded(item.path))
            f.write(b"".join(item.blob for item in chunk))
        layout.write_tail(f, len(ids), np.array(ids, np.int64), np.array(kinds, np.uint8), paths)


def _patch(store: Store, collection: CollectionRecord, old: Matrix, tmp: Path) -> bool:
    """`old` plus what changed since its generation, into `tmp`; False (nothing written) when
    a rebuild is the better choice: other dims, or too many dead rows."""
    gen = store.generation(collection)
    changed = store.changed_since(collection, old.generation)
    rows = old.rows_of(np.array([c.id for c in changed], dtype=np.int64))
    layout = _Layout(collection, gen, old.dims)
    layout.kind_names = list(old.kind_names)
    kinds = old.kinds.copy()
    updates: list[tuple[int, bytes]] = []
    added: list[tuple[int, int, bytes, bytes]] = []
    renamed: dict[int, bytes] = {}
    for (item_id, path, kind, deleted, blob), row in zip(changed, rows):
        if len(blob) != old.dims * DTYPES[collection.dtype].itemsize and not deleted:
            return False
        if row >= 0:
            kinds[row] = DEAD if deleted else layout.code(kind)
            if not deleted:
                updates.append((int(row), blob))
                if _encoded(path) != old.path_bytes[old.offsets[row]:old.offsets[row + 1]].tobytes():
                    renamed[int(row)] = _encoded(path)
        elif not deleted:
            added.append((item_id, layout.code(kind), _encoded(path), blob))
    if added and old.rows and added[0][0] <= old.ids[-1]:
        return False  # ids must stay ascending; SQLite reused one
    total = old.rows + len(added)
    dead = int(np.count_nonzero(kinds == DEAD))
    if total and dead > MAX_DEAD_SHARE * total and dead > 64:
        return False
    paths = _old_paths(old, renamed) + [a[2] for a in added]
    row_bytes = old.dims * DTYPES[collection.dtype].itemsize
    with open(tmp, "wb") as f:
        f.write(b"\0" * HEADER_BYTES)
        f.write(old.vectors.data if old.vectors.size else b"")
        for a in added:
            f.write(a[3])
        end = f.tell()
        for row, blob in updates:
            f.seek(HEADER_BYTES + row * row_bytes)
            f.write(blob)
        f.seek(end)
        layout.write_tail(
            f, total,
            np.concatenate([old.ids, np.array([a[0] for a in added], np.int64)]),
            np.concatenate([kinds, np.array([a[1] for a in added], np.uint8)]),
            paths,
        )
    return True


def _old_paths(old: Matrix, renamed: dict[int, bytes]) -> list[bytes]:
    blob = old.path_bytes.tobytes()
    offsets = old.offsets.tolist()
    return [renamed.get(r, blob[offsets[r]:offsets[r + 1]]) for r in range(old.rows)]


def _in_memory(store: Store, collection: CollectionRecord) -> Matrix:
    """The same file's bytes built in a temporary folder and read into memory (the index
    folder cannot be written)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder) / "matrix"
        with store.snapshot():
            _build(store, collection, tmp)
        data = tmp.read_bytes()
    found = json.loads(data[len(MAGIC):HEADER_BYTES].rstrip(b"\0"))
    return Matrix(found, data)
