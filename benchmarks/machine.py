"""One line naming the machine a benchmark ran on (torch-free, so start-up benchmarks can use it)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

#: what hides this CPU's AVX-512/AMX from torch's kernels, to stand in for an AVX2-only CPU
#: (ATen's dispatch, MKL, oneDNN and fbgemm each honour one; torch.cpu's `_is_*_supported`
#: read cpuinfo and still report the real CPU)
AVX2_ONLY = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
}


def describe() -> str:
    """CPU model, CPU count and whether the CPU has AMX-BF16 (bf16 matrix units)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    names = [l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    amx = ", AMX-BF16" if "amx_bf16" in cpuinfo else ""
    return f"{cpu}, {os.cpu_count()} CPUs{amx}; load average {os.getloadavg()[0]:.1f}"


def rerun_avx2_only(flag: str = "--avx2") -> None:
    """Run this script again, without `flag`, in a process held to AVX2 (`AVX2_ONLY`): the
    variables are read when the libraries load, so they must be set before torch starts."""
    argv = [a for a in sys.argv if a != flag]
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, **AVX2_ONLY})


def held_to() -> str:
    """`; held to AVX2 (...)` when this process runs under `AVX2_ONLY`, else empty."""
    held = [f"{k}={v}" for k, v in AVX2_ONLY.items() if os.environ.get(k) == v]
    return f"; held to AVX2 ({', '.join(held)})" if held else ""
