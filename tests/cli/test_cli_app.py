"""The installed `bind`: help and completion without torch, completions up to date, pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bindcli import __version__
from cli_support import MEDIA, SMALL, bind

ROOT = Path(__file__).resolve().parents[2]
BIND = Path(sys.executable).with_name("bind")
sys.path.insert(0, str(ROOT / "scripts"))
import update_completions  # noqa: E402

#: the optional extras' packages (generate, ray, serve, the vector index): seconds to import
EXTRAS = (
    "diffusers", "transformers", "ray", "uvicorn", "starlette", "faiss", "numkong", "h5py", "scipy",
)
#: runs bind's entry point in a fresh interpreter, then says which of the extras' packages and
#: whether torch got imported
PROBE = (
    "import sys\nsys.argv = ['bind', *sys.argv[1:]]\nfrom bindcli.cli.app import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    f"print('extras:', sorted(set({EXTRAS!r}) & set(sys.modules)), file=sys.stderr)\n"
    "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
)


def probe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["embed", "--help"], ["arith", "--help"],
                                  ["generate", "--help"], []])
@pytest.mark.slow
def test_help_does_not_import_torch(args):
    done = probe(*args)
    assert done.stderr.strip().endswith("NO-TORCH")
    assert "Usage" in done.stdout + done.stderr


@pytest.mark.slow
def test_commands_import_no_extra_they_do_not_use():
    """The extras (diffusers, Ray, the server, the vector index) take seconds to import: a
    command that embeds, with the whole app loaded, must not pull them in."""
    done = probe("embed", "-t", "a dog", "-q", env=SMALL)
    assert "extras: []" in done.stderr.splitlines(), done.stderr
    assert json.loads(done.stdout)["modality"] == "text"


@pytest.mark.slow
def test_completion_works_without_torch():
    words = {"COMP_WORDS": "bind compare --as a", "COMP_CWORD": "3", "_BIND_COMPLETE": "complete_bash"}
    done = probe(env=words)
    assert "audio" in done.stdout.split() and done.stderr.strip().endswith("NO-TORCH")
    commands = probe(env={**words, "COMP_WORDS": "bind c", "COMP_CWORD": "1"}).stdout.split()
    assert {"compare", "classify"} <= set(commands)


@pytest.mark.slow
@pytest.mark.parametrize("program", update_completions.PROGRAMS)
def test_bash_completion_script_completes_each_installed_name(program):
    """The committed script, sourced in bash, completes subcommands through the venv's program."""
    script = ROOT / "completions" / update_completions.FILES[program, "bash"]
    line = (
        f"source {script}; COMP_WORDS=({program} cl); COMP_CWORD=1; "
        f"_{program}_completion {program}; echo \"${{COMPREPLY[@]}}\""
    )
    path = f"{BIND.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(["bash", "--norc", "-c", line], capture_output=True, text=True,
                          env={**os.environ, "PATH": path}, timeout=60)
    assert done.stdout.split() == ["classify"], done.stderr


@pytest.mark.parametrize("program, shell", sorted(update_completions.FILES))
def test_completion_scripts_are_up_to_date(program, shell):
    name = update_completions.FILES[program, shell]
    committed = (ROOT / "completions" / name).read_text(encoding="utf-8")
    assert committed == update_completions.completion_script(program, shell), (
        f"completions/{name} is stale: run scripts/update_completions.py"
    )


def commands(command=None, path=()) -> list[tuple[tuple[str, ...], str]]:
    """(path, help text) of every command of `bind`, the root and the groups included."""
    if command is None:
        import typer

        from bindcli.cli.app import app

        command = typer.main.get_command(app)
    found = [(path, command.help or "")]
    for name, sub in getattr(command, "commands", {}).items():
        found += commands(sub, (*path, name))
    return found


@pytest.mark.parametrize("path, text", [
    pytest.param(path, text, id=" ".join(path) or "bind") for path, text in commands()
])
def test_help_has_no_type_beside_flags_and_a_line_per_paragraph(path, text):
    """Rich help keeps line breaks, so each prose paragraph must reach it as one line."""
    shown = bind(*path, "--help", env={"COLUMNS": "400"}).stdout
    assert "--help" in shown and "<bool>" not in shown
    lines = [" ".join(line.split()) for line in shown.splitlines()]
    for paragraph in text.split("\n\n"):
        if "[" not in paragraph and "\n " not in paragraph:  # no markup, no indented examples
            assert any(" ".join(paragraph.split()) in line for line in lines), paragraph


def test_flags_lose_only_their_type():
    shown = bind("embed", "--help", env={"COLUMNS": "200"}).stdout
    assert "--quiet" in shown and "<auto|fp32|bf16|fp16|int8>" in shown


def test_version_and_no_args():
    assert bind("--version").stdout.strip() == f"bind {__version__}"
    assert "Commands" in bind().stdout


@pytest.mark.slow
def test_pipe_stdin_paths_stdout_json_stderr_apart_exit_1(tmp_path):
    paths = f"{MEDIA / 'dog_image.jpg'}\n{tmp_path / 'gone.wav'}\n{MEDIA / 'car_audio.wav'}\n"
    done = subprocess.run([str(BIND), "embed", "-"], input=paths, capture_output=True, text=True,
                          env={**os.environ, **SMALL}, timeout=120)
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["modality"] for r in records] == ["image", "audio"]
    assert all(len(r["embedding"]) == 32 for r in records)
    assert f"bind: {tmp_path / 'gone.wav'}: no such file" in done.stderr.splitlines()
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_nul_separated_paths_and_quiet(tmp_path):
    paths = f"{MEDIA / 'dog_image.jpg'}\0{MEDIA / 'bird_image.jpg'}\0"
    done = subprocess.run([str(BIND), "compare", "-", "-q", "-f", "json"], input=paths,
                          capture_output=True, text=True, env={**os.environ, **SMALL}, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert len(json.loads(done.stdout)["rows"]) == 2


@pytest.mark.slow
def test_bind_debug_shows_the_traceback():
    args = ["embed", "-t", "x", "--model-config", "no-such-model"]
    quiet = subprocess.run([str(BIND), *args], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 2 and quiet.stderr.startswith("bind: model config 'no-such-model'")
    loud = subprocess.run([str(BIND), *args], capture_output=True, text=True,
                          env={**os.environ, "BIND_DEBUG": "1"}, timeout=60)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "ConfigError" in loud.stderr
