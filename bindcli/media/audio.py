"""Audio -> the audio tower's (clips, 1, 128, 204) log-mel input, as upstream's `data.py`.

Pipeline (spec 4.3): float32 waveform in [-1, 1], channels first; resample to 16 kHz
(torchaudio defaults); `clips` windows of `clip_seconds` spread over the file; per clip,
subtract the mean, Kaldi fbank (128 mel bins, 25 ms Hanning frames every 10 ms, no dither),
transpose to (mel, frames), zero-pad or cut to 204 frames, normalise (x + 4.268) / 9.138.

Upstream quirks, reproduced when `audio_upstream_quirks` is on (the default, because the
released model was evaluated with them; spec 7, pitfalls 4 and 5):
  * Stereo is not mixed down: the mean is taken over all channels, and Kaldi's fbank then
    reads channel 0 only.
  * Each clip is a *view* of the one waveform buffer and its mean is subtracted in place, so
    where clips overlap (files shorter than clips x clip_seconds) a later clip sees samples
    already shifted by an earlier clip's mean: a step inside the clip, visible in the fbank.
The clean variant averages channels to mono and processes every clip on its own copy.

Audio shorter than one 25 ms Kaldi frame (400 samples at 16 kHz) is refused with an
InputError; silence is fine (every bin sits at the log floor, -1.2776 after normalising).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as taf

from bindcli.errors import InputError
from bindcli.media.clips import clip_spans
from bindcli.media.options import MediaOptions
from bindcli.media.source import decoding, existing_file

SAMPLE_RATE = 16_000
MEL_BINS = 128
TARGET_FRAMES = 204
FRAME_MS = 25
SHIFT_MS = 10
MIN_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FBANK_MEAN = -4.268
FBANK_STD = 9.138


def read_waveform(source: str | Path) -> tuple[torch.Tensor, int]:
    """(channels, samples) float32 in [-1, 1] and its rate.

    libsndfile (WAV, FLAC, OGG/Vorbis, MP3, ...) scales integer PCM exactly as torchaudio's
    old loader did (16-bit / 32768); anything it cannot open (M4A/AAC, Opus, a video's sound
    track) is decoded with PyAV.
    """
    path = existing_file(source)
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        samples = data.T
    except soundfile.LibsndfileError:
        with decoding(source, "audio"):
            samples, rate = _decode_with_av(path)
    return torch.from_numpy(np.ascontiguousarray(samples)), int(rate)


def _decode_with_av(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio track")
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")  # keeps the rate and channel layout
        chunks = []
        for frame in container.decode(stream):
            chunks.extend(f.to_ndarray() for f in to_float.resample(frame))
        chunks.extend(f.to_ndarray() for f in to_float.resample(None))
        if not chunks:
            raise ValueError("the audio track holds no samples")
        return np.concatenate(chunks, axis=1), stream.rate


def _log_mel(clip: torch.Tensor) -> torch.Tensor:
    """(1, 128, 204) normalised log-mel of a zero-mean clip (channel 0 is what Kaldi reads)."""
    fbank = kaldi.fbank(
        clip,
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=MEL_BINS,
        dither=0.0,
        frame_length=FRAME_MS,
        frame_shift=SHIFT_MS,
    ).transpose(0, 1)
    frames = fbank.shape[1]
    if frames < TARGET_FRAMES:
        fbank = torch.nn.functional.pad(fbank, (0, TARGET_FRAMES - frames), value=0.0)
    else:
        fbank = fbank[:, :TARGET_FRAMES]
    return ((fbank - FBANK_MEAN) / FBANK_STD).unsqueeze(0)


def audio_clips(
    waveform: torch.Tensor, rate: int, options: MediaOptions, source: str | Path
) -> torch.Tensor:
    """(clips, 1, 128, 204) from a (channels, samples) waveform at `rate`."""
    if rate != SAMPLE_RATE:
        waveform = taf.resample(waveform, orig_freq=rate, new_freq=SAMPLE_RATE)
    if not options.audio_upstream_quirks:
        waveform = waveform.mean(dim=0, keepdim=True)
    samples = waveform.shape[1]
    if samples < MIN_SAMPLES:
        raise InputError(
            source,
            f"audio is {samples / SAMPLE_RATE * 1000:.1f} ms long, shorter than one "
            f"{FRAME_MS} ms analysis frame",
        )
    out = []
    for start, end in clip_spans(samples / SAMPLE_RATE, options.audio_clip_seconds, options.audio_clips):
        clip = waveform[:, int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        if options.audio_upstream_quirks:
            clip -= clip.mean()  # in place on the shared buffer: upstream's quirk, see above
        else:
            clip = clip - clip.mean()
        out.append(_log_mel(clip))
    return torch.stack(out)


def load_audio(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(clips, 1, 128, 204) float32 for an audio file or the sound track of a video."""
    waveform, rate = read_waveform(source)
    return audio_clips(waveform, rate, options, source)
