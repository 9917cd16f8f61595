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


def sides(path: str | Path, fields: Sequence[str] | None, names: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """For each of `names` (`query`, `target`), the column holding it and whether that column
    holds texts (`query_text`) rather than paths (`query`); a name with neither, or both, is a
    UsageError."""
    found = {}
    for name in names:
        have = [c for c in (name, name + TEXT_SUFFIX) if c in (fields or ())]
        if len(have) != 1:
            what = "both" if have else "neither"
            raise UsageError(f"{path}: {what} of the columns {name} (paths) and {name}{TEXT_SUFFIX} (texts)")
        found[name] = (have[0], have[0].endswith(TEXT_SUFFIX))
    return found


def cell(path: str | Path, value: str, text: bool) -> str:
    """A cell's item: the text as it is, or the path made relative to the table's folder."""
    return value if text else str(Path(path).parent / value.strip())
