"""The README's examples, replayed: every `$ command` in its ```console blocks must print what
the README shows, and its ```python blocks must run.

All console commands run in order in one bash session on a pseudo-terminal, as a reader typing
them would (so tables print as tables), with `TERM=dumb` (Rich then draws no progress bar and no
colour), `COLUMNS=100`, the CPU and a private `HOME` and data folder. Output is compared after
dropping trailing whitespace and writing the private `HOME` as `/home/you`. Blocks without `$`
prompts are listings and are not run. `python tests/test_readme.py` prints the real transcript,
to paste into the README after a deliberate change.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
COLUMNS = 100
SHOWN_HOME = "/home/you"
MARK = "\x1eREADME-STEP"


def console_steps(text: str) -> list[tuple[str, str]]:
    """(command, expected output) for each `$ ` line of the ```console blocks, in order."""
    steps: list[tuple[str, str]] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        if not block.startswith("$ "):
            continue
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            steps.append((command, output))
    return steps


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def tidy(output: str) -> str:
    lines = [line.rstrip() for line in output.replace("\r", "").split("\n")]
    return "\n".join(lines).strip("\n")


DECIMAL = re.compile(r"[-+]?\d+\.\d+")


def agrees(expected: str, real: str) -> bool:
    """Same text, each decimal number within one unit of its last printed digit.

    fp32 results differ in the last bits between CPUs (MKL picks kernels by instruction set),
    which can flip the sixth printed decimal; anything larger is drift.
    """
    expected_text, real_text = DECIMAL.split(expected), DECIMAL.split(real)
    expected_nums, real_nums = DECIMAL.findall(expected), DECIMAL.findall(real)
    if expected_text != real_text or len(expected_nums) != len(real_nums):
        return False
    return all(
        abs(float(a) - float(b)) <= 1.001 * 10 ** -len(a.partition(".")[2])
        for a, b in zip(expected_nums, real_nums)
    )


def test_agrees_allows_last_digit_rounding_only():
    assert agrees("score 0.940099 x", "score 0.940098 x")
    assert not agrees("score 0.940099 x", "score 0.940080 x")
    assert not agrees("score 0.940099 x", "scores 0.940099 x")
    assert not agrees("1.5 2.5", "1.5")


def transcript(steps: list[tuple[str, str]]) -> str:
    return "\n".join(f"$ {command}\n{output}".rstrip("\n") for command, output in steps)


def environment(home: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BIND_", "XDG_", "HF_")) and k not in {"COLUMNS", "LINES"}}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home), BIND_DATA_DIR=str(data), BIND_DEVICE="cpu",
        TERM="dumb", NO_COLOR="1", COLUMNS=str(COLUMNS), LINES="50", LC_ALL="C.UTF-8",
        PYTHONIOENCODING="utf-8",
    )
    return env


def run_console(steps: list[tuple[str, str]], env: dict[str, str], timeout: float = 500) -> list[str]:
    """Run the commands in one bash on a pty; what the terminal showed for each."""
    activate = Path(sys.prefix) / "bin" / "activate"
    lines = ["cd " + _quote(str(REPO))]
    for n, (command, _) in enumerate(steps):
        if command.split("#")[0].strip() == "source .venv/bin/activate":
            # the environment running these tests, wherever it is
            command = f"source {_quote(str(activate))}" if activate.exists() else ":"
        lines += [f"printf '{MARK} {n}\\n'", command]
    lines.append(f"printf '{MARK} end\\n'")
    script = "\n".join(lines) + "\n"

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        ["bash", "--norc", "--noprofile", "-c", script],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, start_new_session=True,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(main)
    shown = b"".join(chunks).decode("utf-8", "replace").replace("\r", "")
    parts = re.split(rf"{MARK} (\d+|end)\n", shown)
    outputs = dict(zip(parts[1::2], parts[2::2]))
    assert "end" in outputs, f"the README session did not finish; it showed:\n{shown[-3000:]}"
    return [outputs.get(str(n), "") for n in range(len(steps))]


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def replay(tmp_path: Path) -> tuple[str, str, dict[str, str]]:
    """(README transcript, real transcript, environment), both tidied."""
    steps = console_steps(README.read_text(encoding="utf-8"))
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    env = environment(home, data)
    outputs = run_console(steps, env)
    real = [(c, tidy(o).replace(str(home), SHOWN_HOME)) for (c, _), o in zip(steps, outputs)]
    expected = [(c, tidy(o)) for c, o in steps]
    return transcript(expected), transcript(real), env


def test_parser_reads_commands_and_their_output():
    text = "```console\n$ a\nout 1\nout 2\n$ b\n```\n```console\nnot run\n```\n```console\n$ c\nx\n```\n"
    assert console_steps(text) == [("a", "out 1\nout 2\n"), ("b", ""), ("c", "x\n")]


def test_readme_has_the_sections_it_promises():
    text = README.read_text(encoding="utf-8")
    commands = [c for c, _ in console_steps(text)]
    for needed in ("enable -n bind", "bind embed", "bind compare", "bind classify", "bind arith",
                   "bind index", "bind search", "bind weights path", "BIND_OFFLINE=1"):
        assert any(needed in c for c in commands), f"no README example runs {needed!r}"
    assert len(python_blocks(text)) >= 2


@pytest.mark.timeout(600)  # ~1 min on an idle machine: about 17 `bind` starts, each importing torch
def test_readme_console_examples_print_what_the_readme_shows(tmp_path):
    expected, real, _ = replay(tmp_path)
    if not agrees(expected, real):
        assert real == expected


def test_readme_python_examples_run(tmp_path):
    """The Library snippet from the repository root; the SQLite one over a collection."""
    text = README.read_text(encoding="utf-8")
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    env = environment(home, data)
    small = REPO / "tests" / "fixtures" / "imagebind-reference"
    subprocess.run(
        [sys.executable, "-m", "bindcli", "index", "dog_image.jpg", "dog_audio.wav", "-q"],
        cwd=small / "media", check=True, timeout=120,
        env={**env, "BIND_MODEL_CONFIG": str(small / "public_config.json"),
             "BIND_WEIGHTS": str(small / "public.pth")},
    )
    for block in python_blocks(text):
        done = subprocess.run([sys.executable, "-c", block], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"README snippet failed:\n{block}\n{done.stderr}"
        assert done.stdout.strip(), f"README snippet printed nothing:\n{block}"


if __name__ == "__main__":  # print the real transcript, to paste into the README
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(replay(Path(tmp))[1])
