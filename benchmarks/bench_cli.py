"""Start-up time of `bind --help` and of shell completion vs `python -c "import torch"`.

The CLI must not import torch to print help or complete a word (target: <= 0.3x the time of
importing torch). Each command runs in a fresh process, alternating with the baseline, and
the median of `--repeats` runs is reported after one warm-up each (so all read from a warm
page cache).

Run: .venv/bin/python benchmarks/bench_cli.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

TARGET = 0.3
BIND = str(Path(sys.executable).with_name("bind"))
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "import torch": ([sys.executable, "-c", "import torch"], {}),
    "bind --help": ([BIND, "--help"], {}),
    "bind completion (bash, `bind em<TAB>`)": (
        [BIND],
        {"_BIND_COMPLETE": "complete_bash", "COMP_WORDS": "bind em", "COMP_CWORD": "1"},
    ),
}


def _seconds(argv: list[str], extra_env: dict[str, str]) -> float:
    env = os.environ | extra_env
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {describe()}; python {platform.python_version()}")
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, (argv, env) in COMMANDS.items():
        _seconds(argv, env)  # warm-up
    for _ in range(args.repeats):
        for name, (argv, env) in COMMANDS.items():
            times[name].append(_seconds(argv, env))
    base = statistics.median(times["import torch"])
    print("| figure | bind | baseline (import torch) | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for name in list(COMMANDS)[1:]:
        mine = statistics.median(times[name])
        ratio = mine / base
        met = "yes" if ratio <= TARGET else "NO"
        print(f"| {name} | {mine:.3f} s | {base:.3f} s | {ratio:.2f}x | <= {TARGET}x | {met} |")


if __name__ == "__main__":
    main()
