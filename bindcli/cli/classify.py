"""`bind classify`: zero-shot labels for any modality, from text prompts (`bindcli.zeroshot`
says how labels become directions and scores become probabilities)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import formats
from bindcli.cli.options import READING_OPTION, SEGMENTS_OPTION, check_templates, command, segmented
from bindcli.cli.render import each_embedding, resolved, table_labels
from bindcli.cli.run import Run
from bindcli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.stages import Embedding
    from bindcli.zeroshot import LabelScore


class ClassifyFormat(str, enum.Enum):
    AUTO = "auto"
    TABLE = "table"
    JSONL = "jsonl"


@command
def classify(
    run: Run,
    files: Annotated[Optional[list[str]], typer.Argument(
        metavar="FILE", show_default=False,
        help="Inputs to classify ('-' reads paths from stdin).",
    )] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", show_default=False, help="A text to classify (repeatable).",
    )] = None,
    labels: Annotated[Optional[list[str]], typer.Option(
        "--labels", "-l", metavar="A,B,...", show_default=False,
        help="Candidate labels, comma-separated (repeatable).",
    )] = None,
    labels_file: Annotated[Optional[Path], typer.Option(
        "--labels-file", "-L", exists=True, dir_okay=False, show_default=False,
        help="Candidate labels, one per line ('#' starts a comment).",
    )] = None,
    template: Annotated[Optional[list[str]], typer.Option(
        "--template", metavar="TEXT", show_default=False,
        help="Prompt template with {} for the label, instead of the modality's own set "
        "(repeatable; several are averaged).",
    )] = None,
    top_k: Annotated[int, typer.Option(
        "--top-k", "-k", min=0, help="Labels to show per input (0: all).",
    )] = 5,
    segments: SEGMENTS_OPTION = None,
    reading: READING_OPTION = None,
    fmt: Annotated[ClassifyFormat, typer.Option(
        "--format", "-f", case_sensitive=False, help="auto: a table on a terminal, JSONL in a pipe.",
    )] = ClassifyFormat.AUTO,
) -> None:
    """Zero-shot classification against text labels.

    [dim]Examples:[/dim]
      bind classify dog.jpg bark.wav --labels dog,car,bird
      bind classify clip.mp4 --labels-file labels.txt --template "a video of people {}." -k 3
    """
    from bindcli import zeroshot
    from bindcli.embed.inputs import Input
    from bindcli.vectors import printed

    names = read_labels(labels or [], labels_file)
    if not files and not text:
        raise typer.BadParameter("give at least one FILE or --text", param_hint="FILE")
    check_templates(template or ())
    inputs = segmented(run, run.inputs(files or [], text or []), segments, reading)
    templates = zeroshot.templates_for({x.kind for x in inputs if isinstance(x, Input)}, template or ())
    prompts = zeroshot.prompts(names, templates)
    results = run.embed(inputs + [Input.text(p) for p in prompts])
    classifier = zeroshot.Classifier.from_prompts(
        names, templates, dict(zip(prompts, results[len(inputs):]))
    )
    classified = [(e, classifier.rank(e, top_k)) for e in each_embedding(results[: len(inputs)])]
    fmt = resolved(fmt, run.out, ClassifyFormat.JSONL)
    if fmt is ClassifyFormat.TABLE:
        _table(run, classified)
    else:
        run.out.text(formats.jsonl(
            {"input": e.input.source, "modality": e.input.kind.value,
             **({} if e.start is None else {"start": round(e.start, 6), "end": round(e.end, 6)}), "labels": [
                {"label": r.label, "probability": printed(r.probability), "score": printed(r.score)}
                for r in ranked
            ]}
            for e, ranked in classified
        ))


def read_labels(labels: Sequence[str], labels_file: Path | None) -> list[str]:
    """Labels from --labels (comma-separated) and --labels-file, in order, each once."""
    found = [part.strip() for item in labels for part in item.split(",")]
    if labels_file is not None:
        from bindcli.zeroshot import read_lines

        try:
            found.extend(read_lines(labels_file))
        except UsageError as exc:
            raise typer.BadParameter(str(exc), param_hint="--labels-file") from None
    names = list(dict.fromkeys(n for n in found if n))
    if not names:
        raise typer.BadParameter("give the candidate labels", param_hint="--labels / --labels-file")
    return names


def _table(run: Run, classified: "list[tuple[Embedding, list[LabelScore]]]") -> None:
    from rich.markup import escape
    from rich.table import Table

    from bindcli.vectors import printed

    table = Table()
    for column, justify in (("input", "left"), ("label", "left"), ("probability", "right"), ("cosine", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    labels = table_labels([e for e, _ in classified])
    for n, (label, (e, ranked)) in enumerate(zip(labels, classified)):
        for i, item in enumerate(ranked):
            style = "bold green" if i == 0 else None
            table.add_row(
                label if i == 0 else "", escape(item.label),
                f"{printed(item.probability):.3f}", f"{printed(item.score):.3f}",
                style=style, end_section=i == len(ranked) - 1 and n < len(classified) - 1,
            )
    run.out.table(table)
