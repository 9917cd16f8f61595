"""The `imagebind` import name for bind's drop-in (`bind imagebind install | status | uninstall`).

Tools that `import imagebind` (LanceDB's `imagebind` embedding function, scripts written for
upstream) run on bind once that name resolves to `bindcli.imagebind`. It is given by a tiny
distribution, `bindcli-imagebind-alias`, built here as a wheel and installed by the
environment's own pip (`--no-index --no-deps`): pip then records its one file, `pip list`,
`pip uninstall` and `pip check` know it, and removing bind's alias can never remove anything
else. A `.pth` hook or a file dropped into site-packages would do the same unseen by pip.

An `imagebind` that is already importable (upstream's `imagebind`, `imagebind-packaged`,
`imagebind-unofficial`, a checkout on the path) is never shadowed: `install` refuses, naming
what provides it and the uninstall to run. Nothing here imports torch or the drop-in.

Imports: bindcli._util, bindcli.errors.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bindcli import __version__
from bindcli.errors import BindError

#: the import name, and the distribution bind installs to provide it
NAME = "imagebind"
DISTRIBUTION = "bindcli-imagebind-alias"
#: the distributions on PyPI that install upstream's `imagebind` package
UPSTREAM = ("imagebind", "imagebind-packaged", "imagebind-unofficial")

#: the alias's one file: each upstream module name becomes the drop-in's module itself, so
#: `imagebind.data is bindcli.imagebind.data` (no second copy whose globals could drift)
PACKAGE_INIT = '''\
"""`imagebind`, upstream ImageBind's import name, answered by bind's drop-in (bindcli.imagebind).

Installed by `bind imagebind install`, removed by `bind imagebind uninstall`.
"""
import sys

import bindcli.imagebind
from bindcli.imagebind import data, models
from bindcli.imagebind.models import imagebind_model

sys.modules.update({
    "imagebind.data": data,
    "imagebind.models": models,
    "imagebind.models.imagebind_model": imagebind_model,
    "imagebind.imagebind_model": imagebind_model,
})
sys.modules[__name__] = bindcli.imagebind
'''


class AliasError(BindError):
    """The alias cannot be installed or removed here (an upstream `imagebind`, no pip, pip failed)."""


@dataclasses.dataclass(frozen=True)
class ImportName:
    """What `import imagebind` loads in this environment."""

    #: the file it loads; None where nothing answers to the name
    path: str | None
    #: `NAME VERSION` of the installed distribution providing it; None for a file no installed
    #: distribution lists (a checkout on the path, an editable install)
    distribution: str | None
    #: the distribution is bind's alias
    ours: bool

    def describe(self) -> str:
        """One line: which `imagebind` this is, and where."""
        if self.path is None:
            return "not importable here; `bind imagebind install` makes it bind's drop-in"
        if self.ours:
            return f"bind's drop-in (bindcli.imagebind), through {self.distribution} at {self.path}"
        source = self.distribution or "no installed distribution (a checkout on the path?)"
        return f"not bind's: {source} at {self.path}"


def status() -> ImportName:
    """Which `imagebind` this process would import, found the way the import system finds it
    (without importing it, and whether or not it was imported already)."""
    importlib.invalidate_caches()
    spec = _find_spec()
    if spec is None:
        return ImportName(None, None, False)
    # a namespace package (a bare `imagebind/` folder on the path) has no file, only folders
    path = spec.origin if spec.has_location and spec.origin else next(iter(spec.submodule_search_locations or ()), "")
    dist = _owner(Path(path))
    name = dist.metadata["Name"] if dist is not None else None
    return ImportName(path, f"{name} {dist.version}" if dist is not None else None, _is_ours(name))


def providers() -> list[str]:
    """The installed distributions other than bind's alias that provide `imagebind`, by name:
    those whose files hold a top-level `imagebind`, and PyPI's `UPSTREAM` names (which an
    editable install provides without listing the files)."""
    found = set(importlib.metadata.packages_distributions().get(NAME, ()))
    for name in UPSTREAM:
        try:
            found.add(importlib.metadata.distribution(name).metadata["Name"])
        except importlib.metadata.PackageNotFoundError:
            pass
    return sorted(name for name in found if not _is_ours(name))


def install() -> ImportName:
    """Install bind's alias with this environment's pip and return what `import imagebind`
    then loads; refused (AliasError) where another `imagebind` is installed or importable."""
    _refuse_upstream()
    with tempfile.TemporaryDirectory(prefix="bind-alias-") as folder:
        wheel = build_wheel(Path(folder))
        _pip("install", "--no-index", "--no-deps", "--force-reinstall", str(wheel))
    found = status()
    if not found.ours:
        raise AliasError(f"pip installed {DISTRIBUTION}, but `import imagebind` here loads {found.describe()}")
    return found


def uninstall() -> bool:
    """Remove bind's alias with pip; False where it was not installed (nothing is done).
    Refused where an upstream `imagebind` was installed over it: they share `imagebind/`'s
    files, which pip would remove with the alias."""
    try:
        importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    others = providers()
    if others:
        raise AliasError(
            f"{', '.join(others)} was installed over {DISTRIBUTION} and shares its `imagebind` "
            f"files, which removing the alias would remove too; run `{_pip_command()} uninstall "
            f"{DISTRIBUTION}`, then `{_pip_command()} install --force-reinstall {' '.join(others)}`"
        )
    _pip("uninstall", "--yes", DISTRIBUTION)
    importlib.invalidate_caches()
    return True


def build_wheel(folder: Path) -> Path:
    """The alias as a wheel in `folder`: the `imagebind` package and its dist-info (METADATA,
    WHEEL, top_level.txt, and the RECORD of their hashes that pip installs and removes by)."""
    stem = f"{DISTRIBUTION.replace('-', '_')}-{__version__}"
    info = f"{stem}.dist-info"
    files = {
        f"{NAME}/__init__.py": PACKAGE_INIT.encode(),
        f"{info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {DISTRIBUTION}\n"
            f"Version: {__version__}\n"
            "Summary: The `imagebind` import name for bind's drop-in (bindcli.imagebind); "
            "installed by `bind imagebind install`\n"
            f"Requires-Dist: bindcli=={__version__}\n"
        ).encode(),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\n"
            f"Generator: bindcli {__version__}\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ).encode(),
        f"{info}/top_level.txt": f"{NAME}\n".encode(),
    }
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def _digest(data: bytes) -> str:
    """A RECORD hash: URL-safe base64 of the SHA-256, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _refuse_upstream() -> None:
    """AliasError naming what provides `imagebind` here, when something other than bind does."""
    others = providers()
    found = status()
    if others:
        where = f" ({found.path})" if found.path and not found.ours else ""
        raise AliasError(
            f"`import imagebind` is provided here by {', '.join(others)}{where}; bind will not "
            f"shadow it. To use bind's drop-in instead, run `{_pip_command()} uninstall "
            f"{' '.join(others)}`, then `bind imagebind install`"
        )
    if found.path is not None and not found.ours:
        raise AliasError(
            f"`import imagebind` here loads {found.path}, which no installed distribution "
            "provides (a checkout on sys.path or PYTHONPATH?); bind will not shadow it. Remove "
            "it from the path, then run `bind imagebind install`"
        )


def _find_spec() -> importlib.machinery.ModuleSpec | None:
    """`imagebind`'s spec from the import system's finders, ignoring `sys.modules` (where an
    imported alias stands as `bindcli.imagebind`)."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find(NAME, None) if find is not None else None
        if spec is not None:
            return spec
    return None


def _owner(path: Path) -> importlib.metadata.Distribution | None:
    """The installed distribution that lists `path` among its files, if any."""
    names = importlib.metadata.packages_distributions().get(NAME, ())
    target = path.resolve()
    for name in names:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if Path(str(dist.locate_file(file))).resolve() == target:
                return dist
    return None


def _is_ours(name: str | None) -> bool:
    return name is not None and _normal(name) == _normal(DISTRIBUTION)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _pip_command() -> str:
    return f"{sys.executable} -m pip"


def _pip(*args: str) -> None:
    """Run this environment's pip quietly; AliasError with its message when it fails."""
    if importlib.util.find_spec("pip") is None:
        raise AliasError(
            f"pip is not installed in the environment of {sys.executable}; "
            f"`{sys.executable} -m ensurepip` installs it"
        )
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PIP_NO_COLOR": "1"})
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise AliasError(f"`{_pip_command()} {' '.join(args[:1])}` failed: {' '.join(said[-3:]) or f'exit status {done.returncode}'}")
