"""Pictures inline in the terminal (`bind search --preview`), as rclip shows them: kitty's
graphics protocol, iTerm2's inline images or sixel, whichever the terminal says (by its
environment) it speaks; none elsewhere, where the plain output stays as it is.

`BIND_PREVIEW=kitty|iterm|sixel|none` overrides the guess (a terminal multiplexer hides the
terminal behind it, and some terminals that speak sixel do not say so).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

PROTOCOLS = ("kitty", "iterm", "sixel")
ROWS = 8  # terminal rows a picture takes
SIDE = 160  # pixels high: 8 rows of a 20-pixel cell (sixel draws pixels as they are)
KITTY_CHUNK = 4096  # base64 bytes per escape, kitty's limit
ESC = "\x1b"
ST = ESC + "\\"  # string terminator


def detect(env: Mapping[str, str] = os.environ) -> str | None:
    """The picture protocol the terminal speaks, by its environment; None when it says none."""
    forced = env.get("BIND_PREVIEW", "").strip().lower()
    if forced:
        return forced if forced in PROTOCOLS else None
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if term.startswith(("screen", "tmux")) or env.get("TMUX"):
        return None  # a multiplexer passes none of these through unwrapped
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty" or program == "ghostty" or term == "xterm-ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    if "sixel" in term or term.startswith(("foot", "mlterm", "yaft", "contour")):
        return "sixel"
    return None


def encode(protocol: str, picture: "Image.Image", rows: int = ROWS) -> str:
    """The escape sequence that draws `picture` (RGB) about `rows` terminal rows high, at the
    cursor; the cursor then stands after it."""
    small = picture.copy()
    small.thumbnail((2 * SIDE, SIDE))  # the terminal scales kitty's and iTerm2's to `rows`
    if protocol == "sixel":
        return sixel(small)
    png = io.BytesIO()
    small.save(png, "PNG")
    return kitty(png.getvalue(), rows) if protocol == "kitty" else iterm(png.getvalue(), rows)


def kitty(png: bytes, rows: int) -> str:
    """kitty's graphics protocol: transmit and show a PNG (`a=T,f=100`), `rows` rows high,
    in base64 chunks of at most 4096 bytes (`m=1` on all but the last)."""
    data = base64.b64encode(png).decode("ascii")
    chunks = [data[at:at + KITTY_CHUNK] for at in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for n, chunk in enumerate(chunks):
        more = int(n < len(chunks) - 1)
        keys = f"a=T,f=100,r={rows},q=2,m={more}" if n == 0 else f"m={more}"
        out.append(f"{ESC}_G{keys};{chunk}{ST}")
    return "".join(out)


def iterm(data: bytes, rows: int) -> str:
    """iTerm2's inline image (also WezTerm's): the file's bytes in base64, `rows` rows high."""
    payload = base64.b64encode(data).decode("ascii")
    return f"{ESC}]1337;File=inline=1;size={len(data)};height={rows};preserveAspectRatio=1:{payload}\a"


def sixel(picture: "Image.Image", colours: int = 255) -> str:
    """DEC sixel: the picture in at most `colours` colours (a palette of percentages), in bands
    six pixels high; each colour of a band is one line of characters (63 + the six bits of its
    column), runs of four or more written `!COUNT CHAR`."""
    import numpy as np
    from PIL import Image

    quantised = picture.convert("RGB").quantize(colors=colours, dither=Image.Dither.NONE)
    pixels = np.asarray(quantised)
    height, width = pixels.shape
    palette = quantised.getpalette()[: 3 * (int(pixels.max()) + 1)]
    out = [f'{ESC}Pq"1;1;{width};{height}']
    for index in range(len(palette) // 3):
        r, g, b = (round(v * 100 / 255) for v in palette[3 * index: 3 * index + 3])
        out.append(f"#{index};2;{r};{g};{b}")
    for top in range(0, height, 6):
        band = pixels[top:top + 6]
        lines = []
        for index in np.unique(band):
            bits = sum((band[k] == index).astype(np.int64) << k for k in range(len(band)))
            lines.append(f"#{index}" + _runs(bits + 63))
        out.append("$".join(lines) + "-")
    out.append(ST)
    return "".join(out)


def _runs(codes) -> str:  # noqa: ANN001 - an integer array
    """Sixel characters with runs of four or more as `!COUNT CHAR`."""
    text, at = [], 0
    while at < len(codes):
        end = at
        while end < len(codes) and codes[end] == codes[at]:
            end += 1
        count, char = end - at, chr(int(codes[at]))
        text.append(f"!{count}{char}" if count > 3 else char * count)
        at = end
    return "".join(text)
