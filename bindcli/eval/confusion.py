"""The confusion matrix of `bind eval` as a file: a CSV table, an HTML heat map, or a PNG
picture (matplotlib, the optional extra `bindcli[plot]`, imported only when asked).

Rows are the true classes, columns the predicted ones; colour is the share of a row, so a
small class reads as clearly as a large one.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bindcli._util import atomic, extras, formats
from bindcli.errors import UsageError

#: beyond this many classes a picture drops its tick labels and cell counts (unreadable)
LABELLED_UP_TO = 50


def _shares(confusion: np.ndarray) -> np.ndarray:
    rows = confusion.sum(axis=1, keepdims=True)
    return confusion / np.where(rows == 0, 1, rows)


def csv_text(confusion: np.ndarray, labels: Sequence[str]) -> str:
    return formats.csv_text(["true \\ predicted", *labels], ([label, *map(int, row)] for label, row in zip(labels, confusion)))


def html_text(confusion: np.ndarray, labels: Sequence[str], title: str) -> str:
    """A self-contained page: a table whose cells are shaded by their row share."""
    shares = _shares(confusion)
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>" + "".join(
            f'<td style="background: rgba(31, 119, 180, {share:.3f})" title="{share:.1%}">{int(n)}</td>'
            for n, share in zip(row, shares_row)
        ) + "</tr>\n"
        for label, row, shares_row in zip(labels, confusion, shares)
    )
    return (
        f"<!doctype html>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n"
        "<style>table{border-collapse:collapse;font:12px sans-serif}td,th{border:1px solid #ccc;"
        "padding:2px 4px;text-align:right}thead th{writing-mode:vertical-rl}</style>\n"
        f"<h1>{html.escape(title)}</h1><p>rows: true class, columns: predicted</p>\n"
        f"<table><thead><tr><th></th>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>\n"
    )


def png_bytes(confusion: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """A heat map; labelled (and counted per cell) up to `LABELLED_UP_TO` classes."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(extras.PLOT.hint()) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    n = len(labels)
    side = min(4 + 0.3 * n, 24)
    figure, axes = pyplot.subplots(figsize=(side, side))
    shares = _shares(confusion)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    axes.set(title=title, xlabel="predicted", ylabel="true")
    if n <= LABELLED_UP_TO:
        axes.set_xticks(range(n), labels, rotation=90, fontsize=8)
        axes.set_yticks(range(n), labels, fontsize=8)
        if n <= 20:
            for (i, j), count in np.ndenumerate(confusion):
                if count:
                    colour = "white" if shares[i, j] > 0.5 else "black"
                    axes.text(j, i, str(count), ha="center", va="center", fontsize=8, color=colour)
    figure.tight_layout()
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100)
    pyplot.close(figure)
    return buf.getvalue()


def check(path: str | Path) -> None:
    """Refuse, before any work, a file this module cannot write (or a PNG without matplotlib)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".html", ".htm", ".png"):
        raise UsageError(f"{path}: the confusion matrix is written as .csv, .html or .png")
    if suffix == ".png" and extras.PLOT.missing():
        raise UsageError(extras.PLOT.hint())


def write(path: str | Path, confusion: np.ndarray, labels: Sequence[str], title: str) -> None:
    """By the file's extension: .csv, .html or .png."""
    check(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        data: str | bytes = csv_text(confusion, labels)
    elif suffix == ".png":
        data = png_bytes(confusion, labels, title)
    else:
        data = html_text(confusion, labels, title)
    atomic.write_file(path, data)
