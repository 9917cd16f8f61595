"""The one rule for when two paths name the same file: their canonical forms are equal.

The canonical form is the absolute path with `..` and symlinks resolved (`os.path.realpath`).
Collections store it, and `search`/`arith` compare by it, so `bind index ../photos` and `bind
index /home/me/photos` hold each file once, and a query never finds itself however it was
spelt. A URI (`s3://bucket/key`) is no local path and keeps its own form. And how a path is
printed: POSIX names are bytes, which need not be UTF-8. And what a path names when it is not
a regular file (`not_a_file`), in words.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a file through a filesystem URI (`scheme://...`), not locally."""
    return bool(_SCHEME.match(os.fspath(path)))


def canonical(path: str | os.PathLike[str]) -> Path | str:
    """`path` made absolute, `~`, `..` and symlinks resolved (a missing path too, as far as it
    exists). A URI (read through `bindcli.embed.object_store`) stays as given, less trailing slashes,
    and a str (a `Path` would fold its `//`)."""
    if is_uri(path):
        scheme, _, rest = os.fspath(path).partition("://")
        return f"{scheme}://{rest.rstrip('/')}"
    return Path(os.path.realpath(os.path.expanduser(path)))


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as text that is valid UTF-8 and that a shell opens: unchanged when its bytes are
    UTF-8, else bash's `$'...'` quoting with each byte that is not as `\\xHH` (POSIX names are
    bytes; Python keeps the odd ones as lone surrogates, which no UTF-8 output can hold)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    quoted = []
    for char in text:
        if "\udc80" <= char <= "\udcff":  # a byte that os.fsdecode could not decode
            quoted.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif "\ud800" <= char <= "\udfff":
            quoted.append(f"\\u{ord(char):04x}")
        else:
            quoted.append({"\\": "\\\\", "'": "\\'"}.get(char, char))
    return "$'" + "".join(quoted) + "'"


_QUOTED = re.compile(r"\$'((?:[^'\\]|\\.)*)'", re.S)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)", re.S)


def path_from_text(text: str) -> str:
    """The path that `path_text` printed as `text` (a manifest's `input`, read back by `bind
    collections import`). A `$'...'` quoting is undone only where it stands for bytes that
    are not UTF-8, the one case `path_text` quotes; other text stays as written. (`path_text`
    prints a UTF-8 name spelt `$'a\\xe9'` like the non-UTF-8 name `a` + byte E9; such a name
    is read back as the latter.)"""
    quoted = _QUOTED.fullmatch(text)
    if quoted is None:
        return text

    def unescape(match: re.Match) -> str:
        code = match.group(1)
        if code[0] == "x" and len(code) == 3:
            byte = int(code[1:], 16)
            return chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)
        if code[0] == "u" and len(code) == 5:
            return chr(int(code[1:], 16))
        return code

    path = _ESCAPE.sub(unescape, quoted.group(1))
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        try:
            path.encode("utf-8", "surrogateescape")  # bytes a file name can have
        except UnicodeEncodeError:
            return text  # a lone surrogate no name holds: not path_text's
        return path
    return text


# --- what a path names when it is not a regular file, for the one-line input errors

_SPECIAL_FILES = (
    (stat.S_ISDIR, "is a folder, not a regular file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file: bind reads a file twice "
     "(to hash it, then to decode it); save the stream to a file first"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
)


def not_a_file(path: str | Path) -> str:
    """Why `path`, which is not a regular file, cannot be read as one: what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a symbolic link to a missing file" if os.path.islink(path) else "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    return next((what for test, what in _SPECIAL_FILES if test(mode)), "not a regular file")
