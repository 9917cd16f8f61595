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
from bindcli.cli.options import READING_OPTION, SEGMENTS_OPTION, command, parse_segments
from bindcli.cli.render import resolved
from bindcli.cli.run import Run
from bindcli.errors import InputError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from bindcli.locate import Located
    from bindcli.when import Timeline
    from bindcli.windows import Reading, Window


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
    images: Annotated[Optional[list[Path]], typer.Argument(
        metavar="IMAGE", show_default=False, help="Images to search in.")] = None,
    recordings: Annotated[Optional[list[Path]], typer.Option(
        "--in", metavar="FILE", show_default=False,
        help="Search in time instead: when in this audio, video or IMU file the query is "
        "(repeatable); time ranges ranked by score, edges refined.",
    )] = None,
    segments: SEGMENTS_OPTION = None,
    reading: READING_OPTION = None,
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
        help="Draw the boxes and scores on the image (one image only); with --in, the "
        "timeline: the score over time with the best ranges marked (needs matplotlib).",
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
      bind locate --query bark.wav --in walk.mp4 --reading sound -o timeline.png
    """
    from bindcli.locate import locate as find
    from bindcli.locate import read_proposals
    from bindcli.media.image import open_image
    from bindcli.media.options import MediaOptions
    from bindcli.query import Query

    if recordings:
        if images or proposals or out_dir or heatmap:
            raise UsageError("--in searches recordings in time; IMAGE, --proposals, --out-dir and --heatmap are for images")
        _in_time(run, recordings, query, text, segments, reading, top_k, min_score, out_image, fmt)
        return
    if not images:
        raise typer.BadParameter("give an IMAGE to search in, or --in FILE for a recording", param_hint="IMAGE")
    if segments or reading:
        raise UsageError("--segments and --reading go with --in")
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


def _in_time(
    run: Run, recordings: list[Path], query: list[str] | None, text: list[str] | None, segments: str | None,
    readings: list[str] | None, top_k: int, min_score: float | None, picture: Path | None, fmt: LocateFormat,
) -> None:
    """`locate --in`: the best time ranges of each recording (`bindcli.when`)."""
    from bindcli.query import Query
    from bindcli.when import check_picture, draw_timeline, when
    from bindcli.windows import READINGS, Window

    if picture is not None:
        if len(recordings) > 1:
            raise UsageError("-o draws one timeline; give one --in FILE")
        check_picture(picture)
    window, chosen = parse_segments(run, segments or "2s", readings)
    run.local_only = True
    vector = run.query_vector(Query.parse([w for v in query or [] for w in _words(v)], text or []),
                              "Embedding the query")
    if vector is None:
        return  # the failed term is named on stderr (exit 1)
    embedder = run.local_embedder
    found = []
    for path in recordings:
        try:
            from bindcli.modality import detect

            own = READINGS.get(detect(path, run.common.as_kind).value, ())
            how = next((r for r in chosen if r in own), own[0] if own else None)
            spec = window if segments else _default_window(how)
            timeline = when(embedder, path, vector, spec or Window(2, 1), how, k=top_k, min_score=min_score)
        except InputError as exc:
            run.failed += run.out.failed([exc])
            continue
        found.append(timeline)
        if picture is not None:
            draw_timeline(timeline, picture)
            run.out.note(f"wrote {picture}")
    _show_times(run, found, fmt)


def _default_window(reading: "Reading | None") -> "Window | None":
    """Without --segments: windows as long as the reading's tower takes (2 s; a frame: 1 s),
    every half window."""
    from bindcli.windows import Window

    if reading is None:
        return None
    length = reading.shortest or 1.0
    return Window(length, length / 2)


def _show_times(run: Run, found: "list[Timeline]", fmt: LocateFormat) -> None:
    from bindcli.vectors import printed

    records = [
        {"input": str(t.source), "reading": t.reading,
         "moments": [{"start": round(m.start, 3), "end": round(m.end, 3), "score": printed(m.score)} for m in t.moments]}
        for t in found
    ]
    fmt = resolved(fmt, run.out, LocateFormat.JSONL)
    if fmt is LocateFormat.JSON:
        run.out.text(formats.json_text(records))
    elif fmt is LocateFormat.JSONL:
        run.out.text(formats.jsonl(records))
    else:
        from rich.markup import escape
        from rich.table import Table

        from bindcli.cli.render import span

        table = Table()
        for column in ("file", "#", "score", "when"):
            table.add_column(column, justify="right" if column in ("#", "score") else "left")
        for t in found:
            for n, m in enumerate(t.moments, 1):
                table.add_row(escape(Path(t.source).name) if n == 1 else "", str(n), f"{m.score:.3f}", span(m.start, m.end))
        run.out.table(table)


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
