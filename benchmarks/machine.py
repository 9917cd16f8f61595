"""One line naming the machine a benchmark ran on (torch-free, so start-up benchmarks can use it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


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
