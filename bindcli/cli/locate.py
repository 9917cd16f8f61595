"""`bind locate`: where in each image a sound, a text or another picture is.

The query is `bind arith`'s expression, given as `--query` values: each value is one word of
it (`--query a.wav --query + --query 0.5:b.jpg`), or several words in one value (`--query
"a.wav + 0.5:b.jpg"`), split as a shell would unless the value names an existing file.
"""

from __future__ import annotations

import enum
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import atomic, formats
from bindcli.cli.options import command
from bindcli.cli.render import resolved
from bindcli.cli.run import Run
from bindcli.errors import InputError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from bindcli.locate import Located


class LocateFormat(str, enum.Enum):
    AUTO = "auto"
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"


class Reduce(str, enum.Enum):
    MAX = "max"
    MEAN = "mean"


@command
def locate(
    run: Run,
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", show_default=False,
                                                 help="Images to search in.")],
    query: Annotated[Optional[list[str]], typer.Option(
        "--query", "-Q", metavar="TERM", show_default=False,
        help="The query, in `bind arith`'s syntax: a file of any modality, 0.5:file, + and - "
        "(repeatable; one value may hold several words: \"a.wav + 0.5:b.jpg\").",
    )] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", show_default=False,
        help="A text query term; 'W:text' weights it, a negative W subtracts (repeatable).",
    )] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Boxes per image.")] = 5,
    min_score: Annotated[Optional[float], typer.Option(
        "--min-score", show_default=False, help="Drop boxes below this cosine.",
    )] = None,
    proposals: Annotated[Optional[Path], typer.Option(
        "--proposals", metavar="FILE.json", dir_okay=False, show_default=False,
        help="Boxes to re-rank instead of the window grid: [[x0,y0,x1,y1], ...] for every "
        "image, or {image: boxes}.",
    )] = None,
    out_image: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="OUT.png", dir_okay=False, show_default=False,
        help="Draw the boxes and scores on the image (one image only).",
    )] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", metavar="DIR", file_okay=False, show_default=False,
        help="Draw the boxes on each image, as DIR/NAME.boxes.png.",
    )] = None,
    heatmap: Annotated[Optional[Path], typer.Option(
        "--heatmap", metavar="OUT.png", dir_okay=False, show_default=False,
        help="Write the window scores as a coloured overlay (one image only).",
    )] = None,
    heat: Annotated[Reduce, typer.Option(
        "--heat", case_sensitive=False, help="Per pixel: the max or the mean of the scores "
        "of the windows covering it.",
    )] = Reduce.MAX,
    fmt: Annotated[LocateFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="auto: a table on a terminal, JSONL in a pipe; json: one list of all images.",
    )] = LocateFormat.AUTO,
) -> None:
    """Find where in each image the query is: regions ranked by cosine to it.

    The vision tower scores a multi-scale grid of windows (or --proposals from a detector);
    the best are thinned by non-maximum suppression and refined to fit. Boxes are in pixels
    of the upright image (EXIF orientation applied), best first.

    [dim]Examples:[/dim]
      bind locate park.jpg --query bark.wav -o park.boxes.png
      bind locate park.jpg --text "a dog" --query "- 0.5:grass.jpg" --heatmap heat.png
      bind locate shots/*.jpg --query bark.wav --proposals boxes.json -f json
    """
    from bindcli.locate import locate as find
    from bindcli.locate import read_proposals
    from bindcli.media.image import open_image
    from bindcli.media.options import MediaOptions
    from bindcli.query import Query

    if out_image and out_dir:
        raise UsageError("use either -o FILE or --out-dir DIR")
    if len(images) > 1 and (out_image or heatmap):
        raise UsageError("-o and --heatmap draw one image; with several, use --out-dir")
    run.needs_weights = True  # the crops go through the encoder here, whatever embeds the query
    tokens = [w for value in query or [] for w in (_words(value))]
    parsed = Query.parse(tokens, text or [])
    boxes_for = read_proposals(proposals) if proposals else None
    vector = run.query_vector(parsed, "Embedding the query")
    if vector is None:
        return  # the failed term is named on stderr (exit 1)
    embedder = run.local_embedder  # crops go through the encoder itself
    found: list[Located] = []
    names = _picture_names(images)
    with run.out.progress(len(images), "Locating") as advance:
        for path in images:
            try:
                img = open_image(path, embedder.options or MediaOptions())
                located = find(
                    embedder, img, vector, k=top_k, min_score=min_score,
                    proposals=boxes_for(str(path)) if boxes_for else None,
                    heat=heat.value if heatmap else None, name=str(path),
                )
            except InputError as exc:
                run.failed += run.out.failed([exc])
            else:
                found.append(located)
                _pictures(run, img, located, out_image, out_dir and out_dir / names[path], heatmap)
            advance(1)
    _show(run, found, fmt)


def _words(value: str) -> list[str]:
    """One `--query` value as expression words (a file's own name is never split)."""
    if Path(value).exists():
        return [value]
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise UsageError(f"--query {value!r}: {exc}") from None


def _record(located: "Located") -> dict:
    from bindcli.vectors import printed

    return {
        "image": located.image, "width": located.width, "height": located.height,
        "boxes": [{"box": list(b.box), "score": printed(b.score)} for b in located.boxes],
    }


def _show(run: Run, found: "list[Located]", fmt: LocateFormat) -> None:
    fmt = resolved(fmt, run.out, LocateFormat.JSONL)
    if fmt is LocateFormat.JSON:
        run.out.text(formats.json_text([_record(x) for x in found]))
    elif fmt is LocateFormat.JSONL:
        run.out.text(formats.jsonl(_record(x) for x in found))
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table()
        for column in ("image", "#", "score", "box (x0, y0, x1, y1)"):
            table.add_column(column, justify="right" if column in ("#", "score") else "left")
        for x in found:
            for n, b in enumerate(x.boxes, 1):
                table.add_row(escape(x.image) if n == 1 else "", str(n), f"{b.score:.3f}",
                              ", ".join(map(str, b.box)))
        run.out.table(table)


def _picture_names(images: "list[Path]") -> "dict[Path, str]":
    """`--out-dir` file names: NAME.boxes.png, with a hash of the path where two images share
    a name (photos/a/1.jpg, photos/b/1.jpg), so no picture overwrites another."""
    import hashlib
    from collections import Counter

    stems = Counter(Path(p).stem for p in images)
    return {
        p: f"{Path(p).stem}.boxes.png" if stems[Path(p).stem] == 1 else
        f"{Path(p).stem}-{hashlib.sha256(str(Path(p).absolute()).encode()).hexdigest()[:8]}.boxes.png"
        for p in images
    }


def _pictures(run: Run, img: "Image.Image", located: "Located", out_image: Path | None,
              in_dir: Path | None, heatmap: Path | None) -> None:
    """The pictures asked for, each written atomically (`in_dir`: the `--out-dir` file)."""
    from bindcli.locate import draw_boxes, draw_heat

    if out_image or in_dir:
        _save(run, draw_boxes(img, located.boxes), out_image or in_dir)  # type: ignore[arg-type]
    if heatmap and located.heat is not None:
        _save(run, draw_heat(img, located.heat), heatmap)


def _save(run: Run, picture: "Image.Image", target: Path) -> None:
    with atomic.atomic_path(target) as tmp:
        picture.save(tmp, format="PNG")
    run.out.note(f"wrote {target}")
