"""The SQLite collection file: indexed media, their vectors, and the embedding cache.

One file holds every collection plus a cache of embeddings keyed by content, so a file seen
once is never encoded again by any command. The format is meant to be read by other tools
(README, "Collections and search"): vectors are unit-length little-endian float32 (`<f4`) or
float16 (`<f2`) BLOBs. The schema is versioned with `PRAGMA user_version` and upgraded step
by step; a file written by a newer bind is refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bindcli._util.chunks import batched
from bindcli._util.paths import path_text
from bindcli.embed.identity import CacheKey
from bindcli.errors import StoreError, UsageError
from bindcli.vectors import normalise

#: vector BLOB encodings, by the name stored in `collections.dtype`
DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}


# --- vector BLOBs ------------------------------------------------------------------------


def encode_vector(vector: np.ndarray, dtype: str = "float32") -> bytes:
    """The BLOB for one vector: little-endian, `dtype` as named in `DTYPES`."""
    return np.ascontiguousarray(vector, dtype=DTYPES[dtype]).tobytes()


def decode_vector(blob: bytes, dtype: str = "float32") -> np.ndarray:
    """One vector from its BLOB, as float32."""
    return np.frombuffer(blob, dtype=DTYPES[dtype]).astype(np.float32)


# --- paths -------------------------------------------------------------------------------


def db_path(path: str) -> str | bytes:
    """How `items.path` holds a path: TEXT when it is UTF-8 (nearly always), else a BLOB of
    its bytes, since POSIX names are bytes and SQLite TEXT must be UTF-8. Lossless both ways,
    and the same path always maps to the same value, so lookups and UNIQUE still hold."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def path_from_db(value: str | bytes) -> str:
    """The path `db_path` stored (a BLOB decodes as `os.fsdecode` does)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


# --- schema ----------------------------------------------------------------------------


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            model_id TEXT NOT NULL,
            model TEXT NOT NULL,
            dtype TEXT NOT NULL,
            created_at REAL NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            dims INTEGER NOT NULL,
            vector BLOB NOT NULL,
            indexed_at REAL NOT NULL,
            UNIQUE (collection_id, path))"""
    )
    db.execute("CREATE INDEX items_by_content ON items (collection_id, sha256)")


def _v2(db: sqlite3.Connection) -> None:
    # The cache serves every command, not only collections: keyed by everything that changes
    # the numbers, so another model, preprocessing or precision never returns a stale vector.
    db.execute(
        """CREATE TABLE embedding_cache (
            sha256 TEXT NOT NULL,
            model_id TEXT NOT NULL,
            preprocessing TEXT NOT NULL,
            precision TEXT NOT NULL,
            kind TEXT NOT NULL,
            options TEXT NOT NULL,
            dims INTEGER NOT NULL,
            vector BLOB NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (sha256, model_id, preprocessing, precision, kind, options))
            WITHOUT ROWID"""
    )


_GENERATION_BUMP = """BEGIN
        UPDATE collections SET generation = generation + 1 WHERE id = NEW.collection_id;
        UPDATE items SET generation =
            (SELECT generation FROM collections WHERE id = NEW.collection_id) WHERE id = NEW.id;
        END"""


def _v3(db: sqlite3.Connection) -> None:
    # A generation per collection, bumped by every change to its items, and on each item the
    # generation that last changed it: the vector index beside the file (collection_index)
    # records the generation it holds and patches in only what changed since.
    db.execute("ALTER TABLE collections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE items ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX items_by_generation ON items (collection_id, generation)")
    db.execute(f"CREATE TRIGGER items_added AFTER INSERT ON items {_GENERATION_BUMP}")
    db.execute(
        f"CREATE TRIGGER items_changed AFTER UPDATE OF path, kind, deleted, vector ON items {_GENERATION_BUMP}"
    )


def _v4(db: sqlite3.Connection) -> None:
    # What a collection's vectors were made with beyond the model id (an import's manifest
    # `precision` and `preprocessing`), as JSON, so an export writes them back.
    db.execute("ALTER TABLE collections ADD COLUMN made_with TEXT NOT NULL DEFAULT '{}'")


def _v5(db: sqlite3.Connection) -> None:
    # Segments (`bind index --segments`): an item is a window of time of a file, read one
    # way, so a path holds one row per (reading, start). A whole file keeps reading '' and
    # start 0, and its end NULL. SQLite cannot change a UNIQUE constraint in place: the table
    # is rebuilt, ids and generations kept (the index files beside the file key on them).
    db.execute(
        """CREATE TABLE items_v5 (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            dims INTEGER NOT NULL,
            vector BLOB NOT NULL,
            indexed_at REAL NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            reading TEXT NOT NULL DEFAULT '',
            start_s REAL NOT NULL DEFAULT 0,
            end_s REAL,
            UNIQUE (collection_id, path, reading, start_s))"""
    )
    columns = "id, collection_id, path, kind, size, mtime_ns, sha256, deleted, dims, vector, indexed_at, generation"
    db.execute(f"INSERT INTO items_v5 ({columns}) SELECT {columns} FROM items")
    db.execute("DROP TABLE items")  # its indexes and triggers go with it
    db.execute("ALTER TABLE items_v5 RENAME TO items")
    db.execute("CREATE INDEX items_by_content ON items (collection_id, sha256)")
    db.execute("CREATE INDEX items_by_generation ON items (collection_id, generation)")
    db.execute(f"CREATE TRIGGER items_added AFTER INSERT ON items {_GENERATION_BUMP}")
    db.execute(
        f"CREATE TRIGGER items_changed AFTER UPDATE OF path, kind, deleted, vector ON items {_GENERATION_BUMP}"
    )


#: step i upgrades a file at version i to version i + 1; append, never edit
MIGRATIONS = (_v1, _v2, _v3, _v4, _v5)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    """Upgrade `db` step by step to `target`, each step in its own transaction.

    The version is read only while holding the write lock (BEGIN IMMEDIATE): two processes
    opening a fresh file at once would otherwise both see version 0 and both create tables.
    """
    while True:
        with _transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version >= target:
                return
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _retry_while_busy(step: Callable[[], int], seconds: float = 30.0) -> int:
    """`step()`, again while the file is locked: switching a fresh file to WAL answers
    "database is locked" at once, without waiting as other statements do, when another process
    is creating it at the same moment (a bounded back-off, up to `seconds`)."""
    deadline, pause = time.monotonic() + seconds, 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


@contextlib.contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction (nested: the outer one's)."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    if db.in_transaction:  # nested: the outer transaction commits
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# --- records -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CollectionRecord:
    """A row of the collections table: a named set of indexed files, pinned to the model
    that embedded them (`bindcli.Collection` is the library's object for working with one)."""

    id: int
    name: str
    model_id: str
    model: str
    dtype: str
    created_at: float
    #: JSON of what the vectors were made with beyond the model (`precision`, `preprocessing`)
    made_with: str = "{}"

    def check_model(self, model_id: str, described: str) -> None:
        """Refuse to mix vectors of two models: their scores would be meaningless."""
        if self.model_id != model_id:
            raise StoreError(
                f"collection {self.name!r} was built with model {self.model} "
                f"[{self.model_id}]; this run uses {described} [{model_id}]. Use the same "
                "--model-config, --weights, --adapter and --audio-mix, another collection, or `bind collections "
                "remove` first"
            )


class FileState(NamedTuple):
    """What the collection last saw of a path: enough to tell whether it changed."""

    size: int
    mtime_ns: int
    sha256: str
    deleted: bool


@dataclasses.dataclass(frozen=True)
class Item:
    """One indexed file (or one window of time of it) and its unit-length embedding."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    sha256: str
    vector: np.ndarray
    #: a segment's reading and window in seconds (`bind index --segments`); '' and None: the whole file
    reading: str = ""
    start: float | None = None
    end: float | None = None


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result; a segment's carries its window (`start`, `end` in seconds)."""

    path: str
    kind: str
    score: float
    start: float | None = None
    end: float | None = None
    #: the item's row id, by which `Store.times` finds a segment's window
    id: int | None = None


class StoredItem(NamedTuple):
    """One live item as the derived index files and exports read it: its vector still the
    BLOB in the collection's dtype, so it is copied without decoding."""

    id: int
    path: str
    kind: str
    sha256: str
    blob: bytes
    #: a segment's window in seconds and its reading (None, '': a whole file)
    start: float | None = None
    end: float | None = None
    reading: str = ""


class ChangedItem(NamedTuple):
    """An item changed after some generation of its collection (deleted ones included)."""

    id: int
    path: str
    kind: str
    deleted: bool
    blob: bytes


class CacheGroup(NamedTuple):
    """Cache entries of one model at one precision (vectors of other ones are never used)."""

    model_id: str
    precision: str
    entries: int
    vector_bytes: int


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """What the embedding cache holds, to decide whether clearing it is worth it."""

    entries: int
    vector_bytes: int
    oldest: float | None
    newest: float | None
    groups: tuple[CacheGroup, ...]


class Compaction(NamedTuple):
    """Bytes on disk (file plus its WAL) before and after `Store.compact`."""

    before: int
    after: int

    @property
    def reclaimed(self) -> int:
        return self.before - self.after


# --- the store ---------------------------------------------------------------------------


class Store:
    """An open collection file. Writes go through `transaction()` so a batch commits whole."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # any thread may use it, one at a time: an embedder's cache is looked up on a
            # server's loader threads and stored from another (`Embedder` holds the lock)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            version = _retry_while_busy(lambda: self._setup(self._db))
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise StoreError(f"{path_text(self.path)}: {exc} (another process holds it)") from None
            raise StoreError(f"{path_text(self.path)}: not a bind collection file ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path_text(self.path)}: not a bind collection file ({exc})") from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"{path_text(self.path)} was written by a newer bind (schema v{version}; this bind reads "
                f"up to v{SCHEMA_VERSION}). Upgrade bind to use it, or pass --db for another file."
            )
        # NORMAL is crash-safe in WAL mode: a killed process loses at most its open batch.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        migrate(self._db)

    @staticmethod
    def _setup(db: sqlite3.Connection) -> int:
        """Page size and WAL mode (no-ops on a file that has them); returns the schema version."""
        # Big pages hold whole 1024-d rows instead of chaining overflow pages, which
        # halves search time; it only takes effect when the file is created.
        db.execute("PRAGMA page_size=65536")
        db.execute("PRAGMA journal_mode=WAL")
        return db.execute("PRAGMA user_version").fetchone()[0]

    @classmethod
    def existing(cls, path: str | Path) -> "Store":
        """The collection file at `path`, which must exist: a reader's typo in a path never
        leaves an empty collection file behind."""
        if not Path(path).expanduser().exists():
            raise StoreError(f"{path_text(path)}: no such collection file (`bind index` creates it)")
        return cls(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic batch of writes; nested calls join the outer batch."""
        with _transaction(self._db):
            yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: everything read inside it is of one moment (WAL gives a
        snapshot while writers go on), e.g. a generation and the rows of that generation."""
        with _snapshot(self._db):
            yield

    # collections

    def collection(self, name: str) -> CollectionRecord | None:
        row = self._db.execute(
            "SELECT id, name, model_id, model, dtype, created_at, made_with FROM collections WHERE name=?",
            (name,),
        ).fetchone()
        return CollectionRecord(*row) if row else None

    def require(self, name: str) -> CollectionRecord:
        """The collection `name`, or an error that lists the ones that exist."""
        found = self.collection(name)
        if found is None:
            names = ", ".join(c.name for c in self.collections()) or "none yet"
            raise StoreError(f"no collection {name!r} in {path_text(self.path)} (collections: {names})")
        return found

    def create_collection(
        self, name: str, model_id: str, model: str, dtype: str = "float32", made_with: str = "{}"
    ) -> CollectionRecord:
        """A new, empty collection pinned to `model_id` (`model` is its human description;
        `made_with`, JSON of what else made its vectors, e.g. an import's precision).

        If another process made `name` meanwhile (two `bind index` starting together), that
        one is returned as it is: check its model (`CollectionRecord.check_model`) before use.
        """
        if not name.strip():
            raise UsageError("a collection needs a name (one was empty)")
        if dtype not in DTYPES:
            raise StoreError(f"unknown vector dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        with self.transaction():
            self._db.execute(
                "INSERT INTO collections (name, model_id, model, dtype, created_at, made_with) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, model_id, model, dtype, time.time(), made_with),
            )
        return self.require(name)

    def collections(self) -> list[CollectionRecord]:
        rows = self._db.execute(
            "SELECT id, name, model_id, model, dtype, created_at, made_with FROM collections ORDER BY name"
        )
        return [CollectionRecord(*row) for row in rows]

    def restart(self, collection: CollectionRecord, made_with: str, *, forget_items: bool) -> None:
        """Record what the collection's vectors are now made with (`made_with`, JSON) and,
        with `forget_items`, mark every item deleted so the next indexing makes them anew."""
        with self.transaction():
            self._db.execute("UPDATE collections SET made_with=? WHERE id=?", (made_with, collection.id))
            if forget_items:
                self._db.execute(
                    "UPDATE items SET deleted=1 WHERE collection_id=? AND deleted=0", (collection.id,)
                )

    def remove_collection(self, name: str) -> None:
        """Drop the collection and its items (the embedding cache keeps the vectors).

        The file does not shrink: SQLite keeps freed pages for reuse until `compact()`.
        """
        found = self.require(name)
        with self.transaction():
            self._db.execute("DELETE FROM items WHERE collection_id=?", (found.id,))
            self._db.execute("DELETE FROM collections WHERE id=?", (found.id,))

    def counts(self, collection: CollectionRecord) -> dict[str, int]:
        """Live (not deleted) items per kind."""
        rows = self._db.execute(
            "SELECT kind, COUNT(*) FROM items WHERE collection_id=? AND deleted=0 "
            "GROUP BY kind ORDER BY kind",
            (collection.id,),
        )
        return dict(rows.fetchall())

    def stats(self, collection: CollectionRecord) -> dict[str, int | None]:
        """Deleted-item count, vector bytes, dims and last indexing time of a collection."""
        deleted, vector_bytes, dims, updated = self._db.execute(
            "SELECT SUM(deleted), SUM(LENGTH(vector)), MAX(dims), MAX(indexed_at) "
            "FROM items WHERE collection_id=?",
            (collection.id,),
        ).fetchone()
        return {
            "deleted": deleted or 0,
            "vector_bytes": vector_bytes or 0,
            "dims": dims,
            "updated_at": updated,
        }

    def generation(self, collection: CollectionRecord) -> int:
        """How many changes the collection's items have seen (-1: the collection is gone);
        the index files beside the file record the one they hold."""
        row = self._db.execute(
            "SELECT generation FROM collections WHERE id=?", (collection.id,)
        ).fetchone()
        return row[0] if row else -1

    # items

    def file_states(self, collection: CollectionRecord) -> dict[str, FileState]:
        """Every path the collection knows, with what was last seen of it."""
        # a file in segments has a row per window: it is deleted when all of them are
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, sha256, MIN(deleted) FROM items WHERE collection_id=? GROUP BY path",
            (collection.id,),
        )
        return {path_from_db(p): FileState(s, m, h, bool(d)) for p, s, m, h, d in rows}

    def vectors_by_content(
        self, collection: CollectionRecord, contents: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], np.ndarray]:
        """Vectors already in the collection for these (sha256, kind): renames, duplicates."""
        wanted = set(contents)
        found: dict[tuple[str, str], np.ndarray] = {}
        for chunk in batched(sorted({sha for sha, _ in wanted}), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT sha256, kind, vector FROM items "
                f"WHERE collection_id=? AND sha256 IN ({marks})",
                (collection.id, *chunk),
            )
            for sha, kind, blob in rows:
                if (sha, kind) in wanted:
                    found.setdefault((sha, kind), decode_vector(blob, collection.dtype))
        return found

    def put_items(self, collection: CollectionRecord, items: Sequence[Item]) -> None:
        """Insert or replace items by path, vectors stored unit-length (cosine = dot)."""
        now = time.time()
        rows = []
        for item in items:
            vector = normalise(np.asarray(item.vector, dtype=np.float32).ravel())
            rows.append(
                (
                    collection.id, db_path(item.path), item.kind, item.size, item.mtime_ns, item.sha256,
                    vector.size, encode_vector(vector, collection.dtype), now,
                    item.reading, item.start or 0.0, item.end,
                )
            )
        with self.transaction():
            self._db.executemany(
                "INSERT INTO items (collection_id, path, kind, size, mtime_ns, sha256, dims, "
                "vector, indexed_at, reading, start_s, end_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (collection_id, path, reading, start_s) DO UPDATE SET kind=excluded.kind, "
                "size=excluded.size, mtime_ns=excluded.mtime_ns, sha256=excluded.sha256, "
                "deleted=0, dims=excluded.dims, vector=excluded.vector, "
                "indexed_at=excluded.indexed_at, end_s=excluded.end_s",
                rows,
            )

    def replace_segments(self, collection: CollectionRecord, items: Sequence[Item]) -> None:
        """Put a file's segments (all of them, of one or more readings) in place of those it
        had: windows the new reading does not make again (a shorter file, another window
        spec) are marked deleted, in the same transaction."""
        with self.transaction():
            self._db.executemany(
                "UPDATE items SET deleted=1 WHERE collection_id=? AND path=? AND reading=? AND deleted=0",
                sorted({(collection.id, db_path(i.path), i.reading) for i in items}),
            )
            self.put_items(collection, items)

    def live_shape(self, collection: CollectionRecord) -> tuple[int, int]:
        """How many live items the collection has, and their dims (0 when none)."""
        count, dims = self._db.execute(
            "SELECT COUNT(*), MAX(dims) FROM items WHERE collection_id=? AND deleted=0",
            (collection.id,),
        ).fetchone()
        return count, dims or 0

    def live_items(
        self, collection: CollectionRecord, chunk_rows: int = 4096
    ) -> Iterator[list[StoredItem]]:
        """The live items in id (insertion) order, `chunk_rows` at a time, so a million of
        them never sit in memory at once. Read within `snapshot()` to pair them with a
        generation."""
        cursor = self._db.execute(
            "SELECT id, path, kind, sha256, vector, start_s, end_s, reading FROM items "
            "WHERE collection_id=? AND deleted=0 ORDER BY id",
            (collection.id,),
        )
        while chunk := cursor.fetchmany(chunk_rows):
            yield [
                StoredItem(i, path_from_db(p), k, s, v, a if b is not None else None, b, r)
                for i, p, k, s, v, a, b, r in chunk
            ]

    def live_item(self, collection: CollectionRecord, item_id: int) -> StoredItem | None:
        """One live item by its id (what a page names a result by), or None."""
        row = self._db.execute(
            "SELECT id, path, kind, sha256, vector FROM items "
            "WHERE collection_id=? AND id=? AND deleted=0",
            (collection.id, item_id),
        ).fetchone()
        return StoredItem(row[0], path_from_db(row[1]), *row[2:]) if row else None

    def item_ids(self, collection: CollectionRecord, paths: Iterable[str]) -> dict[str, int]:
        """The ids of the live items at these paths (paths that are none are left out)."""
        found: dict[str, int] = {}
        for chunk in batched(sorted(set(paths)), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT path, id FROM items WHERE collection_id=? AND deleted=0 AND path IN ({marks})",
                (collection.id, *(db_path(p) for p in chunk)),
            )
            found.update((path_from_db(p), i) for p, i in rows)
        return found

    def changed_since(self, collection: CollectionRecord, generation: int) -> list[ChangedItem]:
        """The items changed after `generation` (deleted ones too), in id order."""
        rows = self._db.execute(
            "SELECT id, path, kind, deleted, vector FROM items "
            "WHERE collection_id=? AND generation>? ORDER BY id",
            (collection.id, generation),
        )
        return [ChangedItem(i, path_from_db(p), k, bool(d), v) for i, p, k, d, v in rows]

    def changed_ids(self, collection: CollectionRecord, generation: int) -> list[int]:
        """The ids of the items changed after `generation` (deleted ones too)."""
        rows = self._db.execute(
            "SELECT id FROM items WHERE collection_id=? AND generation>?",
            (collection.id, generation),
        )
        return [row[0] for row in rows]

    def times(self, collection: CollectionRecord, ids: Iterable[int]) -> dict[int, tuple[float, float]]:
        """(start, end) in seconds of the items among `ids` that are segments."""
        found: dict[int, tuple[float, float]] = {}
        for chunk in batched(sorted(set(ids)), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id, start_s, end_s FROM items WHERE collection_id=? AND id IN ({marks}) "
                "AND end_s IS NOT NULL",
                (collection.id, *chunk),
            )
            found.update((i, (a, b)) for i, a, b in rows)
        return found

    def mark_deleted(self, collection: CollectionRecord, paths: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany(
                "UPDATE items SET deleted=1 WHERE collection_id=? AND path=?",
                ((collection.id, db_path(p)) for p in paths),
            )

    # embedding cache

    def cache_get(self, keys: Iterable[CacheKey]) -> dict[CacheKey, np.ndarray]:
        """Cached vectors for the keys that have one."""
        found = {}
        for key in dict.fromkeys(keys):
            row = self._db.execute(
                "SELECT vector FROM embedding_cache WHERE sha256=? AND model_id=? AND "
                "preprocessing=? AND precision=? AND kind=? AND options=?",
                tuple(key),
            ).fetchone()
            if row:
                found[key] = decode_vector(row[0])
        return found

    def cache_put(self, entries: Iterable[tuple[CacheKey, np.ndarray]]) -> None:
        """Remember vectors (float32, as given) under their keys."""
        now = time.time()
        rows = [
            (*key, np.asarray(v).size, encode_vector(np.asarray(v).ravel()), now)
            for key, v in entries
        ]
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO embedding_cache (sha256, model_id, preprocessing, "
                "precision, kind, options, dims, vector, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def cache_stats(self) -> CacheStats:
        """Entries, vector bytes and age of the cache, with counts per model and precision:
        entries of a model no longer used are dead weight, since nothing else reads them."""
        entries, vector_bytes, oldest, newest = self._db.execute(
            "SELECT COUNT(*), SUM(LENGTH(vector)), MIN(created_at), MAX(created_at) "
            "FROM embedding_cache"
        ).fetchone()
        groups = self._db.execute(
            "SELECT model_id, precision, COUNT(*), SUM(LENGTH(vector)) FROM embedding_cache "
            "GROUP BY model_id, precision ORDER BY model_id, precision"
        )
        return CacheStats(
            entries, vector_bytes or 0, oldest, newest, tuple(CacheGroup(*g) for g in groups)
        )

    def clear_cache(self, older_than: float | None = None) -> int:
        """Forget cached vectors: all of them, or those created before the Unix time
        `older_than`. Returns how many were removed. Only recomputable data goes (collections
        keep their own vectors), but the file keeps its size until `compact()`."""
        with self.transaction():
            if older_than is None:
                cursor = self._db.execute("DELETE FROM embedding_cache")
            else:
                cursor = self._db.execute(
                    "DELETE FROM embedding_cache WHERE created_at < ?", (older_than,)
                )
        return cursor.rowcount

    def file_bytes(self) -> int:
        """Bytes on disk: the file plus its write-ahead log (which can hold most of the data)."""
        return sum(
            p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
        )

    def compact(self) -> Compaction:
        """Rewrite the file without its free pages, so it shrinks after rows were removed.

        Deleting rows only puts their pages on SQLite's free list, for later inserts to reuse;
        the file never gets smaller by itself (auto_vacuum is off, and turning it on takes a
        VACUUM anyway). `VACUUM` copies the live data into a new file and swaps it in. It
        cannot run inside a transaction (SQLite refuses), so this must not be called within
        `transaction()`. It needs free disk space about the size of the file (the temporary
        copy, in SQLite's temp folder), and as much again briefly for the WAL; other
        processes' writes wait for it. The WAL is checkpointed before measuring and after the
        rewrite, since in WAL mode the main file only shrinks when the log is copied back.
        """
        if self._db.in_transaction:
            raise StoreError("cannot compact the collection file inside a transaction")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = self.file_bytes()
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return Compaction(before, self.file_bytes())

