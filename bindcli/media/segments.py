"""Long recordings -> one tower input per window of time, decoded as a stream.

`read_segments` yields a `Segment` (start, end, tensor) per window of a `bindcli.windows.Window`,
as the decoder reaches it, so a one-hour file never sits in memory whole:

  * sound (an audio file, or a video's sound track): libsndfile reads each window by seeking
    (resampled to 16 kHz from a stretch around it, as `audio.stretch` does); anything else is
    decoded once, front to back, by PyAV, resampled to 16 kHz as it goes, keeping only the
    samples of windows not yet made. A window longer than the tower's 2 s clip is read as
    upstream reads a file: ceil(length / 2 s) clips spread over it, their vectors averaged.
  * clips (video tower): per window, ceil(length / 2 s) clips spread over it, each its first
    and last frame in three crops, as `video.load_video` reads a file.
  * frames (vision tower): the window's middle frame, as an image is read.
  * imu: the window's samples (400 Hz, or resampled from `imu_sample_rate_hz`), cut into the
    tower's 2000-sample windows as `imu.windows` cuts a file.

Video is decoded front to back once, and only the frames some window wants are converted.
A decoder that fails part way ends the stream: the segments made before it stand, and
`stream_segments` says where the file stopped (an `InputWarning`).
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from bindcli.errors import InputError, InputWarning, attributed_to
from bindcli.media import audio, imu, video
from bindcli.media.clips import clip_spans
from bindcli.media.image import vision_tensor
from bindcli.media.options import MediaOptions
from bindcli.media.seek import frame_seconds, stream_seconds
from bindcli.media.sound import open_track
from bindcli.media.source import decoding, existing_file
from bindcli.modality import Kind
from bindcli.windows import EPSILON, READINGS, Reading, Window, clock

SR = audio.SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class Segment:
    """One window of a recording: where it is, in seconds, and the tower's input for it."""

    start: float
    end: float
    tensor: torch.Tensor


def read_segments(
    source: str | Path, kind: Kind, reading: Reading, window: Window, options: MediaOptions
) -> Iterator[Segment]:
    """The segments of one file, in time order. InputError when the file (or this reading
    of it) is unusable; raised part way when the decoder fails there."""
    if reading not in READINGS.get(Kind(kind).value, ()):
        raise InputError(source, f"a {Kind(kind).value} file cannot be read as {reading.value}")
    path = existing_file(source)
    if reading is Reading.SOUND:
        yield from _sound(path, source, window, options)
    elif reading is Reading.IMU:
        yield from _motion(source, window, options)
    else:
        yield from _pictures(path, source, reading, window, options)


# --- sound -----------------------------------------------------------------------------------


def _sound_tensor(samples: torch.Tensor, options: MediaOptions) -> torch.Tensor:
    """(clips, 1, mel, frames) of one window's 16 kHz samples: 2 s clips spread over it."""
    seconds = samples.shape[1] / SR
    count = max(1, math.ceil(seconds / options.audio_clip_seconds - EPSILON))
    spans = clip_spans(seconds, options.audio_clip_seconds, count)
    return torch.stack([
        audio.clip_features(samples[:, int(a * SR) : int(b * SR)].clone(), options) for a, b in spans
    ])


def _too_short(source: str | Path, samples: int) -> InputError:
    return InputError(
        source, f"audio is {samples / SR * 1000:.1f} ms long, shorter than one {audio.FRAME_MS} ms analysis frame"
    )


def _sound(path: Path, source: str | Path, window: Window, options: MediaOptions) -> Iterator[Segment]:
    with decoding(source, "audio"), open_track(path) as track:
        if track.seekable:
            audio.warn_if_cut_short(source, track, track.frames)
            total = audio.resampled_length(track.frames, track.rate)
            if total < audio.MIN_SAMPLES:
                raise _too_short(source, total)
            for start, end in window.spans(total / SR):
                samples = audio.stretch(track, int(start * SR), int(end * SR))
                yield Segment(start, end, _sound_tensor(samples, options))
            return
    yield from _streamed_sound(path, source, window, options)


def _streamed_sound(path: Path, source: str | Path, window: Window, options: MediaOptions) -> Iterator[Segment]:
    """The windows of a sound track PyAV decodes, front to back, at 16 kHz. What is held is
    the samples from the next window's start, and at least the last window's length (for the
    window that ends at the end)."""
    length = round(window.length * SR)
    with decoding(source, "audio"), av.open(str(path)) as container:
        if not container.streams.audio:
            raise InputError(source, "no audio track")
        stream = container.streams.audio[0]
        promised = stream_seconds(stream)
        to_16k = av.AudioResampler(format="fltp", rate=SR)
        held: list[np.ndarray] = []  # samples from `base` on, in decoded pieces
        base = have = made = 0

        def due(upto: int) -> Iterator[Segment]:
            nonlocal held, base, made
            if round(made * window.hop * SR) + length > upto:
                return
            buffer = np.concatenate(held, axis=1)
            while (start := round(made * window.hop * SR)) + length <= upto:
                samples = torch.from_numpy(buffer[:, start - base : start + length - base])
                made += 1
                yield Segment(start / SR, (start + length) / SR, _sound_tensor(samples, options))
            keep = max(min(round(made * window.hop * SR), upto - length), base)
            held, base = [buffer[:, keep - base :]], keep

        def pieces() -> Iterator[np.ndarray]:
            for frame in container.decode(stream):
                yield from (f.to_ndarray() for f in to_16k.resample(frame))
            yield from (f.to_ndarray() for f in to_16k.resample(None))

        try:
            for piece in pieces():
                held.append(piece)
                have += piece.shape[1]
                yield from due(have)
        except Exception as exc:  # noqa: BLE001 - a damaged stretch ends the stream here
            if made == 0:
                raise
            raise InputError(source, f"cannot read audio past {clock(have / SR)}: {exc}") from exc
        if have < audio.MIN_SAMPLES:
            raise _too_short(source, have)
        tail = window.spans(have / SR)[made:]
        if tail:
            buffer = np.concatenate(held, axis=1)
            for start, end in tail:
                first = max(round(start * SR) - base, 0)
                samples = torch.from_numpy(buffer[:, first : first + round((end - start) * SR)])
                yield Segment(start, end, _sound_tensor(samples, options))
        if promised is not None and have / SR < promised - 1.0:
            raise InputError(
                source, f"the sound ends at {clock(have / SR)} though the file says {clock(promised)}; truncated file?"
            )


# --- pictures --------------------------------------------------------------------------------


def _wanted_frames(reading: Reading, start: float, end: float, fps: float, last: int, options: MediaOptions) -> list[int]:
    """Frame indices one window reads: its middle frame, or each clip's first and last."""
    if reading is Reading.FRAMES:
        return [min(math.floor(fps * (start + end) / 2), last)]
    count = max(1, math.ceil((end - start) / options.video_clip_seconds - EPSILON))
    wanted = []
    for a, b in clip_spans(end - start, options.video_clip_seconds, count):
        first = min(math.ceil(fps * (start + float(a))), last)
        wanted += [first, min(max(math.ceil(fps * (start + float(b))) - 1, first), last)]
    return wanted


def _picture_tensor(reading: Reading, frames: list[np.ndarray]) -> torch.Tensor:
    if reading is Reading.FRAMES:
        return vision_tensor(Image.fromarray(frames[0]))
    views = []
    for first, last in zip(frames[::2], frames[1::2]):
        views += video.clip_views(first, last)
    return torch.stack(views)


def _pictures(
    path: Path, source: str | Path, reading: Reading, window: Window, options: MediaOptions
) -> Iterator[Segment]:
    """Windows of the video track, decoded front to back once; a frame is converted only if
    some window wants it, and kept only until the last window that wants it is made."""
    with decoding(source, "video"), av.open(str(path)) as container:
        stream, fps = video.video_track(container, source)
        count = video.frame_count(stream, fps)
        spans = window.spans(count / fps)
        wants = [_wanted_frames(reading, a, b, fps, count - 1, options) for a, b in spans]
        users: dict[int, int] = {}  # frame index -> how many windows not yet made want it
        for wanted in wants:
            for index in wanted:
                users[index] = users.get(index, 0) + 1
        order = sorted(users)  # the frames wanted, in the order the decoder meets them
        kept: dict[int, np.ndarray] = {}
        made = taken = 0
        seen, previous = -1, None

        def ready() -> Iterator[Segment]:
            nonlocal made
            while made < len(spans) and all(i in kept for i in wants[made]):
                wanted = wants[made]
                tensor = _picture_tensor(reading, [kept[i] for i in wanted])
                for index in wanted:
                    users[index] -= 1
                    if users[index] == 0:
                        del kept[index]
                start, end = spans[made]
                made += 1
                yield Segment(start, end, tensor)

        def take(frame: av.VideoFrame, upto: int) -> None:
            """The frame stands for every wanted index up to `upto` not yet met (a stream
            whose timestamps skip a wanted frame gives the next one, as `load_video` does)."""
            nonlocal taken
            pixels = None
            while taken < len(order) and order[taken] <= upto:
                pixels = video.upright(frame) if pixels is None else pixels
                kept[order[taken]] = pixels
                taken += 1

        try:
            for frame in container.decode(stream):
                seen = round(frame_seconds(frame, stream) * fps)
                previous = frame
                take(frame, seen)
                yield from ready()
                if made == len(spans):
                    return
        except Exception as exc:  # noqa: BLE001 - a damaged stretch ends the stream here
            if made == 0:
                raise
            raise InputError(source, f"cannot read video past {clock(max(seen, 0) / fps)}: {exc}") from exc
        if previous is not None and seen >= count - 2:  # a frame count one too many
            take(previous, count)
            yield from ready()
        if made < len(spans):
            raise InputError(
                source, f"video ends at {clock(max(seen, 0) / fps)}, before {clock(count / fps)}; truncated file?"
            )


# --- motion ----------------------------------------------------------------------------------


def _motion(source: str | Path, window: Window, options: MediaOptions, offset: float | None = None) -> Iterator[Segment]:
    """The IMU recording's windows (with `offset`, the one window starting there)."""
    samples = torch.from_numpy(imu.read_imu(source))
    if options.imu_sample_rate_hz is not None:
        if not options.imu_sample_rate_hz > 0:
            raise InputError(source, f"IMU sample rate must be positive, got {options.imu_sample_rate_hz}")
        samples = imu.resample(samples, options.imu_sample_rate_hz)
    rate = imu.MODEL_RATE_HZ
    spans = window.spans(samples.shape[1] / rate) if offset is None else [(offset, offset + window.length)]
    for start, end in spans:
        piece = samples[:, round(start * rate) : round(end * rate)]
        yield Segment(start, end, imu.windows(piece))


def duration(source: str | Path, kind: Kind) -> float | None:
    """A recording's length in seconds by its metadata (cheap: nothing is decoded), for a
    progress bar; None where it does not say or the file cannot be read."""
    try:
        if Kind(kind) is Kind.IMU:
            return imu.read_imu(source).shape[1] / imu.MODEL_RATE_HZ
        with open_track(Path(source)) if Kind(kind) is Kind.AUDIO else av.open(str(source)) as opened:
            if Kind(kind) is Kind.AUDIO:
                return opened.seconds
            streams = opened.streams.video or opened.streams.audio
            return stream_seconds(streams[0]) if streams else None
    except Exception:  # noqa: BLE001 - a bad file is reported when it is read, not here
        return None


# --- one stretch -----------------------------------------------------------------------------


def read_span(
    source: str | Path, kind: Kind, reading: Reading, start: float, end: float, options: MediaOptions
) -> torch.Tensor:
    """The tower input of the stretch [start, end) seconds of a file, read as a window of it
    would be (`bind locate --in` refining a range's edges): only that stretch is decoded."""
    if reading not in READINGS.get(Kind(kind).value, ()):
        raise InputError(source, f"a {Kind(kind).value} file cannot be read as {reading.value}")
    path = existing_file(source)
    if reading is Reading.SOUND:
        with decoding(source, "audio"), open_track(path) as track:
            return _sound_tensor(audio.stretch(track, int(start * SR), int(end * SR)), options)
    if reading is Reading.IMU:
        return next(_motion(source, Window(end - start, end - start), options, start)).tensor
    with decoding(source, "video"), av.open(str(path)) as container:
        if not container.streams.video:
            raise InputError(source, "no video track")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if not fps:
            raise InputError(source, "the video's frame rate is unknown")
        wanted = _wanted_frames(reading, start, end, fps, video.frame_count(stream, fps) - 1, options)
        frames = video.decode_frames(container, wanted, fps, source)
    return _picture_tensor(reading, [frames[i] for i in wanted])


# --- many files ------------------------------------------------------------------------------


#: what `stream_segments` yields for a file once all its segments are out
END = None


def _produce(
    index: int, source: str, kind: Kind, reading: Reading, window: Window, span: tuple[float, float] | None,
    options: MediaOptions, out: "queue.Queue", stop: threading.Event,
) -> None:
    """Put (index, segment) for each segment of one file, then (index, InputError) or (index, END)."""

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put((index, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    made, last = 0, 0.0
    with attributed_to(source):
        try:
            found = read_segments(source, kind, reading, window, options) if span is None else iter(
                [Segment(span[0], span[1], read_span(source, kind, reading, span[0], span[1], options))]
            )
            for segment in found:
                if not put(segment):
                    return
                made, last = made + 1, segment.end
        except Exception as exc:  # noqa: BLE001 - a bad file is its own result, never the run's end
            error = exc if isinstance(exc, InputError) else InputError(
                source, f"could not be loaded ({type(exc).__name__}: {exc})"
            )
            if made == 0:
                put(error)
                return
            warnings.warn(InputWarning(
                source, f"stopped at {clock(last)} ({error.reason}); kept the {made} segments before it"
            ))
    put(END)


def stream_segments(
    items: Sequence[tuple[str, Kind, Reading, Window, tuple[float, float] | None]],
    options: MediaOptions | None = None,
    workers: int = 2,
    lookahead: int = 16,
) -> Iterator[tuple[int, Segment | InputError | None]]:
    """(item index, segment) as `workers` threads decode the files, at most `lookahead`
    segments waiting; then (index, END) once a file is done, or (index, InputError) for a
    file that gives none. Segments of different files interleave; one file's come in order.
    An item with a span (start, end) gives that stretch alone, as one segment."""
    options = options or MediaOptions()
    out: queue.Queue = queue.Queue(maxsize=max(1, lookahead))
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="bind-segments") as pool:
        for n, (source, kind, reading, window, span) in enumerate(items):
            pool.submit(_produce, n, source, kind, reading, window, span, options, out, stop)
        try:
            finished = 0
            while finished < len(items):
                index, item = out.get()
                if item is END or isinstance(item, InputError):
                    finished += 1
                yield index, item
        finally:
            stop.set()
