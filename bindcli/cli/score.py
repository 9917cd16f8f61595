"""`bind score`: the ImageBind score of pairs (`bindcli.score` does the work)."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from bindcli._util import formats
from bindcli.cli.options import command
from bindcli.cli.run import Run
from bindcli.errors import InputError

#: files given as arguments that are pairs tables, not videos
TABLE_SUFFIXES = (".csv", ".tsv")


class ScoreFormat(str, enum.Enum):
    JSONL = "jsonl"
    JSON = "json"


@command
def score(
    run: Run,
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="VIDEO_OR_PAIRS", show_default=False,
        help="A video (its frames against its own sound track) or a CSV/TSV of pairs as --pairs takes.",
    )] = None,
    pairs: Annotated[Optional[list[Path]], typer.Option(
        "--pairs", metavar="FILE", dir_okay=False, show_default=False,
        help="A CSV/TSV with columns a,b: two files a row, paths relative to it (an a_text or "
        "b_text column holds texts: caption-image, caption-sound pairs). Repeatable.",
    )] = None,
    scale: Annotated[float, typer.Option(
        "--scale",
        help="The score is the cosine of the two unit vectors times this: 100 as av-benchmark "
        "reports it, 1 for the raw cosine (bind compare's).",
    )] = 100.0,
    frames: Annotated[Optional[int], typer.Option(
        "--frames", min=2, show_default=False,
        help="Frames a video gives the vision tower, an even number: clips of 2 s spread over "
        "it, the first and last frame of each. Default: upstream's 10 (5 clips).",
    )] = None,
    clips: Annotated[Optional[int], typer.Option(
        "--clips", min=1, show_default=False,
        help="Clips of 2 s spread over a sound track. Default: upstream's 3.",
    )] = None,
    fmt: Annotated[ScoreFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="jsonl: one object a pair (the summary on stderr); json: one object, the pairs and the summary.",
    )] = ScoreFormat.JSONL,
) -> None:
    """ImageBind score: the cosine of two inputs' unit vectors x 100, per pair and averaged.

    For generated audio-video: a video's frames against its own sound, or --pairs of
    separate files; also caption-image and caption-sound pairs. The definition and the
    sampling of frames and sound are printed with the mean.

    [dim]Examples:[/dim]
      bind score generated/*.mp4
      bind score --pairs pairs.csv --scale 1
      bind score clip.mp4 --frames 16 --clips 5 -f json
    """
    from bindcli import score as scoring
    from bindcli.vectors import printed

    if not inputs and not pairs:
        raise typer.BadParameter("give a video or a pairs file", param_hint="VIDEO_OR_PAIRS")
    if not scale > 0:
        raise typer.BadParameter(f"{scale:g}: give a number above 0", param_hint="--scale")
    options = scoring.sampling(frames, clips)
    run.common = dataclasses.replace(run.common, loading=options)
    chosen: list[scoring.Pair] = []
    for item in inputs or []:
        is_table = Path(item).suffix.lower() in TABLE_SUFFIXES
        chosen += scoring.read_pairs(item) if is_table else [scoring.own_sound(item)]
    for table in pairs or []:
        chosen += scoring.read_pairs(table)
    if all(isinstance(p.a, InputError) or isinstance(p.b, InputError) for p in chosen):
        # nothing to load the model for
        results: list = [p.a if isinstance(p.a, InputError) else p.b for p in chosen]
    else:
        with run.out.progress(2 * len(chosen), "Scoring") as advance:
            results = scoring.score(run.embedder, chosen, scale, advance)
    run.failed += run.out.failed([r for r in results if not isinstance(r, scoring.Scored)])
    records = [
        {"a": r.a.source, "b": r.b.source, "a_kind": r.a.kind.value, "b_kind": r.b.kind.value, "score": printed(r.score)}
        for r in results if isinstance(r, scoring.Scored)
    ]
    summary = {
        **scoring.describe(options, scale), "pairs": len(records), "failed": len(chosen) - len(records),
        "mean": None if not records else printed(scoring.mean(results)),  # type: ignore[arg-type]
    }
    if fmt is ScoreFormat.JSON:
        run.out.text(formats.json_text({**summary, "scores": records}))
        return
    run.out.text(formats.jsonl(records))
    if records:
        run.out.note(
            f"ImageBind score {summary['mean']:.2f}, the mean of {len(records)} pairs ({summary['definition']}; "
            f"frames: {summary['frames']}; sound: {summary['sound']})"
        )
