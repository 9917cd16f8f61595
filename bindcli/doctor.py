"""What a bug report about bind needs, gathered without loading a model: versions, the optional
extras, the device and precision a command would pick here and why, where the weights are and
whether they check out, bind's folders with their sizes, the server a command would use, and
which `imagebind` a Python process here would import.

torch is imported (only it can say what the device is); the model code is not, so this works
where a model would fail to load, which is when it is needed most.

Imports: bindcli._util, bindcli.errors, bindcli.model, bindcli.weights, bindcli.embed.remote (to
ask a running server what it serves, only where one may be), bindcli.imagebind_alias.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from bindcli import __version__, imagebind_alias, weights
from bindcli._util import folders
from bindcli._util.hashing import Progress
from bindcli.errors import WeightsError

#: the packages whose versions decide how inputs decode and models run, by the names people
#: know them by, and their distribution names
PACKAGES = {
    "torch": "torch", "torchaudio": "torchaudio", "torchvision": "torchvision", "PyAV": "av",
    "numpy": "numpy", "soundfile": "soundfile",
}
#: variables besides BIND_* that change where bind looks or what it runs on
OTHER_VARIABLES = ("XDG_CACHE_HOME", "XDG_DATA_HOME", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")


@dataclasses.dataclass(frozen=True)
class DeviceReport:
    """What a command's device and precision pick on this machine, and what it saw."""

    #: what was asked: `auto`, or the `BIND_DEVICE`/`BIND_PRECISION` values
    asked: str
    device: str
    precision: str
    why: str
    warning: str | None
    #: the CUDA version this torch was built for (None: a CPU-only build)
    torch_cuda: str | None
    gpus: tuple[str, ...]
    cpu_bf16: tuple[str, ...]
    threads: int


@dataclasses.dataclass(frozen=True)
class WeightsReport:
    """Where the checkpoint is and how far it was checked: `check` is `none` (no file, or a
    record that cannot be read), `size` (the file's size against its record, the recorded
    SHA-256 against the reference hash: `BIND_WEIGHTS_SHA256` or the published one, see
    `weights.reference`) or `sha256` (the whole file hashed, against both)."""

    path: Path | None
    #: `--weights`, `BIND_WEIGHTS` or `cache`, as `weights.named_path` says
    chosen_by: str
    detail: str
    present: bool = False
    size_bytes: int | None = None
    check: str = "none"
    #: None where there was nothing to compare with
    ok: bool | None = None
    #: recorded, or computed by the `sha256` check
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class FolderReport:
    path: Path
    exists: bool
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class Report:
    versions: dict[str, str | None]
    device: DeviceReport
    weights: WeightsReport
    #: `cache` (checkpoints) and `data` (collections and the embedding cache)
    folders: dict[str, FolderReport]
    #: the variables set that change what bind does
    environment: dict[str, str]
    #: each optional extra: installed (with its packages' versions), or the install to run
    extras: dict[str, str]
    #: the server a command would use (`--server`'s `BIND_SERVER`, else the local socket)
    server: dict[str, str]
    #: what `import imagebind` loads here: bind's drop-in, another one, or nothing
    #: (`imagebind_alias.ImportName.describe`)
    imagebind: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return _plain(dataclasses.asdict(self))


def diagnose(
    weights_path: str | Path | None = None,
    *,
    config: weights.Config = weights.DEFAULT_CONFIG,
    verify: bool = False,
    progress: Progress | None = None,
) -> Report:
    """The report for the checkpoint `weights_path` (else what `config` would use, as
    `weights.named_path` finds it). Checking the weights compares sizes unless `verify`, which
    hashes the whole file (a minute or more for 4.8 GB; `progress` hears the bytes)."""
    return Report(
        versions=versions(),
        device=device(os.environ.get("BIND_DEVICE") or "auto", os.environ.get("BIND_PRECISION") or "auto"),
        weights=check_weights(weights_path, config=config, verify=verify, progress=progress),
        folders={
            "cache": folder(folders.cache_dir()),
            "data": folder(folders.data_dir()),
        },
        environment={
            name: value for name, value in sorted(os.environ.items())
            if name.startswith("BIND_") or name in OTHER_VARIABLES
        },
        extras=extras_installed(),
        server=server(),
        imagebind=imagebind_alias.status().describe(),
    )


def extras_installed() -> dict[str, str]:
    """Each extra: its packages' versions where all are importable, else what is missing and
    the install to run. Nothing is imported."""
    from bindcli._util import extras

    where = importlib.metadata.packages_distributions()
    found = {}
    for extra in extras.ALL:
        missing = extra.missing()
        if missing:
            found[extra.name] = f"missing {', '.join(missing)}: {extra.install}"
            continue
        names = sorted({d for m in extra.modules for d in where.get(m, ())})
        found[extra.name] = ", ".join(f"{d} {_version(d)}" for d in names) or "installed"
    return found


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def server() -> dict[str, str]:
    """Where a command looks for `bind serve` and what answers there: the model id, device
    and precision it serves, or why no server is used. Asked only where one may be (a socket
    file, or `BIND_SERVER`), with the commands' short probe."""
    named = os.environ.get("BIND_SERVER")
    socket = folders.server_socket()
    where = named or str(socket)
    if not named and not socket.exists():
        return {"address": where, "state": "no server (no socket there)"}
    from bindcli.embed.remote import Address, TokenRefused, probe

    try:
        info, why = probe(Address.parse(where) if named else Address(unix=where), os.environ.get("BIND_TOKEN"))
    except TokenRefused as exc:
        info, why = None, str(exc)
    if info is None:
        return {"address": where, "state": why}
    state = f"serving {info.get('id')} on {info.get('device')}, {info.get('precision')}"
    return {"address": where, "state": state}


def versions() -> dict[str, str | None]:
    """bind, Python, the platform and each of `PACKAGES` (None: not installed), plus the
    FFmpeg under PyAV and the libsndfile under soundfile, which do the decoding."""
    found: dict[str, str | None] = {
        "bind": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
    }
    for name, distribution in PACKAGES.items():
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["FFmpeg"] = _library_version("av", "ffmpeg_version_info")
    found["libsndfile"] = _library_version("soundfile", "__libsndfile_version__")
    return found


def _library_version(module: str, attribute: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), attribute))
    except (ImportError, OSError, AttributeError):  # OSError: the C library did not load
        return None


def device(requested: str = "auto", precision: str = "auto") -> DeviceReport:
    """What a command picks for `--device requested --precision precision` (auto unless
    `BIND_DEVICE`/`BIND_PRECISION` say otherwise), with the reasons for both."""
    import torch

    from bindcli.model.placement import cpu_bf16_units, place

    placement = place(requested, precision)
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = tuple(_gpu(index) for index in range(visible))
    asked = "auto" if (requested, precision) == ("auto", "auto") else f"{requested}, {precision}"
    return DeviceReport(
        asked=asked,
        device=str(placement.device),
        precision=placement.precision,
        why="; ".join(x for x in (_why_device(placement.device.type, gpus), placement.reason) if x),
        warning=placement.warning,
        torch_cuda=torch.version.cuda,
        gpus=gpus,
        cpu_bf16=tuple(cpu_bf16_units()),
        threads=torch.get_num_threads(),
    )


def _gpu(index: int) -> str:
    import torch

    props = torch.cuda.get_device_properties(index)
    return (
        f"cuda:{index} {props.name} ({props.total_memory / 2**30:.0f} GiB, compute capability "
        f"{props.major}.{props.minor})"
    )


def _why_device(kind: str, gpus: tuple[str, ...]) -> str:
    import torch

    if kind == "cuda":
        return f"torch sees {len(gpus)} CUDA GPU{'s' if len(gpus) > 1 else ''}"
    if kind == "mps":
        return "Apple's MPS backend is available"
    build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
    return f"no CUDA GPU is visible to this torch ({build}) and no MPS"


def check_weights(
    weights_path: str | Path | None = None,
    *,
    config: weights.Config = weights.DEFAULT_CONFIG,
    verify: bool = False,
    progress: Progress | None = None,
) -> WeightsReport:
    """Where the checkpoint is, and whether it agrees with its record (see `WeightsReport`)."""
    try:
        path, source = weights.named_path(weights_path, config)
    except WeightsError as err:  # a config without published weights, and none named
        return WeightsReport(None, "cache", str(err))
    chosen_by = source.value
    if not path.is_file():
        if source is weights.Source.CACHE:
            return WeightsReport(path, chosen_by, "not downloaded yet (`bind weights download`)")
        return WeightsReport(path, chosen_by, "not a file" if path.exists() else "does not exist")
    size = path.stat().st_size
    try:
        record = weights.read_record(path)
    except WeightsError as err:
        return WeightsReport(path, chosen_by, str(err), present=True, size_bytes=size, ok=False)
    if not verify:
        return _size_check(path, chosen_by, size, record, weights.reference(path, config))
    found = weights.verify(path, config=config, progress=progress)
    if not found.checked:
        detail = "hashed, but there is no record, BIND_WEIGHTS_SHA256 or published SHA-256 to compare it with"
    else:
        detail = "; ".join(found.problems) or f"SHA-256 matches {weights.against(found.record, found.expected_by)}"
    return WeightsReport(
        path, chosen_by, detail, present=True, size_bytes=size, check="sha256",
        ok=not found.problems if found.checked else None, sha256=found.sha256,
    )


def _size_check(
    path: Path, chosen_by: str, size: int, record: dict | None, reference: tuple[str, str] | None
) -> WeightsReport:
    """The check that costs nothing: the file's size against the record made at download, and
    the recorded hash against the `reference` one (`weights.reference`) where there is one."""
    if record is None:
        return WeightsReport(
            path, chosen_by, "no record beside it to compare with; --verify hashes it",
            present=True, size_bytes=size, check="size",
        )
    recorded = record.get("sha256")
    expected, by = reference or (None, None)
    problems = []
    if record.get("size") != size:
        problems.append(f"size is {size} bytes, the record says {record.get('size')}")
    if expected is not None and recorded != expected:
        problems.append(f"the recorded SHA-256 is {recorded}, {by} says {expected}")
    detail = "; ".join(problems) or (
        f"size matches {weights.against(record, by)}; SHA-256 not recomputed (--verify does)"
    )
    return WeightsReport(
        path, chosen_by, detail, present=True, size_bytes=size, check="size", ok=not problems,
        sha256=recorded,
    )


def folder(path: Path) -> FolderReport:
    """A folder and the bytes of the files under it (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while walking
                pass
    return FolderReport(path, path.is_dir(), total)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value
