"""Long media in time: the window spec of `--segments LEN[:HOP]`, the ways a window is read,
and the clock text times are written in. Pure stdlib, so the CLI parses `--segments` and a
search answer prints its times without importing torch.

A window spec cuts a recording into windows of `length` seconds every `hop` seconds (the hop
defaults to the length: windows side by side). Each window becomes one vector, its `start`
and `end` in seconds kept beside it. How a window is read is its `Reading`: the sound through
the audio tower, a video's 2-frame clips through the video tower, one frame of it through the
vision tower, or an IMU recording's samples through the IMU tower.

Imports: bindcli.errors.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re

from bindcli.errors import UsageError

#: two windows' starts closer than this are the same start (float hops)
EPSILON = 1e-6


class Reading(str, enum.Enum):
    """How a window of a recording becomes the input of a tower. The value is what users type."""

    SOUND = "sound"  # the window's sound, audio tower (audio files, a video's sound track)
    CLIPS = "clips"  # 2-frame clips of the window, video tower: upstream's video input
    FRAMES = "frames"  # the window's middle frame, vision tower: fast, to find a frame
    IMU = "imu"  # the window's motion samples, IMU tower

    @property
    def shortest(self) -> float:
        """The shortest window this reading fills, in seconds: the tower's own input (a 2 s
        audio clip, a 2 s video clip, 2000 IMU samples at 400 Hz); a frame needs any length."""
        return _SHORTEST[self]


_SHORTEST = {Reading.SOUND: 2.0, Reading.CLIPS: 2.0, Reading.FRAMES: 0.0, Reading.IMU: 5.0}

#: the readings of each kind of file that has time, the first its default
READINGS: dict[str, tuple[Reading, ...]] = {
    "audio": (Reading.SOUND,),
    "video": (Reading.CLIPS, Reading.FRAMES, Reading.SOUND),
    "imu": (Reading.IMU,),
}

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|m|h)?\s*$", re.I)
_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)\s*$")


def parse_seconds(text: str) -> float:
    """Seconds from `2s`, `500ms`, `1.5`, `2m`, `1h`, or a clock time `12:31` / `1:02:03.5`;
    raises ValueError otherwise."""
    match = _AMOUNT.match(text)
    if match:
        return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    clock = _CLOCK.match(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    raise ValueError(f"not a time: {text!r} (write e.g. 2s, 500ms, 1.5, 12:31)")


@dataclasses.dataclass(frozen=True)
class Window:
    """Windows of `length` seconds every `hop` seconds, from the start of a recording."""

    length: float
    hop: float

    @classmethod
    def parse(cls, text: str) -> "Window":
        """`LEN[:HOP]` (`2s`, `5s:2.5s`, `500ms`, `3`); a usage error when it is not one, or
        when a length or hop is not positive."""
        head, sep, tail = text.strip().partition(":")
        if sep and _CLOCK.match(text):  # `1:30` reads as a clock, not as LEN:HOP
            head, tail, sep = text, "", ""
        try:
            length = parse_seconds(head)
            hop = parse_seconds(tail) if sep else length
        except ValueError as exc:
            raise UsageError(f"--segments {text!r}: {exc}; the form is LEN[:HOP], e.g. 2s or 5s:2.5s") from None
        if length <= 0:
            raise UsageError(f"--segments {text!r}: a window must be longer than 0 s")
        if hop <= 0:
            raise UsageError(f"--segments {text!r}: the hop must be longer than 0 s, or every window would start at 0")
        return cls(length, hop)

    @property
    def text(self) -> str:
        """The canonical spec, `2s:1s`: what cache keys and collections record."""
        return f"{_number(self.length)}s:{_number(self.hop)}s"

    def check(self, reading: Reading) -> None:
        """A usage error when windows are shorter than what `reading`'s tower takes."""
        if self.length + EPSILON < reading.shortest:
            raise UsageError(
                f"--segments {self.text}: windows of {_number(self.length)} s are shorter than the "
                f"{_number(reading.shortest)} s the {reading.value} reading's tower takes; use "
                f"--segments {_number(reading.shortest)}s or longer (a shorter hop gives finer times)"
            )

    def spans(self, duration: float) -> list[tuple[float, float]]:
        """The windows of a recording `duration` seconds long: one every hop while a whole
        window fits, then one ending at the end if some of it is left out; a recording shorter
        than one window gives one window, the whole of it."""
        if duration <= self.length + EPSILON:
            return [(0.0, duration)]
        count = math.floor((duration - self.length) / self.hop + EPSILON) + 1
        found = [(k * self.hop, k * self.hop + self.length) for k in range(count)]
        if found[-1][1] < duration - EPSILON:
            found.append((duration - self.length, duration))
        return found


def _number(seconds: float) -> str:
    """`2`, `2.5`, `0.5`: seconds without trailing zeros."""
    return f"{seconds:.6f}".rstrip("0").rstrip(".")


def clock(seconds: float) -> str:
    """`00:12:31` (whole seconds, rounded down), `00:00:01.5` where a fraction matters."""
    whole = math.floor(seconds + EPSILON)
    fraction = seconds - whole
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return text + f"{fraction:.3f}"[1:].rstrip("0") if fraction > 0.001 else text


def parse_moment(text: str) -> tuple[str, float, float] | None:
    """`talk.mp4@12:31-12:36` as (path, start, end) in seconds; None when `text` names no
    moment (no `@` followed by START-END). A usage error for a moment that ends before it starts."""
    path, sep, span = text.rpartition("@")
    if not sep or not path or "-" not in span:
        return None
    first, _, last = span.partition("-")
    try:
        start, end = parse_seconds(first), parse_seconds(last)
    except ValueError:
        return None
    if end <= start:
        raise UsageError(f"{text}: the moment ends ({_number(end)} s) before it starts ({_number(start)} s)")
    return path, start, end
