"""`bind classify`: zero-shot labels for any modality, from text prompts.

Each label becomes one direction in the space the way open_clip's zero-shot classifier builds
it: every prompt template filled with the label, embedded, normalised, averaged, normalised
again. The prompts suit the input's modality ("a photo of a dog." for an image, "the sound of
a dog." for audio). Probabilities are the softmax of the cosines times the text tower's
learned logit scale: CLIP's zero-shot rule, and for images exactly upstream's softmax of
vision x text outputs.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli import output
from bindcli.cli.common import Run, command, pick_format, table_labels
from bindcli.modality import Kind

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.runtime import Embedding

_PHOTO = ("a photo of a {}.", "a photo of the {}.", "a close-up photo of a {}.",
          "a blurry photo of a {}.", "a bright photo of a {}.", "a cropped photo of a {}.",
          "a good photo of a {}.", "a photo of one {}.")

#: prompt templates per input kind; `{}` is the label
TEMPLATES: dict[Kind, tuple[str, ...]] = {
    Kind.IMAGE: _PHOTO,
    Kind.VIDEO: ("a video of a {}.", "a video of the {}.", "a clip of a {}.", "footage of a {}."),
    Kind.AUDIO: ("a sound of a {}.", "the sound of a {}.", "a recording of a {}.",
                 "the sound a {} makes."),
    Kind.DEPTH: ("a depth map of a {}.", "a depth photo of a {}.", *_PHOTO[:2]),
    Kind.THERMAL: ("a thermal image of a {}.", "an infrared photo of a {}.", *_PHOTO[:2]),
    Kind.IMU: ("{}",),
    Kind.TEXT: ("{}",),
}


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
    fmt: Annotated[ClassifyFormat, typer.Option(
        "--format", "-f", case_sensitive=False, help="auto: a table on a terminal, JSONL in a pipe.",
    )] = ClassifyFormat.AUTO,
) -> None:
    """Zero-shot classification against text labels.

    [dim]Examples:[/dim]
      bind classify dog.jpg bark.wav --labels dog,car,bird
      bind classify clip.mp4 --labels-file labels.txt --template "a video of people {}." -k 3
    """
    import numpy as np

    from bindcli.runtime import Input

    names = read_labels(labels or [], labels_file)
    if not files and not text:
        raise typer.BadParameter("give at least one FILE or --text", param_hint="FILE")
    bad = [t for t in template or [] if "{}" not in t]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r} has no {{}} for the label", param_hint="--template")
    inputs = run.inputs(files or [], text or [])
    kinds = {x.kind for x in inputs if isinstance(x, Input)}
    templates = {k: tuple(template) if template else TEMPLATES[k] for k in kinds}
    prompts = list(dict.fromkeys(fill(t, n) for k in kinds for t in templates[k] for n in names))
    results = run.embed(inputs + [Input.text(p) for p in prompts])
    by_prompt = dict(zip(prompts, results[len(inputs):]))
    # text outputs are unit vectors times the learned logit scale: their norm is that scale
    scale = float(np.mean([np.linalg.norm(v.raw) for v in by_prompt.values()])) if prompts else 0.0
    classified = []
    for e in results[: len(inputs)]:
        if e is None:
            continue
        directions = label_directions(names, templates[e.input.kind], by_prompt)
        classified.append((e, rank(e, names, directions, scale, top_k)))
    fmt = ClassifyFormat(pick_format(fmt.value, run.out, ClassifyFormat.JSONL.value))
    if fmt is ClassifyFormat.TABLE:
        _table(run, classified)
    else:
        run.out.text(output.jsonl(
            {"input": e.input.source, "modality": e.input.kind.value, "labels": ranked}
            for e, ranked in classified
        ))


def read_labels(labels: Sequence[str], labels_file: Path | None) -> list[str]:
    """Labels from --labels (comma-separated) and --labels-file, in order, each once."""
    found = [part.strip() for item in labels for part in item.split(",")]
    if labels_file is not None:
        for line in labels_file.read_text(encoding="utf-8").splitlines():
            found.append(line.split("#", 1)[0].strip())
    names = list(dict.fromkeys(n for n in found if n))
    if not names:
        raise typer.BadParameter("give the candidate labels", param_hint="--labels / --labels-file")
    return names


def fill(template: str, label: str) -> str:
    return template.replace("{}", label)


def label_directions(
    names: Sequence[str], templates: Sequence[str], by_prompt: "dict[str, Embedding]"
) -> "np.ndarray":
    """(labels, dim): each label's prompt embeddings normalised, averaged, normalised."""
    import numpy as np

    from bindcli.runtime import normalise

    return normalise(np.stack([
        np.mean([by_prompt[fill(t, n)].unit for t in templates], axis=0) for n in names
    ]))


def rank(
    e: "Embedding", names: Sequence[str], directions: "np.ndarray", scale: float, top_k: int
) -> list[dict]:
    """`{"label", "probability", "score"}` by probability, best first; score is the cosine."""
    import numpy as np

    scores = directions @ e.unit
    logits = scale * scores.astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")[: top_k or None]
    return [
        {"label": names[i], "probability": round(float(probs[i]), 6), "score": round(float(scores[i]), 6)}
        for i in order
    ]


def _table(run: Run, classified: "list[tuple[Embedding, list[dict]]]") -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for column, justify in (("input", "left"), ("label", "left"), ("probability", "right"), ("cosine", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    labels = table_labels([e for e, _ in classified])
    for n, (label, (e, ranked)) in enumerate(zip(labels, classified)):
        for i, item in enumerate(ranked):
            style = "bold green" if i == 0 else None
            table.add_row(
                label if i == 0 else "", escape(item["label"]),
                f"{item['probability']:.3f}", f"{item['score']:.3f}",
                style=style, end_section=i == len(ranked) - 1 and n < len(classified) - 1,
            )
    run.out.table(table)
