"""`bind compare`: a similarity table of inputs of any modality against each other."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import formats
from bindcli.cli.options import READING_OPTION, SEGMENTS_OPTION, command, segmented
from bindcli.cli.render import each_embedding, input_name, resolved, table_labels
from bindcli.cli.run import Run

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.embed.stages import Embedding


class CompareFormat(str, enum.Enum):
    AUTO = "auto"
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@command
def compare(
    run: Run,
    files: Annotated[Optional[list[str]], typer.Argument(
        metavar="FILE", show_default=False,
        help="Inputs to compare ('-' reads paths from stdin).",
    )] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", show_default=False, help="A text input (repeatable).",
    )] = None,
    against: Annotated[Optional[list[str]], typer.Option(
        "--against", "-a", metavar="FILE", show_default=False,
        help="Compare against these files only: inputs become rows, these columns (repeatable).",
    )] = None,
    against_text: Annotated[Optional[list[str]], typer.Option(
        "--against-text", "-T", metavar="TEXT", show_default=False,
        help="A text column for --against mode (repeatable).",
    )] = None,
    softmax: Annotated[bool, typer.Option(
        "--softmax",
        help="Per-row softmax of upstream's scaled dot products (ImageBind's README) instead of "
        "cosine similarity.",
    )] = False,
    segments: SEGMENTS_OPTION = None,
    reading: READING_OPTION = None,
    fmt: Annotated[CompareFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="auto: a table on a terminal, JSON in a pipe.",
    )] = CompareFormat.AUTO,
) -> None:
    """Similarity of every input with every other (or rows x --against columns).

    Any mix of modalities. The best match of each row is highlighted. Cosines between different
    modality pairs sit on different scales: compare scores within a row, not across tables.

    [dim]Examples:[/dim]
      bind compare dog.jpg bark.wav --text "a dog"
      bind compare dog.jpg car.jpg --against-text dog --against-text car --softmax
    """
    import numpy as np

    from bindcli.vectors import printed, similarity

    if "-" in (files or []) and "-" in (against or []):
        raise typer.BadParameter(
            "'-' (read paths from stdin) may be given once, for FILE or for --against",
            param_hint="FILE",
        )
    row_inputs = segmented(run, run.inputs(files or [], text or []), segments, reading)
    col_inputs = segmented(run, run.inputs(against or [], against_text or []), segments, reading)
    square = not col_inputs
    timed = any(getattr(x, "window", None) for x in row_inputs)  # one file in segments: many rows
    if square and len(row_inputs) < 2 and not timed:
        raise typer.BadParameter("give at least two inputs, or --against", param_hint="FILE")
    if not row_inputs:
        raise typer.BadParameter("give at least one input to compare", param_hint="FILE")
    results = run.embed(row_inputs + col_inputs)
    rows = list(each_embedding(results[: len(row_inputs)]))  # a file in segments: a row per window
    cols = rows if square else list(each_embedding(results[len(row_inputs):]))
    if square and len(rows) == 1:
        run.out.error("nothing to compare: only one of the inputs could be used")
    if not rows or not cols or (square and len(rows) == 1):
        return
    # upstream's softmax is of raw dot products; cosines are of unit vectors
    rows_m, cols_m = (np.stack([e.raw if softmax else e.unit for e in side]) for side in (rows, cols))
    scores = similarity(rows_m, cols_m, softmax=softmax, skip_diagonal=square)
    fmt = resolved(fmt, run.out, CompareFormat.JSON)
    if fmt is CompareFormat.TABLE:
        _table(run, rows, cols, scores, "softmax" if softmax else "cosine", square)
        return
    names_r = [input_name(e) for e in rows]
    names_c = [input_name(e) for e in cols]
    cells = [[None if v != v else printed(v) for v in row] for row in scores]
    if fmt is CompareFormat.CSV:
        run.out.text(formats.csv_text(["", *names_c], ([n, *r] for n, r in zip(names_r, cells))))
    else:
        metric = "softmax" if softmax else "cosine"
        run.out.text(formats.json_text({"metric": metric, "rows": names_r, "columns": names_c, "scores": cells}))


def _table(
    run: Run, rows: "list[Embedding]", cols: "list[Embedding]", scores: "np.ndarray", metric: str,
    square: bool,
) -> None:
    from rich.table import Table

    from bindcli.vectors import best_columns

    best = best_columns(scores, square)
    table = Table(caption="* best match of the row", caption_justify="left")
    table.add_column(metric, style="bold")
    for label in table_labels(cols):
        table.add_column(label, justify="right")
    for r, label in enumerate(table_labels(rows)):
        cells = ["—" if v != v else f"{v:.3f}" for v in scores[r]]
        cells[best[r]] = f"[bold green]{cells[best[r]]}*[/]"
        table.add_row(label, *cells)
    run.out.table(table)
