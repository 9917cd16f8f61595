"""Sound tracks as float32 (channels, samples) in [-1, 1]: the whole track, or one stretch.

libsndfile (WAV, FLAC, OGG/Vorbis, MP3, ...) scales integer PCM exactly as torchaudio's old
loader did (16-bit / 32768) and reads any stretch by seeking; anything it cannot open (M4A/AAC,
Opus, a video's sound track) is decoded with PyAV, which for a stretch seeks to a packet
before it and decodes from a little earlier still (`PREROLL_SECONDS`), because decoders of
lapped codecs (AAC, Opus) need some audio before the first sample they get right. A stretch
so read holds the samples a whole decode has there, except where an AAC encoder used
perceptual noise substitution: the decoder draws those bands from a random generator whose
state depends on where decoding began.
"""

from __future__ import annotations

import contextlib
import functools
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import soundfile

from bindcli.media.seek import decode_from, frame_seconds, stream_seconds

PREROLL_SECONDS = 0.5
#: the size a WAV written to a pipe gives its data, not knowing how much will follow
_UNKNOWN_WAV_SIZE = 0xFFFFFFFF


class Track(Protocol):
    rate: int
    seconds: float | None  # length by the file's metadata, where it says
    promised: int | None  # samples per channel the file's header promises, where it is exact
    seekable: bool  # reading a stretch costs no more than the stretch (libsndfile), not a decode from before it

    @property
    def frames(self) -> int:
        """Samples per channel that reading the whole track gives."""

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples [start, stop) (stop None: to the end) as (channels, samples) float32."""


@contextlib.contextmanager
def open_track(path: Path) -> Iterator[Track]:
    """The file's sound track, through libsndfile where it can, else PyAV."""
    try:
        sound = soundfile.SoundFile(path)
    except soundfile.LibsndfileError:
        sound = None
    if sound is not None:
        with sound:
            yield _SndTrack(sound)
        return
    with av.open(str(path)) as container:
        yield _AvTrack(path, container)


class _SndTrack:
    def __init__(self, sound: soundfile.SoundFile) -> None:
        self.sound = sound
        self.rate = int(sound.samplerate)
        self.frames = int(sound.frames)
        self.seconds = self.frames / self.rate
        self.promised = _wav_promised_frames(sound.name) if sound.format == "WAV" else None
        self.seekable = True

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        self.sound.seek(start)
        count = -1 if stop is None else stop - start
        data = self.sound.read(count, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T)


def _wav_promised_frames(path: str | Path) -> int | None:
    """Samples per channel a RIFF WAV's data chunk says it holds. libsndfile quietly reads only
    what the file has, so a truncated download would otherwise go unnoticed."""
    with open(path, "rb") as f:
        riff, _, wave = struct.unpack("<4sI4s", f.read(12))
        if (riff, wave) != (b"RIFF", b"WAVE"):
            return None
        block_align = 0
        while len(header := f.read(8)) == 8:
            chunk, size = struct.unpack("<4sI", header)
            if chunk == b"data":
                return size // block_align if block_align and size != _UNKNOWN_WAV_SIZE else None
            if chunk == b"fmt " and size >= 14:
                block_align = struct.unpack("<12xH", f.read(14))[0]
                size -= 14
            f.seek(size + size % 2, 1)  # chunks are padded to an even length
    return None


class _AvTrack:
    def __init__(self, path: Path, container: av.container.InputContainer) -> None:
        if not container.streams.audio:
            raise ValueError("no audio track")
        self.path = path
        self.container = container
        self.stream = container.streams.audio[0]
        self.rate = int(self.stream.rate)
        self.seconds = stream_seconds(self.stream)
        self.promised = None
        self.seekable = False

    @functools.cached_property
    def frames(self) -> int:
        """Where the last decoded frame ends. The metadata's length leaves out the codec's
        padding in the last frame, which a whole decode keeps, so the tail is decoded."""
        if self.seconds is None:
            raise ValueError("the sound track's length is unknown")
        end = None
        with self._decoding_from(self.seconds - PREROLL_SECONDS) as (frames, stream):
            for frame in frames:
                end = round(frame_seconds(frame, stream) * self.rate) + frame.samples
        if end is None:
            raise ValueError("the sound track holds no samples near its end")
        return end

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        if start == 0 and stop is None:
            return self._whole()
        if stop is None:
            raise ValueError("a stretch of a sound track needs its end")
        to_float = av.AudioResampler(format="fltp")  # keeps the rate and channel layout
        chunks = []
        with self._decoding_from(start / self.rate - PREROLL_SECONDS) as (frames, stream):
            for frame in frames:
                at = round(frame_seconds(frame, stream) * self.rate)
                if at >= stop:
                    break
                if not chunks and at > start:
                    raise ValueError(f"cannot seek to {start / self.rate:.2f} s in the sound track")
                data = np.concatenate([f.to_ndarray() for f in to_float.resample(frame)], axis=1)
                chunks.append(data[:, max(start - at, 0) : stop - at])
        window = np.concatenate(chunks, axis=1) if chunks else np.zeros((0, 0), np.float32)
        if window.shape[1] < stop - start:
            raise ValueError(f"the sound track ends before {stop / self.rate:.2f} s; truncated file?")
        return window

    @contextlib.contextmanager
    def _decoding_from(
        self, seconds: float
    ) -> Iterator[tuple[Iterator[av.AudioFrame], av.audio.stream.AudioStream]]:
        """Frames from just before `seconds` on, from a fresh decoder: one that has decoded
        elsewhere in the file first gives different samples at the start of the file."""
        with av.open(str(self.path)) as container:
            stream = container.streams.audio[0]
            yield decode_from(container, stream, seconds), stream

    def _whole(self) -> np.ndarray:
        to_float = av.AudioResampler(format="fltp")
        chunks = []
        for frame in self.container.decode(self.stream):
            chunks.extend(f.to_ndarray() for f in to_float.resample(frame))
        chunks.extend(f.to_ndarray() for f in to_float.resample(None))
        if not chunks:
            raise ValueError("the audio track holds no samples")
        return np.concatenate(chunks, axis=1)
