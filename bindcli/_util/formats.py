"""The machine formats bind prints and writes: exact float text, JSON lines, JSON, CSV, `.npy`.

Text in, text out, no terminal: the CLI prints these to stdout, the library writes them to
files (a manifest, a confusion matrix), the server answers with `.npy`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

#: significant digits that round-trip every float32 exactly
_FLOAT32_DIGITS = ".9g"


def floats(values: Sequence[float] | Any) -> list[float]:
    """Python floats of a float32 vector, printed short but exact (`.9g` round-trips float32)."""
    import numpy as np

    return [float(format(v, _FLOAT32_DIGITS)) for v in np.asarray(values, np.float32).tolist()]


def jsonl(records: Iterable[dict]) -> str:
    """One compact JSON object per line."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return csv_row(header) + "".join(csv_row(row) for row in rows)


def csv_row(row: Sequence[Any]) -> str:
    """One CSV line (for rows written one at a time)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def npy_bytes(array: Any) -> bytes:
    """The `.npy` file of `array`, in memory (for stdout)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


