"""`bind tune`: train an adapter on the user's data, and report what it changed
(`bindcli.tune` does the work)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli.cli.eval import EvalFormat
from bindcli.cli.options import check_templates, check_writable, command
from bindcli.cli.render import resolved
from bindcli.cli.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.eval.accuracy import Dataset
    from bindcli.tune.data import TuneData
    from bindcli.tune.report import TuneReport
    from bindcli.tune.train import Epoch


class Method(str, enum.Enum):
    HEAD = "head"
    LORA = "lora"


@command(without=("adapter", "server", "no_server"))
def tune(
    run: Run,
    data: Annotated[Path, typer.Argument(
        metavar="DATA", show_default=False,
        help="Class folders (any modality; the class name is the text), a CSV/TSV with "
        "path,label columns, or a CSV/TSV of pairs a,b (a file against an image or a text).",
    )],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="ADAPTER", dir_okay=False, show_default=False,
        help="The adapter file to write (.safetensors); its checkpoint is ADAPTER.ckpt.",
    )] = None,
    method: Annotated[Method, typer.Option(
        "--method", case_sensitive=False,
        help="head: a linear map on the tower's output (cheap, safe); lora: low-rank updates "
        "of the last --blocks blocks' attention and MLP.",
    )] = Method.HEAD,
    rank: Annotated[int, typer.Option("--rank", min=1, help="lora's rank.")] = 4,
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="lora: how many of the last blocks.")] = 2,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most epochs to run.")] = 20,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", min=0.0, show_default=False, help="Learning rate. Default: 1e-2 (head), 1e-3 (lora).",
    )] = None,
    train_batch: Annotated[int, typer.Option("--train-batch", min=2, help="Items per training step.")] = 16,
    val: Annotated[str, typer.Option(
        "--val", metavar="FRACTION|DATA",
        help="The held-out split: this fraction of each class, or a second DATA.",
    )] = "0.2",
    seed: Annotated[int, typer.Option("--seed", help="Draws the split, the start and each epoch's order.")] = 0,
    patience: Annotated[int, typer.Option(
        "--patience", min=1, help="Stop after this many epochs without a better held-out figure.",
    )] = 5,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="InfoNCE temperature.")] = 0.07,
    checkpointing: Annotated[bool, typer.Option(
        "--checkpointing", help="lora: recompute activations in the backward pass (less memory, slower).",
    )] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run whose checkpoint (ADAPTER.ckpt) is there.",
    )] = False,
    keep: Annotated[Optional[Path], typer.Option(
        "--keep", metavar="DATA", show_default=False,
        help="A second labelled data set (as bind eval reads it) measured before and after: "
        "what the adapter costs elsewhere.",
    )] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", metavar="ADAPTER", dir_okay=False, show_default=False,
        help="Train nothing: report ADAPTER's before/after figures on DATA (its held-out split "
        "when DATA is the data it was tuned on).",
    )] = None,
    template: Annotated[Optional[list[str]], typer.Option(
        "--template", metavar="TEXT", show_default=False,
        help="Prompt template with {} for the class name (repeatable), as bind eval's.",
    )] = None,
    fmt: Annotated[EvalFormat, typer.Option(
        "--format", "-f", case_sensitive=False, help="auto: a table on a terminal, JSON in a pipe.",
    )] = EvalFormat.AUTO,
) -> None:
    """Adapt one tower to your data: an adapter file that every command takes (--adapter).

    Only the tuned modality's tower trains; the anchor (the class names' text, or the pairs'
    images or texts) stays frozen, its vectors from bind's cache. At the end, top-1 on the
    held-out split before and after, by bind eval's protocol (and on --keep DATA).

    [dim]Examples:[/dim]
      bind tune birds/ -o birds.safetensors
      bind tune birds/ -o birds.safetensors --method lora --rank 8 --blocks 4 --keep sounds/
      bind tune --report birds.safetensors birds/
      bind classify --adapter birds.safetensors photo.jpg -l robin -l wren
    """
    from bindcli.model.adapter import read_adapter
    from bindcli.tune import data as tune_data
    from bindcli.tune import report as tune_report

    templates = tuple(template or ())
    check_templates(templates)
    run.needs_weights = True  # the tower trains here, never on a server
    if report is None and output is None:
        raise typer.BadParameter("give -o ADAPTER to write, or --report ADAPTER", param_hint="--output")
    if report is not None and (output is not None or resume):
        raise typer.BadParameter("--report trains nothing: not with -o or --resume", param_hint="--report")
    if output is not None:
        check_writable(output, "--output")
    everything = tune_data.read_data(data)
    kept = _keep(keep)
    as_kind = run.common.as_kind
    if report is not None:
        adapter = read_adapter(report)
        base = run.local_embedder
        held_out = tune_report.held_out_of(adapter, everything)
        result = _measure(run, base, tune_report.with_adapter(base, adapter), held_out, kept, templates)
        return _print(run, result, fmt)
    training, held_out, drawn = _split(everything, val, seed)
    tune_data.tuned_tower(training, as_kind)  # data for no one tower is refused before loading
    from bindcli.tune.train import Callbacks, Settings, train

    settings = Settings(
        method=method.value, rank=rank, blocks=blocks, epochs=epochs, lr=lr, batch=train_batch,
        temperature=temperature, patience=patience, seed=seed, checkpointing=checkpointing,
        templates=templates,
    )
    settings.check()
    base = run.local_embedder
    with run.out.progress(epochs * max(2, len(training.examples)), "Tuning") as advance:
        def epoch(result: "Epoch") -> None:
            advance(0, f"epoch {result.number}/{result.epochs}: loss {result.loss:.3f}, "
                       f"held-out top-1 {result.val_top1:.3f}")
            run.out.note(f"epoch {result.number}/{result.epochs}: loss {result.loss:.4f}, held-out loss "
                         f"{result.val_loss:.4f}, top-1 {result.val_top1:.3f}" + (" (best)" if result.best else ""))

        outcome = train(
            base, training, held_out, output, settings, as_kind=as_kind, split=drawn, resume=resume,  # type: ignore[arg-type]
            callbacks=Callbacks(step=advance, epoch=epoch),
        )
    run.failed += run.out.failed(outcome.skipped)
    if outcome.stopped_early:
        run.out.note(f"stopped early: no better held-out figure in {patience} epochs")
    header = outcome.adapter.header
    run.out.note(f"wrote {output} ({header.method}, {header.tower} tower, epoch "
                 f"{header.validation.get('epoch')} of {header.epochs})")
    tuned = tune_report.with_adapter(base, outcome.adapter)
    reported = frozenset(e.source for e in outcome.skipped)
    _print(run, _measure(run, base, tuned, held_out, kept, templates, reported), fmt)


def _split(everything: "TuneData", val: str, seed: int) -> "tuple[TuneData, TuneData, dict]":
    """(training, held-out, how the split was drawn) from `--val`."""
    from bindcli.tune import data as tune_data
    from bindcli.tune.train import data_hash

    try:
        fraction = float(val)
    except ValueError:
        held_out = tune_data.read_data(val)
        return everything, held_out, {"val": Path(val).name}
    training, held_out = tune_data.split(everything, fraction, seed)
    return training, held_out, {"fraction": fraction, "seed": seed, "of": data_hash(everything)}


def _keep(keep: Path | None) -> "Dataset | None":
    """The `--keep` data set, read as `bind eval` reads one."""
    if keep is None:
        return None
    from bindcli.eval.accuracy import read_dataset

    return read_dataset(keep)


def _measure(
    run: Run, base: "Embedder", tuned: "Embedder", held_out: "TuneData", kept: "Dataset | None",
    templates: tuple[str, ...], reported: frozenset[str] = frozenset(),
) -> "TuneReport":
    """The report's figures; failures are reported unless training reported them already."""
    from bindcli.tune.report import TuneReport, compare

    as_kind = run.common.as_kind
    items = len(held_out.examples) + (len(kept.items) if kept is not None else 0)
    with run.out.progress(2 * items, "Measuring") as advance:
        figure = compare(base, tuned, held_out, templates, as_kind=as_kind, progress=advance)
        other = compare(base, tuned, kept, templates, progress=advance) if kept is not None else None
    failed = list(figure.failed) + (list(other.failed) if other is not None else [])
    run.failed += run.out.failed(e for e in failed if e.source not in reported)
    return TuneReport(tuned.adapter, figure, other)


def _print(run: Run, result: "TuneReport", fmt: EvalFormat) -> None:
    from bindcli._util import formats

    if resolved(fmt, run.out, EvalFormat.JSON) is EvalFormat.TABLE:
        from rich.markup import escape
        from rich.table import Table

        h = result.adapter.header
        table = Table(title=escape(f"{result.adapter.path.name}: {h.method} on the {h.tower} tower"))
        table.add_column("")
        for column in ("data", "items", "before %", "after %", "change"):
            table.add_column(column, justify="right" if column != "data" else "left")
        rows = [("held out", result.held_out)] + ([("keep", result.keep)] if result.keep else [])
        for name, c in rows:
            table.add_row(name, escape(c.name), str(c.n), f"{100 * c.before:.1f}", f"{100 * c.after:.1f}",
                          f"{100 * (c.after - c.before):+.1f}")
        table.caption = escape(result.held_out.protocol)
        run.out.table(table)
    else:
        run.out.text(formats.json_text(result.to_json()))
