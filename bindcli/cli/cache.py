"""`bind cache …`: what the shared embedding cache holds, and clearing it.

Every command that embeds (`compare`, `classify`, `arith`, `index`) keeps its vectors in the
cache of the default collection file, and nothing ever removes them: these commands are how
the cache is inspected and emptied. Like `bind collections`, they read only the collection
file (no model, no torch), and follow its conventions: tables for people, JSON in a pipe.
"""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from bindcli._util.folders import default_db_path
from bindcli.cli.options import DB_OPTION, guarded, open_store, store_exists
from bindcli.cli.output import Output
from bindcli.cli.render import FORMAT_OPTION, InfoFormat, compaction_text, show_record, when

SECONDS_PER_DAY = 86400

app = typer.Typer(
    name="cache",
    help="Show and clear the embedding cache that lets commands skip content seen before "
    "(kept in the default collection file, whatever `bind index --db` says).",
    no_args_is_help=True,
)


@app.command("info")
@guarded
def info_command(out: Output, db: DB_OPTION = None, fmt: FORMAT_OPTION = InfoFormat.AUTO) -> None:
    """Cached vectors: how many, their size, per model and precision, oldest and newest."""
    from bindcli.collections.store import CacheStats

    path, size, stats = db or default_db_path(), 0, CacheStats(0, 0, None, None, ())
    if store_exists(db):  # else nothing is cached yet, and looking must not make the file
        with open_store(db) as store:
            path, size, stats = store.path, store.file_bytes(), store.cache_stats()
    info = {
        "entries": stats.entries,
        "vector_bytes": stats.vector_bytes,
        "models": [group._asdict() for group in stats.groups],
        "oldest": when(stats.oldest),
        "newest": when(stats.newest),
        "file": str(path),
        "file_bytes": size,
    }
    models = "\n".join(
        f"{g.model_id} {g.precision}: {g.entries}" for g in stats.groups
    ) or "—"
    show_record(out, info, fmt, shown={"models": models})


@app.command("clear")
@guarded
def clear_command(
    out: Output,
    older_than: Annotated[Optional[float], typer.Option(
        "--older-than", metavar="DAYS", min=0, show_default=False,
        help="Only remove vectors cached more than DAYS days ago (fractions allowed).",
    )] = None,
    db: DB_OPTION = None,
) -> None:
    """Remove cached vectors (all, or the old ones), then compact the file so it shrinks.

    Never asks for confirmation: the cache holds only vectors that are recomputed when next
    needed, and collections keep their own. Compacting rewrites the file, which needs free
    disk space about the size of the file.
    """
    cutoff = None if older_than is None else time.time() - older_than * SECONDS_PER_DAY
    with open_store(db) as store:
        removed = store.clear_cache(cutoff)
        done = store.compact() if removed else None  # nothing freed: spare rewriting the file
        path = store.path
    which = "" if older_than is None else f" older than {older_than:g} days"
    noun = "vector" if removed == 1 else "vectors"
    compacted = f"; {compaction_text(done)}" if done else ""
    out.note(f"removed {removed} cached {noun}{which} from {path}{compacted}")
