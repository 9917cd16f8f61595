"""Audio -> the audio tower's (clips, 1, 128, 204) log-mel input, as upstream's `data.py`.

Pipeline (upstream `data.load_and_transform_audio_data`): float32 waveform in [-1, 1], channels first; resample to 16 kHz
(torchaudio defaults); `clips` windows of `clip_seconds` spread over the file; per clip,
subtract the mean, Kaldi fbank (128 mel bins, 25 ms Hanning frames every 10 ms, no dither),
transpose to (mel, frames), zero-pad or cut to 204 frames, normalise (x + 4.268) / 9.138.

Upstream quirks, reproduced when `audio_upstream_quirks` is on (the default, because the
released model was evaluated with them; upstream's `preprocess.npz` numbers show both):
  * Stereo is not mixed down: the mean is taken over all channels, and Kaldi's fbank then
    reads channel 0 only.
  * Each clip is a *view* of the one waveform buffer and its mean is subtracted in place, so
    where clips overlap (files shorter than clips x clip_seconds) a later clip sees samples
    already shifted by an earlier clip's mean: a step inside the clip, visible in the fbank.
The clean variant averages channels to mono and processes every clip on its own copy
(`bind --audio-mix mono`). With the quirks, a file whose channel 0 is near silent while
another channel is not (sound on the right only, a 5.1 file's centre) embeds as silence, so
loading it warns (`InputWarning`), once per file, naming the clean variant.

Audio shorter than one 25 ms Kaldi frame (400 samples at 16 kHz) is refused with an
InputError; silence is fine (every bin sits at the log floor, -1.2776 after normalising).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as taf

from bindcli.errors import InputError, InputWarning
from bindcli.media.clips import clip_spans
from bindcli.media.options import MediaOptions
from bindcli.media.sound import Track, open_track
from bindcli.media.source import decoding, existing_file

SAMPLE_RATE = 16_000
FRAME_MS = 25
SHIFT_MS = 10
MIN_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FBANK_MEAN = -4.268
FBANK_STD = 9.138
#: torchaudio's resampling defaults (`lowpass_filter_width`, `rolloff`): how far its kernel reaches
RESAMPLE_FILTER_WIDTH = 6
RESAMPLE_ROLLOFF = 0.99
#: longer recordings (by metadata) are read only where the clips fall; see `load_audio`
WINDOWED_SECONDS = 60
#: channel 0 counts as near silent beside another channel this much louder (RMS ratio, 40 dB)
#: which is itself above the level of silence (-80 dBFS)
SILENT_CHANNEL_RATIO = 0.01
SILENCE_RMS = 1e-4


def _log_mel(clip: torch.Tensor, options: MediaOptions) -> torch.Tensor:
    """(1, mel bins, frames) normalised log-mel of a zero-mean clip (channel 0 is what Kaldi
    reads); the sizes are the model config's, (1, 128, 204) for ImageBind."""
    fbank = kaldi.fbank(
        clip,
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=options.audio_mel_bins,
        dither=0.0,
        frame_length=FRAME_MS,
        frame_shift=SHIFT_MS,
    ).transpose(0, 1)
    frames = fbank.shape[1]
    if frames < options.audio_frames:
        fbank = torch.nn.functional.pad(fbank, (0, options.audio_frames - frames), value=0.0)
    else:
        fbank = fbank[:, : options.audio_frames]
    return ((fbank - FBANK_MEAN) / FBANK_STD).unsqueeze(0)


def audio_clips(
    waveform: torch.Tensor, rate: int, options: MediaOptions, source: str | Path
) -> torch.Tensor:
    """(clips, 1, 128, 204) from a whole (channels, samples) waveform at `rate`."""
    if rate != SAMPLE_RATE:
        waveform = taf.resample(waveform, orig_freq=rate, new_freq=SAMPLE_RATE)
    samples = waveform.shape[1]
    if samples < MIN_SAMPLES:
        raise InputError(
            source,
            f"audio is {samples / SAMPLE_RATE * 1000:.1f} ms long, shorter than one "
            f"{FRAME_MS} ms analysis frame",
        )
    spans = clip_spans(samples / SAMPLE_RATE, options.audio_clip_seconds, options.audio_clips)
    return torch.stack([
        clip_features(waveform[:, int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)], options)
        for start, end in spans
    ])


def clip_features(clip: torch.Tensor, options: MediaOptions) -> torch.Tensor:
    """Log-mel of one clip less its mean. With the quirks `clip` may be a view of a buffer the
    clips share, and is shifted in place (see above); without, it is mixed to mono first."""
    if options.audio_upstream_quirks:
        clip -= clip.mean()
    else:
        clip = clip.mean(dim=0, keepdim=True)
        clip = clip - clip.mean()
    return _log_mel(clip, options)


def resampled_length(frames: int, rate: int) -> int:
    """Samples at 16 kHz that torchaudio's resampler makes of `frames` samples at `rate`."""
    return math.ceil(SAMPLE_RATE * frames / rate)


def stretch(track: Track, start: int, stop: int) -> torch.Tensor:
    """16 kHz samples [start, stop) of the whole track resampled, from a stretch of it.

    The resampler maps each block of `step` input samples to `out` output samples with a
    kernel reaching `reach` input samples to either side; a stretch starting on a block
    boundary, `reach` rounded up to whole blocks wide of the window, resamples to the same
    numbers there as the whole track does.
    """
    if track.rate == SAMPLE_RATE:
        return torch.from_numpy(track.read(start, stop))
    common = math.gcd(track.rate, SAMPLE_RATE)
    step, out = track.rate // common, SAMPLE_RATE // common
    reach = math.ceil(RESAMPLE_FILTER_WIDTH * step / (RESAMPLE_ROLLOFF * min(step, out)))
    margin = 2 * math.ceil(reach / step) + 1  # blocks, twice what the kernel reaches
    first = max(start // out - margin, 0)
    last = min((math.ceil(stop / out) + margin) * step, track.frames)
    piece = torch.from_numpy(track.read(first * step, last))
    resampled = taf.resample(piece, orig_freq=track.rate, new_freq=SAMPLE_RATE)
    offset = first * out
    return resampled[:, start - offset : stop - offset]


def _windowed_clips(track: Track, options: MediaOptions) -> list[torch.Tensor]:
    """The track's clips, each resampled from its own stretch of it."""
    samples = resampled_length(track.frames, track.rate)
    spans = clip_spans(samples / SAMPLE_RATE, options.audio_clip_seconds, options.audio_clips)
    return [stretch(track, int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in spans]


def load_audio(source: str | Path, options: MediaOptions) -> torch.Tensor:
    """(clips, 1, 128, 204) float32 for an audio file or the sound track of a video.

    Recordings up to `WINDOWED_SECONDS` long by their metadata (or of unknown length) are read
    whole, as upstream does; longer ones only where the clips fall, so memory stays bounded by
    the clips however long the file. Long clips do not overlap, so the in-place quirk cannot
    show there.
    """
    path = existing_file(source)
    with decoding(source, "audio"), open_track(path) as track:
        if track.seconds is not None and track.seconds > WINDOWED_SECONDS:
            warn_if_cut_short(source, track, track.frames)
            clips = _windowed_clips(track, options)
            _warn_if_channel_0_silent(source, torch.cat(clips, dim=1), options)
            return torch.stack([clip_features(clip, options) for clip in clips])
        waveform, rate = torch.from_numpy(track.read()), track.rate
        warn_if_cut_short(source, track, waveform.shape[1])
    _warn_if_channel_0_silent(source, waveform, options)
    return audio_clips(waveform, rate, options, source)


def _warn_if_channel_0_silent(source: str | Path, waveform: torch.Tensor, options: MediaOptions) -> None:
    """An `InputWarning` when upstream's reading of channel 0 alone would embed the sound of
    the other channels as silence."""
    if not options.audio_upstream_quirks or waveform.shape[0] < 2 or waveform.shape[1] == 0:
        return
    levels = waveform.double().std(dim=1, correction=0)  # DC is no sound
    loudest = int(levels[1:].argmax()) + 1
    if levels[loudest] > SILENCE_RMS and levels[0] < SILENT_CHANNEL_RATIO * levels[loudest]:
        warnings.warn(InputWarning(
            source,
            f"channel 0 is near silent while channel {loudest} is not, and upstream's audio "
            "path hears only channel 0, so this embeds as silence; --audio-mix mono (in "
            "Python, MediaOptions(audio_upstream_quirks=False)) mixes all channels",
        ))


def warn_if_cut_short(source: str | Path, track: Track, held: int) -> None:
    """An `InputWarning` when the file holds fewer samples than its header promises, as a
    truncated download does: what is there still makes clips, but the file is damaged."""
    if track.promised is not None and held < track.promised:
        promised, rate = track.promised, track.rate
        warnings.warn(InputWarning(
            source,
            f"cut short: its header promises {promised} samples ({promised / rate:.2f} s), the "
            f"file holds {held} ({held / rate:.2f} s); using what is there",
        ))
