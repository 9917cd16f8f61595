"""The CSV/TSV files `bind eval` and `bind score` read: a `.tsv` is tab-separated, anything
else comma-separated; paths in them are relative to the file; a column may hold texts
instead of paths when its name says so (`query_text` beside `query`)."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from bindcli.errors import UsageError

#: a column of this suffix holds texts; the same name without it, file paths
TEXT_SUFFIX = "_text"


@contextlib.contextmanager
def rows(path: str | Path) -> Iterator[csv.DictReader]:
    """The file's rows as dicts (`reader.line_num` is the line a row ends on); a file that is
    not UTF-8 CSV is one UsageError naming it."""
    path = Path(path)
    tsv = path.suffix.lower() == ".tsv"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            yield csv.DictReader(f, delimiter="\t" if tsv else ",")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: cannot read it as a UTF-8 {'TSV' if tsv else 'CSV'} table ({exc})") from None


def pairs(path: str | Path, names: Sequence[str]) -> list[dict[str, tuple[str, bool]]]:
    """Each row's items under `names` (`query`, `target`): (the text, or the path made
    relative to the file's folder; whether it is a text). A column `name` holds paths, a column
    `name_text` texts; a name with neither or both columns, or a row with one of them blank, is
    a UsageError. Blank rows are skipped."""
    path = Path(path)
    found = []
    with rows(path) as reader:
        columns = _columns(path, reader.fieldnames, names)
        for r in reader:
            cells = {name: (r[column] or "", text) for name, (column, text) in columns.items()}
            if not any(v.strip() for v, _ in cells.values()):
                continue
            blank = [name for name, (v, _) in cells.items() if not v.strip()]
            if blank:
                raise UsageError(f"{path}:{reader.line_num}: no {blank[0]}")
            found.append({
                name: (v if text else str(path.parent / v.strip()), text) for name, (v, text) in cells.items()
            })
    if not found:
        raise UsageError(f"{path}: no {','.join(names)} rows")
    return found


def _columns(path: Path, fields: Sequence[str] | None, names: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """For each of `names`, the column holding it and whether that column holds texts."""
    found = {}
    for name in names:
        have = [c for c in (name, name + TEXT_SUFFIX) if c in (fields or ())]
        if len(have) != 1:
            what = "both" if have else "neither"
            raise UsageError(f"{path}: {what} of the columns {name} (paths) and {name}{TEXT_SUFFIX} (texts)")
        found[name] = (have[0], have[0].endswith(TEXT_SUFFIX))
    return found
