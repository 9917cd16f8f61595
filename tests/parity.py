"""How close bind's preprocessed tensors must come to upstream's (preprocess.npz), and why.

Upstream's own preprocessing moves between CPUs: Kaldi's fbank runs MKL's FFT and GEMM, video
scaling runs ATen's vectorised bilinear kernel, and both pick their code by instruction set.
`benchmarks/measure_preprocess.py` runs upstream's data.py on the fixture media on an
AVX-512/AMX Xeon as it is and with the code paths of an AVX2-only and an SSE4.2-only CPU
(ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA), on 1 and 2 threads; bind
computes exactly upstream's numbers in every one (difference 0), so the figures below are the
spread of upstream itself (benchmarks/README.md, "Preprocessing parity across CPUs").

A tolerance has two parts: no value may be off by more than `atol`, and at most `share` of the
values by more than `tight`. CPU noise is a few outliers (near-silent mel bins, where the log
magnifies rounding); a bug moves many values, or one value far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    atol: float
    tight: float
    share: float


#: Normalised log-mel. Upstream against the fixture, worst file synthetic_stereo_0.wav: 3.3e-4
#: (0.11% of its values over 1e-4) with MKL limited to AVX2, 5.0e-4 (0.28%) with SSE4_2; the
#: issue's AMD EPYC (AVX2, no AVX-512) showed 5.7e-4 (105 of 78,336 = 0.13% over 1e-4). Threads
#: and the ATen and oneDNN paths change nothing. atol is 2.6x the largest, share 3.6x. Bugs
#: fail it: a one-sample shift moves 19-82% of the values past 1e-4 (up to 0.49); leaving out
#: the mean subtraction moves dog, car and stereo by 1.4e-2 to 8e-2; a std of 9.13 for 9.138
#: moves ~all of them by ~1e-3.
AUDIO = Tolerance(atol=1.5e-3, tight=1e-4, share=0.01)
#: Normalised video frames: 5.8e-5 (0.005% of the values over 1e-5) natively and on the AVX2
#: path, 4.8e-7 on ATen's default path; thread count: no effect. atol is 3.4x, share 20x.
VIDEO = Tolerance(atol=2e-4, tight=1e-5, share=1e-3)
#: Images: Pillow's integer resampling, then exactly rounded elementwise ops: 0 on every path.
VISION = Tolerance(atol=1e-5, tight=1e-5, share=0.0)


def assert_matches(
    actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance, scale: float = 1.0,
    err_msg: str = "",
) -> None:
    """`actual` is `expected` to within `tolerance`, its bounds times `scale` (for arrays
    normalised by another std than the fixture's)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    atol = tolerance.atol * scale
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0, err_msg=err_msg)
    loose = np.abs(actual.astype(np.float64) - expected) > tolerance.tight * scale
    assert loose.mean() <= tolerance.share, (
        f"{err_msg} {loose.sum()} of {loose.size} values differ by more than "
        f"{tolerance.tight * scale:.0e}; at most {tolerance.share:.1%} may"
    )
