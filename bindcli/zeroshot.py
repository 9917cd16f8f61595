"""Zero-shot classification: text labels become directions, inputs are ranked against them.

Each label becomes one direction the way open_clip's zero-shot classifier builds it: every
prompt template filled with the label, embedded, normalised, averaged, normalised again. The
templates suit the input's modality ("a photo of a dog." for an image, "the sound of a dog."
for audio; `bindcli.modality`). Probabilities are the softmax of the cosines times the text
tower's learned logit scale: CLIP's zero-shot rule, and for images exactly upstream's softmax
of vision x text outputs.

Imports: bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.embed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from bindcli.errors import InputError, UsageError
from bindcli.modality import Kind
from bindcli.vectors import normalise, softmax_rows, top_k

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.embedder import Embedder
    from bindcli.embed.stages import Embedding


class LabelScore(NamedTuple):
    """One label's result for one input: its probability and its cosine."""

    label: str
    probability: float
    score: float


def fill(template: str, label: str) -> str:
    return template.replace("{}", label)


#: a `#` at the start of a line or after a space, and the rest of the line
_COMMENT = re.compile(r"(^|\s)#.*")


def read_lines(path: str | Path) -> tuple[str, ...]:
    """A file of one entry a line (labels, templates): as in a shell, a `#` that starts a word
    starts a comment (a line of its own, or after the entry), while one inside a word is part
    of it (`C#`); blank lines and surrounding spaces dropped. A file that cannot be read as
    UTF-8 text is a UsageError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    return tuple(kept for line in text.splitlines() if (kept := _COMMENT.sub("", line).strip()))


def check_templates(templates: Sequence[str]) -> None:
    """Refuse a template without the `{}` the label goes in."""
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise UsageError(f"{bad[0]!r} has no {{}} for the label")


def templates_for(kinds: Iterable[Kind], override: Sequence[str] = ()) -> dict[Kind, tuple[str, ...]]:
    """The prompt templates of each kind: its modality's own, or `override` for all."""
    check_templates(override)
    return {k: tuple(override) if override else k.modality.templates for k in kinds}


def prompts(labels: Sequence[str], templates: Mapping[Kind, Sequence[str]]) -> list[str]:
    """Every distinct prompt the labels need under `templates`, in a stable order."""
    return list(dict.fromkeys(fill(t, n) for ts in templates.values() for t in ts for n in labels))


@dataclasses.dataclass(frozen=True)
class Classifier:
    """Labels as directions per input kind, with the text tower's logit scale."""

    labels: tuple[str, ...]
    directions: dict[Kind, np.ndarray]  # kind -> (labels, dim) unit rows
    scale: float

    @classmethod
    def from_prompts(
        cls,
        labels: Sequence[str],
        templates: Mapping[Kind, Sequence[str]],
        embedded: "Mapping[str, Embedding]",
    ) -> "Classifier":
        """From the embeddings of `prompts(labels, templates)`, keyed by prompt."""
        # text outputs are unit vectors times the learned logit scale: their norm is that scale
        scale = float(np.mean([np.linalg.norm(e.raw) for e in embedded.values()])) if embedded else 0.0
        directions = {
            kind: normalise(np.stack([
                np.mean([embedded[fill(t, n)].unit for t in ts], axis=0) for n in labels
            ]))
            for kind, ts in templates.items()
        }
        return cls(tuple(labels), directions, scale)

    def rank(self, embedding: "Embedding", k: int | None = None) -> list[LabelScore]:
        """The labels by probability, best first (`k` of them; all if None or 0)."""
        scores = self.directions[embedding.input.kind] @ embedding.unit
        probs = softmax_rows(self.scale * scores.astype(np.float64))
        return [
            LabelScore(self.labels[i], float(probs[i]), float(scores[i])) for i in top_k(probs, k)
        ]


def classify(
    embedder: "Embedder",
    paths: Sequence[str] = (),
    labels: Sequence[str] = (),
    *,
    texts: Sequence[str] = (),
    templates: Sequence[str] = (),
    k: int | None = None,
) -> "list[list[LabelScore] | InputError]":
    """Zero-shot labels for each file, then each text: its ranked labels, or the InputError
    that stopped it. Inputs and prompts go through the embedder in one run."""
    from bindcli.embed.inputs import Input, gather

    if not labels:
        raise UsageError("give the candidate labels")
    inputs = gather(paths, texts)
    by_kind = templates_for({x.kind for x in inputs if isinstance(x, Input)}, templates)
    asked = prompts(labels, by_kind)
    results = embedder.embed(inputs + [Input.text(p) for p in asked])
    classifier = Classifier.from_prompts(labels, by_kind, dict(zip(asked, results[len(inputs):])))
    return [r if isinstance(r, InputError) else classifier.rank(r, k) for r in results[: len(inputs)]]
