"""`bind eval`: zero-shot accuracy on a labelled dataset (`bindcli.eval.accuracy` does the work)."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from bindcli._util import atomic, extras, formats
from bindcli.cli.options import check_templates, check_writable, command
from bindcli.cli.render import resolved
from bindcli.cli.run import Run
from bindcli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.eval.accuracy import Report
    from bindcli.eval.retrieval import Report as RetrievalReport


#: the presets (kept here, beside the option, so `bind --help` imports no dataset code):
#: zero-shot classification, then retrieval
PRESET_NAMES = ("esc50", "imagenet-val", "kinetics400", "llvip", "nyu-d", "ego4d", "vggsound", "sun-d")
RETRIEVAL_PRESET_NAMES = ("audiocaps", "clotho", "msrvtt-1k-a", "audioset")


def _complete_preset(incomplete: str) -> list[str]:
    return [n for n in PRESET_NAMES + RETRIEVAL_PRESET_NAMES if n.startswith(incomplete)]


class Task(str, enum.Enum):
    CLASSIFICATION = "classification"
    RETRIEVAL = "retrieval"


class EvalFormat(str, enum.Enum):
    AUTO = "auto"
    TABLE = "table"
    JSON = "json"


@command
def eval_(
    run: Run,
    dataset: Annotated[Path, typer.Argument(
        metavar="DATASET", show_default=False,
        help="A folder of class folders (birds/robin/*.wav), a CSV/TSV file with path,label "
        "columns (--task retrieval: query,target columns), or with --preset the dataset's folder.",
    )],
    task: Annotated[Optional[Task], typer.Option(
        "--task", case_sensitive=False, show_default=False,
        help="classification (the default): zero-shot accuracy; retrieval: R@1/5/10, median "
        "rank and mAP both ways, of a CSV/TSV whose query and target columns hold paths (relative "
        "to it) or whose query_text or target_text column holds texts. A preset sets its own.",
    )] = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", metavar="NAME", autocompletion=_complete_preset, show_default=False,
        help=f"DATASET is this dataset in its release layout ({', '.join(PRESET_NAMES)}; retrieval: "
        f"{', '.join(RETRIEVAL_PRESET_NAMES)}); the paper's protocol and figures. nyu-d, sun-d and "
        f"ego4d convert their release files once into bind's cache; nyu-d and sun-d need "
        f"{escape(extras.EVAL.install)}.",
    )] = None,
    templates: Annotated[Optional[str], typer.Option(
        "--templates", metavar="paper|bind|FILE", show_default=False,
        help="Prompt set: paper (CLIP's 80 ImageNet templates, a preset's default), bind "
        "(each modality's own, the default otherwise) or a file of templates, one a line "
        "('#' starts a comment); not with --template.",
    )] = None,
    template: Annotated[Optional[list[str]], typer.Option(
        "--template", metavar="TEXT", show_default=False,
        help="Prompt template with {} for the label, instead of the modality's own set "
        "(repeatable; several are averaged).",
    )] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, show_default=False,
        help="Evaluate only N items (retrieval: N targets and their queries), spread over the set.",
    )] = None,
    per_class: Annotated[Optional[int], typer.Option(
        "--per-class", min=1, show_default=False, help="Evaluate at most N items of each class.",
    )] = None,
    errors: Annotated[Optional[Path], typer.Option(
        "--errors", metavar="FILE.jsonl", dir_okay=False, show_default=False,
        help="Write each misclassified item with its top 5 classes (retrieval: each query whose "
        "first hit is wrong, with its top 5 hits), one JSON object a line.",
    )] = None,
    confusion: Annotated[Optional[Path], typer.Option(
        "--confusion", metavar="FILE.png|FILE.html|FILE.csv", dir_okay=False, show_default=False,
        help="Write the confusion matrix: a heat map (.png needs matplotlib: "
        f"{escape(extras.PLOT.install)}; .html) or a table (.csv).",
    )] = None,
    fmt: Annotated[EvalFormat, typer.Option(
        "--format", "-f", case_sensitive=False, help="auto: a table on a terminal, JSON in a pipe.",
    )] = EvalFormat.AUTO,
) -> None:
    """Zero-shot accuracy on a labelled dataset: top-1, top-5, mean per-class recall.

    Class names come from the folder names (underscores as spaces) or the label column; the
    prompts are `bind classify`'s, so each item's top-1 is the label classify ranks first.

    [dim]Examples:[/dim]
      bind eval sounds/ --per-class 20
      bind eval labels.csv --template "a photo of a {}." -f json
      bind eval --preset esc50 ESC-50-master/
      bind eval --preset nyu-d nyu/ --limit 50
      bind eval --task retrieval captions.csv
      bind eval --preset audiocaps audiocaps/ --errors missed.jsonl
    """
    from bindcli.eval import accuracy, presets
    from bindcli.vectors import printed

    if preset is not None and preset not in PRESET_NAMES + RETRIEVAL_PRESET_NAMES:
        raise UsageError(f"unknown preset {preset!r}; known: {', '.join(PRESET_NAMES + RETRIEVAL_PRESET_NAMES)}")
    retrieving = preset in RETRIEVAL_PRESET_NAMES if preset else task is Task.RETRIEVAL
    if preset and task is not None and (task is Task.RETRIEVAL) != retrieving:
        raise typer.BadParameter(f"--preset {preset} is not a {task.value} benchmark", param_hint="--task")
    if retrieving:
        given = [name for name, value in (("--template", template), ("--templates", templates),
                                          ("--per-class", per_class), ("--confusion", confusion)) if value]
        if given:
            raise typer.BadParameter(f"{given[0]} is for classification, not retrieval", param_hint=given[0])
        if errors is not None:
            check_writable(errors, "--errors")
        _retrieval(run, dataset, preset, limit, errors, fmt)
        return
    if template and templates is not None:
        raise typer.BadParameter("give --template or --templates, not both", param_hint="--template / --templates")
    check_templates(template or ())
    if errors is not None:
        check_writable(errors, "--errors")
    if confusion is not None:
        from bindcli.eval import confusion as matrix

        matrix.check(confusion)
    data = presets.read_preset(preset, dataset, run.out.progress) if preset else accuracy.read_dataset(dataset)
    if templates is not None:
        data = dataclasses.replace(data, templates=_template_set(templates))
    data = accuracy.subset(data, limit, per_class)
    embedder = run.embedder
    with run.out.progress(len(data.items), "Evaluating") as advance:
        report = accuracy.evaluate(
            embedder, data, template or (), as_kind=run.common.as_kind, progress=advance,
        )
    run.failed += run.out.failed(report.failed)
    if errors is not None:
        atomic.write_file(errors, formats.jsonl(
            {"path": m.path, "label": m.label, "top": [{"label": lbl, "score": printed(s)} for lbl, s in m.top]}
            for m in report.misses
        ))
        run.out.note(f"wrote {len(report.misses)} misclassified items to {errors}")
    if confusion is not None:
        matrix.write(confusion, report.total.confusion, report.labels, f"{report.dataset.name}: zero-shot confusion")
        run.out.note(f"wrote the confusion matrix to {confusion}")
    if resolved(fmt, run.out, EvalFormat.JSON) is EvalFormat.TABLE:
        _table(run, report)
    else:
        run.out.text(formats.json_text(report.to_json()))


def _retrieval(
    run: Run, dataset: Path, preset: Optional[str], limit: Optional[int], errors: Optional[Path], fmt: EvalFormat,
) -> None:
    """`--task retrieval`: a pairs table or a retrieval preset, its figures as JSON or a table."""
    from bindcli.eval import retrieval, retrieval_presets
    from bindcli.vectors import printed

    if preset:
        data = retrieval_presets.read_retrieval_preset(preset, dataset)
    elif dataset.is_file():
        data = retrieval.read_pairs(dataset)
    else:
        raise UsageError(f"{dataset}: not a CSV/TSV file of query,target rows")
    data = retrieval.subset(data, limit)
    embedder = run.embedder
    with run.out.progress(data.inputs, "Evaluating") as advance:
        report = retrieval.evaluate(embedder, data, as_kind=run.common.as_kind, progress=advance)
    run.failed += run.out.failed(report.failed)
    if errors is not None:
        atomic.write_file(errors, formats.jsonl(
            {"direction": m.direction, "query": m.query, "rank": m.rank,
             "top": [{"item": item, "score": printed(s), "right": right} for item, s, right in m.top]}
            for m in report.misses
        ))
        run.out.note(f"wrote {len(report.misses)} queries whose first hit is wrong to {errors}")
    if resolved(fmt, run.out, EvalFormat.JSON) is EvalFormat.TABLE:
        _retrieval_table(run, report)
    else:
        run.out.text(formats.json_text(report.to_json()))


def _retrieval_table(run: Run, report: "RetrievalReport") -> None:
    """A row per direction, the paper's figures in a row under the directions it reports."""
    from rich.table import Table

    data = report.data
    caption = data.protocol
    counts = f"{report.counts['queries']} queries, {report.counts['targets']} targets, {len(report.failed)} failed"
    table = Table(title=escape(f"{data.name}: retrieval ({counts})"), caption=escape(caption) if caption else None)
    columns = {"n": "queries", "r1": "R@1 %", "r5": "R@5 %", "r10": "R@10 %", "median_rank": "median rank",
               "mean_rank": "mean rank", "map": "mAP %"}
    table.add_column("", no_wrap=True)
    for heading in columns.values():
        table.add_column(heading, justify="right")

    def cell(metric: str, value: float | None) -> str:
        if value is None:
            return ""
        if metric == "n":
            return str(int(value))
        return f"{value:.1f}" if metric.endswith("rank") else f"{100 * value:.1f}"

    for direction, figures in report.figures.items():
        table.add_row(escape(direction.replace("_to_", " → ")), *(cell(m, figures.get(m)) for m in columns))
        paper = data.paper.get(direction)
        if paper:
            label = "  paper" + ("" if data.comparable else " (not comparable)")
            table.add_row(label, *(f"{paper[m]:.1f}" if m in paper else "" for m in columns), style="dim")
    run.out.table(table)


def _template_set(choice: str) -> tuple[str, ...]:
    """The templates `--templates` names; empty for bind's own per modality."""
    from bindcli import zeroshot
    from bindcli.eval import presets

    if choice == "bind":
        return ()
    if choice == "paper":
        return presets.paper_templates()
    if not Path(choice).is_file():
        raise typer.BadParameter(f"{choice!r} is not paper, bind or a file", param_hint="--templates")
    try:
        chosen = zeroshot.read_lines(choice)
    except UsageError as exc:
        raise typer.BadParameter(str(exc), param_hint="--templates") from None
    check_templates(chosen, "--templates", source=choice)
    if not chosen:
        raise typer.BadParameter(f"{choice}: no templates", param_hint="--templates")
    return chosen


def _table(run: Run, report: "Report") -> None:
    """One row per fold (a preset's), then the run's: the mean over folds where there are some."""
    from rich.markup import escape
    from rich.table import Table

    paper = report.dataset.paper
    protocol = report.dataset.protocol
    table = Table(title=escape(report.dataset.name), caption=escape(protocol) if protocol else None)
    table.add_column("")
    for column in ("items", "failed", "top-1 %", "top-5 %", "mean recall %"):
        table.add_column(column, justify="right")
    if paper is not None:
        table.add_column("paper top-1 %", justify="right")
        table.add_column("difference", justify="right")
    for fold, tally in report.folds.items():
        table.add_row(f"fold {fold}", str(tally.n), "", *(
            f"{100 * v:.1f}" for v in (tally.top1, tally.top5_rate, tally.mean_per_class_recall)
        ), *(("", "") if paper is not None else ()))
    figures = report.figures()
    top1 = 100 * figures["top1"]
    table.add_row(
        "mean of folds" if report.folds else "all", str(report.total.n), str(len(report.failed)),
        *(f"{100 * figures[k]:.1f}" for k in ("top1", "top5", "mean_per_class_recall")),
        *((f"{paper:.1f}", f"{top1 - paper:+.1f}") if paper is not None else ()),
        style="bold",
    )
    run.out.table(table)
