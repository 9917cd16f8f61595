"""`bind embed`: files and texts in, vectors out, in the form the next tool wants."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bindcli._util import atomic, formats
from bindcli._util.paths import path_text
from bindcli.cli.engine import (
    ADDRESS_OPTION,
    CPUS_OPTION,
    ENGINE_OPTION,
    GPUS_OPTION,
    WORKERS_OPTION,
    EngineName,
    refuse_uris,
    use_engine,
)
from bindcli.cli.options import READING_OPTION, SEGMENTS_OPTION, command, segmented
from bindcli.cli.render import each_embedding, resolved, table_labels
from bindcli.cli.run import Run

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from bindcli.embed.stages import Embedding


class EmbedFormat(str, enum.Enum):
    AUTO = "auto"
    TABLE = "table"
    JSONL = "jsonl"
    JSON = "json"
    CSV = "csv"
    NPY = "npy"


#: file suffix -> format, for `-o FILE` without --format
SUFFIX_FORMATS = {
    ".npy": EmbedFormat.NPY,
    ".jsonl": EmbedFormat.JSONL,
    ".ndjson": EmbedFormat.JSONL,
    ".json": EmbedFormat.JSON,
    ".csv": EmbedFormat.CSV,
}


@command
def embed(
    run: Run,
    files: Annotated[Optional[list[str]], typer.Argument(
        metavar="FILE", show_default=False,
        help="Files to embed; with --engine ray also URIs (s3://bucket/key). '-' reads paths "
        "from stdin, one per line (or NUL-separated).",
    )] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", show_default=False, help="A text to embed (repeatable).",
    )] = None,
    fmt: Annotated[EmbedFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="auto: a summary table on a terminal, JSONL in a pipe. With -o, taken from the "
        "file's suffix.",
    )] = EmbedFormat.AUTO,
    out_file: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE", dir_okay=False,
        help="Write to FILE instead of stdout. FILE.npy gets one stacked float32 array plus "
        "a manifest FILE.npy.json (input, modality, sha256, model, precision).",
    )] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", metavar="DIR", file_okay=False,
        help="Write one DIR/<input name>.npy per input, plus DIR/manifest.json.",
    )] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Upstream's outputs (scaled per modality) instead of unit vectors.",
    )] = False,
    segments: SEGMENTS_OPTION = None,
    reading: READING_OPTION = None,
    engine: ENGINE_OPTION = EngineName.LOCAL,
    address: ADDRESS_OPTION = None,
    workers: WORKERS_OPTION = None,
    gpus_per_worker: GPUS_OPTION = 0,
    cpus_per_worker: CPUS_OPTION = 1,
) -> None:
    """Embed files and texts into ImageBind's shared space.

    Unit-length vectors by default, so a dot product is the cosine similarity.

    [dim]Examples:[/dim]
      bind embed dog.jpg bark.wav --text "a dog"
      find photos -name '*.jpg' | bind embed - -o photos.npy
      bind embed --segments 5s:2.5s podcast.mp3 -o podcast.jsonl
    """
    if not files and not text:
        raise typer.BadParameter("give at least one FILE or --text", param_hint="FILE")
    use_engine(run, engine, address, workers, gpus_per_worker, cpus_per_worker)
    if out_file and out_dir:
        raise typer.BadParameter("use either -o FILE or --out-dir DIR", param_hint="--out-dir")
    fmt = _file_format(fmt, out_file) if out_file else fmt
    if not out_file and fmt is EmbedFormat.NPY and run.out.stdout_is_terminal:
        raise typer.BadParameter(
            "npy is binary: redirect stdout or use -o FILE.npy", param_hint="--format"
        )
    if segments is not None and engine is not EngineName.LOCAL:
        raise typer.BadParameter("--segments embeds in this process", param_hint="--engine")
    inputs = segmented(run, run.inputs(files or [], text or []), segments, reading)
    refuse_uris(engine, (x.source for x in inputs if not getattr(x, "literal", False)))
    if not out_file and not out_dir:
        fmt = resolved(fmt, run.out, EmbedFormat.JSONL)
    if fmt in _STREAMED and not out_dir and (out_file is None or atomic.is_stream(out_file)):
        # each row as its batch is done: a pipeline starts at once, a crash keeps what is out
        _stream(run, _lines(fmt, each_embedding((e for _, e in run.stream(inputs))), raw), out_file)
        return
    embeddings = list(each_embedding(run.embed(inputs)))
    if not embeddings:
        return
    vectors = _stack(embeddings, raw)
    if out_dir:
        _write_dir(run, out_dir, embeddings, vectors, raw)
    elif out_file:
        _write_file(run, out_file, fmt, embeddings, vectors, raw)
    elif fmt is EmbedFormat.TABLE:
        _summary(run, embeddings, vectors, raw)
    elif fmt is EmbedFormat.NPY:
        run.out.binary(formats.npy_bytes(vectors))
    else:
        run.out.text(_render(fmt, embeddings, vectors, raw))


#: the formats written a row at a time
_STREAMED = (EmbedFormat.JSONL, EmbedFormat.CSV)


def _file_format(fmt: EmbedFormat, path: Path) -> EmbedFormat:
    if fmt is EmbedFormat.TABLE:
        raise typer.BadParameter("a table is for the terminal; pick a file format", param_hint="--format")
    if fmt is not EmbedFormat.AUTO:
        return fmt
    try:
        return SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(SUFFIX_FORMATS)
        raise typer.BadParameter(
            f"cannot tell the format of {path} from its suffix ({known}); add --format",
            param_hint="--output",
        ) from None


def _stack(embeddings: "list[Embedding]", raw: bool) -> "np.ndarray":
    import numpy as np

    return np.stack([e.raw if raw else e.unit for e in embeddings]).astype(np.float32)


def _stream(run: Run, lines: Iterator[str], path: Path | None) -> None:
    """Write `lines` as they come, to stdout or to a stream `-o` names (`/dev/stdout`, a FIFO)."""
    if path is None:
        for line in lines:
            run.out.text(line)
        return
    try:
        with open(path, "w", encoding="utf-8") as sink:
            for line in lines:
                sink.write(line)
                sink.flush()
    except OSError as exc:
        raise atomic.unwritable(path, exc) from exc


def _record(e: "Embedding", vector: "np.ndarray") -> dict:
    return {
        "input": path_text(e.input.source), "modality": e.input.kind.value, **_when(e),
        "embedding": formats.floats(vector),
    }


def _when(e: "Embedding") -> dict:
    """A segment's window (`start`, `end` in seconds, and how it was read); nothing for a whole file."""
    if e.start is None:
        return {}
    return {"start": round(e.start, 6), "end": round(e.end, 6), "reading": e.input.reading.value}


def _lines(fmt: EmbedFormat, embeddings: "Iterable[Embedding]", raw: bool) -> Iterator[str]:
    """The lines of a streamed format (jsonl, csv), one per embedding as it comes; CSV's
    header first, once the first vector tells the width."""
    for n, e in enumerate(embeddings):
        vector = _stack([e], raw)[0]
        if fmt is EmbedFormat.JSONL:
            yield formats.jsonl([_record(e, vector)])
            continue
        if n == 0:
            timed = e.start is not None  # with --segments, each row's window
            yield formats.csv_row(
                ["input", "modality", *(["start", "end"] if timed else []), *(f"e{i}" for i in range(vector.shape[0]))]
            )
        when = [_when(e).get("start", ""), _when(e).get("end", "")] if timed else []
        yield formats.csv_row([path_text(e.input.source), e.input.kind.value, *when, *formats.floats(vector)])


def _render(fmt: EmbedFormat, embeddings: "list[Embedding]", vectors: "np.ndarray", raw: bool) -> str:
    """The whole text of a machine format (jsonl, json, csv)."""
    if fmt in _STREAMED:
        return "".join(_lines(fmt, embeddings, raw))
    return formats.json_text([_record(e, v) for e, v in zip(embeddings, vectors)])


def _manifest(run: Run, embeddings: "list[Embedding]", raw: bool, files: list[str] | None = None) -> dict:
    """What a stacked array or a folder of vectors needs to be read later without guessing."""
    from bindcli.collections import manifest
    from bindcli.embed.identity import with_adapter
    from bindcli.media import PREPROCESSING_VERSION

    embedder = run.embedder
    names = files or [None] * len(embeddings)
    rows = [
        {**manifest.row(e.input.source, e.input.kind.value, e.sha256, name), **_when(e)}
        for e, name in zip(embeddings, names)
    ]
    return manifest.manifest(
        with_adapter(embedder.model_id, embedder.adapter), rows, dim=int(embeddings[0].raw.shape[-1]), normalised=not raw,
        precision=embedder.placement.precision, preprocessing=PREPROCESSING_VERSION,
    )


def _write_file(
    run: Run, path: Path, fmt: EmbedFormat, embeddings: "list[Embedding]", vectors: "np.ndarray", raw: bool
) -> None:
    if fmt is EmbedFormat.NPY:
        if atomic.is_stream(path):  # `-o /dev/stdout`: nowhere to put a manifest
            atomic.write_file(path, formats.npy_bytes(vectors))
            run.out.note(f"wrote {len(embeddings)} x {vectors.shape[1]} to {path} (no manifest)")
            return
        from bindcli.collections.manifest import sidecar as sidecar_of

        sidecar = sidecar_of(path)
        atomic.write_files([
            (path, formats.npy_bytes(vectors)),
            (sidecar, formats.json_text(_manifest(run, embeddings, raw))),
        ])
        run.out.note(f"wrote {len(embeddings)} x {vectors.shape[1]} to {path} (manifest {sidecar})")
    else:
        atomic.write_file(path, _render(fmt, embeddings, vectors, raw))
        run.out.note(f"wrote {len(embeddings)} embeddings to {path}")


def _write_dir(
    run: Run, folder: Path, embeddings: "list[Embedding]", vectors: "np.ndarray", raw: bool
) -> None:
    names: list[str] = []
    for e, v in zip(embeddings, vectors):
        base = f"text-{e.sha256[:12]}" if e.input.literal else Path(e.input.source).name
        if e.start is not None:  # a segment: its window in the name
            base += f"@{e.start:g}-{e.end:g}s"
        name, copy = f"{base}.npy", 1
        while name in names:  # the same name again (even the same content): never overwrite
            name = f"{base}-{e.sha256[:8]}" + (f"-{copy}" if copy > 1 else "") + ".npy"
            copy += 1
        names.append(name)
        atomic.write_file(folder / name, formats.npy_bytes(v))
    from bindcli.collections.manifest import FOLDER_MANIFEST

    atomic.write_file(folder / FOLDER_MANIFEST, formats.json_text(_manifest(run, embeddings, raw, names)))
    run.out.note(f"wrote {len(names)} vectors to {folder}/ (manifest {folder / FOLDER_MANIFEST})")


def _summary(run: Run, embeddings: "list[Embedding]", vectors: "np.ndarray", raw: bool) -> None:
    import numpy as np
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("input", "modality", "dim", "norm", "first values"):
        table.add_column(column)
    for label, e, v in zip(table_labels(embeddings), embeddings, vectors):
        first = " ".join(f"{x:+.3f}" for x in v[:4]) + " …"
        table.add_row(label, e.input.kind.value, str(v.shape[0]), f"{np.linalg.norm(v):.3f}", first)
    run.out.table(table)
    what = "upstream's raw vectors" if raw else "unit-length vectors"
    run.out.note(f"{what}; --format jsonl|json|csv|npy or -o FILE to save them")
