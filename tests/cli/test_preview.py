"""`bind search --preview`: which terminals draw pictures, and the escape sequences of each
protocol, checked byte by byte."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from bindcli.cli import preview
from cli_support import bind


@pytest.mark.parametrize(("env", "protocol"), [
    ({"TERM": "xterm-kitty"}, "kitty"),
    ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, "kitty"),
    ({"TERM_PROGRAM": "ghostty"}, "kitty"),
    ({"TERM_PROGRAM": "iTerm.app", "TERM": "xterm-256color"}, "iterm"),
    ({"TERM_PROGRAM": "WezTerm"}, "iterm"),
    ({"LC_TERMINAL": "iTerm2"}, "iterm"),
    ({"TERM": "foot"}, "sixel"),
    ({"TERM": "xterm-sixel"}, "sixel"),
    ({"TERM": "mlterm"}, "sixel"),
    ({"TERM": "xterm-256color"}, None),
    ({"TERM": "dumb"}, None),
    ({}, None),
    ({"TERM": "tmux-256color", "KITTY_WINDOW_ID": "1"}, None),
    ({"TERM": "xterm-256color", "BIND_PREVIEW": "sixel"}, "sixel"),
    ({"TERM": "xterm-kitty", "BIND_PREVIEW": "none"}, None),
    ({"BIND_PREVIEW": "Kitty"}, "kitty"),
])
def test_the_protocol_is_read_from_the_terminals_environment(env, protocol):
    assert preview.detect(env) == protocol


def test_kitty_sends_the_png_in_chunks_of_4096():
    png = bytes(range(256)) * 40  # 10240 bytes: 13656 in base64, four chunks
    text = preview.kitty(png, 8)
    escapes = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", text)
    assert escapes[0][0] == "a=T,f=100,r=8,q=2,m=1"
    assert [keys for keys, _ in escapes[1:]] == ["m=1", "m=1", "m=0"]
    assert [len(chunk) for _, chunk in escapes] == [4096, 4096, 4096, 13656 - 3 * 4096]
    assert base64.b64decode("".join(chunk for _, chunk in escapes)) == png
    assert text == "".join(f"\x1b_G{k};{c}\x1b\\" for k, c in escapes)
    small = preview.kitty(b"\x89PNG", 4)
    assert small == "\x1b_Ga=T,f=100,r=4,q=2,m=0;iVBORw==\x1b\\"


def test_iterm_sends_the_file_with_its_size():
    assert preview.iterm(b"\x89PNG", 8) == (
        "\x1b]1337;File=inline=1;size=4;height=8;preserveAspectRatio=1:iVBORw==\a")


def test_sixel_draws_each_colour_of_each_band_of_six_rows():
    """A 5 x 7 picture: red, with a blue column at x=1 in rows 0-5 and a blue last row."""
    pixels = np.zeros((7, 5, 3), np.uint8)
    pixels[:, :] = (255, 0, 0)
    pixels[:6, 1] = (0, 0, 255)
    pixels[6, :] = (0, 0, 255)
    text = preview.sixel(Image.fromarray(pixels))
    assert text.startswith('\x1bPq"1;1;5;7') and text.endswith("-\x1b\\")
    palette = dict(re.findall(r"#(\d+);2;(\d+;\d+;\d+)", text))
    red = next(i for i, c in palette.items() if c == "100;0;0")
    blue = next(i for i, c in palette.items() if c == "0;0;100")
    body = text[text.index("#", text.rindex(";2;")):-2]
    first, second = body.split("-")[:2]
    # band 1: red everywhere but x=1 (all six bits: 63 + 63 = "~"), blue at x=1 only
    assert sorted(first.split("$")) == sorted([f"#{red}~?~~~", f"#{blue}?~???"])
    # band 2: one row (bit 0: 63 + 1 = "@"), all blue: a run of five
    assert second == f"#{blue}!5@"


def test_sixel_runs_of_four_or_more_are_counted():
    assert preview._runs(np.array([64] * 4 + [65] * 3 + [66])) == "!4@AAAB"


def test_encode_scales_the_picture_down_first():
    big = Image.new("RGB", (1600, 1200), (10, 200, 30))
    png = base64.b64decode(preview.encode("iterm", big).split(":", 1)[1].rstrip("\a"))
    assert Image.open(io.BytesIO(png)).size == (213, 160)
    assert '"1;1;213;160' in preview.encode("sixel", big)


def test_search_preview_is_plain_output_in_a_pipe(tmp_path, media_dir):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "dog.jpg").write_bytes((media_dir / "dog_image.jpg").read_bytes())
    env = {"BIND_DATA_DIR": str(tmp_path / "data"), "BIND_PREVIEW": "kitty"}
    assert bind("index", folder, env=env).exit_code == 0
    plain = bind("search", "--text", "a dog", "--no-server", env=env)
    shown = bind("search", "--text", "a dog", "--preview", "--no-server", env=env)
    assert shown.exit_code == 0 and shown.stdout == plain.stdout and "\x1b" not in shown.stdout


def test_search_preview_on_a_terminal_draws_each_picture_under_its_line(tmp_path, media_dir, monkeypatch):
    from bindcli.cli.output import Output

    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("dog_image.jpg", "bird_audio.wav"):
        (folder / name).write_bytes((media_dir / name).read_bytes())
    env = {"BIND_DATA_DIR": str(tmp_path / "data")}
    assert bind("index", folder, env=env).exit_code == 0
    monkeypatch.setattr(Output, "stdout_is_terminal", property(lambda self: True))
    shown = bind("search", "--text", "a dog", "--preview", "--no-server", env={**env, "BIND_PREVIEW": "iterm"})
    lines = shown.stdout.split("\n")
    picture = next(n for n, line in enumerate(lines) if line.endswith("dog_image.jpg  image"))
    assert lines[picture + 1].startswith("\x1b]1337;File=inline=1;") and lines[picture + 1].endswith("\a")
    sound = next(n for n, line in enumerate(lines) if line.endswith("bird_audio.wav  audio"))
    assert not lines[sound + 1].startswith("\x1b")  # a sound has no picture
    none = bind("search", "--text", "a dog", "--preview", "--no-server", env={
        **env, "TERM": "xterm", "BIND_PREVIEW": None, "KITTY_WINDOW_ID": None, "TERM_PROGRAM": None,
        "LC_TERMINAL": None, "TMUX": None})
    assert "\x1b" not in none.stdout and "draws no pictures inline" in none.stderr
