"""What to embed: an `Input` (a file of some kind, or a text), and the ways a caller's
arguments become inputs, each an `Input` or the `InputError` that says why it is not one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from bindcli._util.paths import is_uri, not_a_file
from bindcli.errors import InputError
from bindcli.modality import Kind, detect
from bindcli.windows import READINGS, Reading, Window


@dataclasses.dataclass(frozen=True)
class Input:
    """One thing to embed: a file of some kind, or a text given on the command line."""

    source: str
    kind: Kind
    literal: bool = False  # `source` is the text itself, not a path
    #: read in windows of time, one vector per window (`--segments`); None: the whole file
    window: Window | None = None
    #: how each window is read (its tower); set with `window`
    reading: Reading | None = None
    #: a moment of the file (`talk.mp4@12:31-12:36`): only this stretch, in seconds, as one window
    span: tuple[float, float] | None = None

    @classmethod
    def file(cls, path: str | Path, as_kind: Kind | str | None = None) -> "Input":
        """A file input; raises InputError when it is missing or of unknown kind. A URI
        (`s3://bucket/key`) is taken as it is: whoever reads it finds whether it exists."""
        if not is_uri(path) and not Path(path).is_file():
            raise InputError(path, not_a_file(path))
        return cls(str(path), detect(path, as_kind))

    @classmethod
    def text(cls, text: str) -> "Input":
        return cls(text, Kind.TEXT, literal=True)

    @classmethod
    def moment(cls, path: str | Path, start: float, end: float, reading: Reading | None = None) -> "Input":
        """The stretch [start, end) seconds of a file, as one segment (a query's moment)."""
        length = end - start
        return dataclasses.replace(cls.file(path).in_segments(Window(length, length), reading), span=(start, end))

    def in_segments(self, window: Window, reading: Reading | None = None) -> "Input":
        """This file read in windows of time, `reading` (default: its kind's first) each;
        InputError for a kind without time (an image, a text) or a reading it has not."""
        readings = READINGS.get(self.kind.value, ())
        if self.literal or not readings:
            raise InputError(self.source, f"a {self.kind.value} has no time to cut into segments")
        chosen = reading or readings[0]
        if chosen not in readings:
            names = ", ".join(r.value for r in readings)
            raise InputError(self.source, f"a {self.kind.value} file is read as {names}, not {chosen.value}")
        return dataclasses.replace(self, window=window, reading=chosen)


def not_utf8(text: str) -> str | None:
    """Why `text` cannot be embedded, when it holds characters that are no UTF-8: Python's
    stand-ins for bytes that were not UTF-8 (an argument from a Latin-1 shell) or a lone
    surrogate (from JSON). Refused rather than embedded: the tokenizer reads each as U+FFFD,
    so the vector would be another text's than the one meant."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        return f"not valid UTF-8 ({what} at character {exc.start + 1}); give the text in UTF-8"
    return None


def text_inputs(texts: Iterable[str]) -> list[Input | InputError]:
    """Texts as inputs; an empty or blank one is an InputError (it would embed as the mere
    start and end tokens, a vector that means nothing)."""
    return [Input.text(t) if t.strip() else InputError(f'"{t}"', "empty text") for t in texts]


def gather(
    paths: Iterable[str | Path] = (), texts: Iterable[str] = (), as_kind: Kind | str | None = None
) -> list[Input | InputError]:
    """Files (kinds detected, or `as_kind`) then texts, each an Input or the reason it is not."""
    found: list[Input | InputError] = []
    for path in paths:
        try:
            found.append(Input.file(path, as_kind))
        except InputError as exc:
            found.append(exc)
    found.extend(text_inputs(texts))
    return found


def in_segments(
    items: Sequence[Input | InputError], window: Window, readings: Sequence[Reading] = ()
) -> list[Input | InputError]:
    """Each audio, video and IMU file read in `window`s, once per reading of `readings` it
    has (none of them: its kind's default), in order; texts and files without time (images)
    stay whole. A usage error (`Window.check`) when a window is shorter than a chosen
    reading's tower takes."""
    found: list[Input | InputError] = []
    for item in items:
        own = () if isinstance(item, InputError) or item.literal else READINGS.get(item.kind.value, ())
        if not own:
            found.append(item)
            continue
        for reading in [r for r in readings if r in own] or [own[0]]:
            found.append(item.in_segments(window, reading))  # type: ignore[union-attr]
    for reading in sorted({x.reading for x in found if isinstance(x, Input) and x.reading}, key=str):
        window.check(reading)
    return found


def as_inputs(items: Sequence[Input | InputError | str | Path]) -> list[Input | InputError]:
    """`items` with each path made an Input (kind from its extension) or its InputError;
    Inputs and InputErrors stay as they are, in place."""
    paths = [x for x in items if not isinstance(x, (Input, InputError))]
    if not paths:
        return list(items)  # type: ignore[arg-type]
    gathered = iter(gather(paths))
    return [x if isinstance(x, (Input, InputError)) else next(gathered) for x in items]
