"""Reading checkpoints safely and only in part, refusing ones that do not fit, and what
`bind weights info|convert` do with them.

`.pth` files are opened with `torch.load(weights_only=True, mmap=True)`: no pickled code
runs, and tensor data stays on disk until used, so taking two towers out of the 4.8 GB
official file touches only their bytes. `.safetensors` files are read key by key.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from bindcli._util.atomic import atomic_path
from bindcli._util.hashing import sha256_file
from bindcli.errors import CheckpointError, WeightsError
from bindcli.modality import TOWERS
from bindcli.weights import existing, read_record, write_record

STAGES = (
    "modality_preprocessors",
    "modality_trunks",
    "modality_heads",
    "modality_postprocessors",
)
#: how many offending keys a refusal names
SHOWN_KEYS = 5


def tower_of_key(key: str) -> str | None:
    """The modality a state-dict key belongs to (`modality_trunks.audio.…` -> `audio`)."""
    stage, _, rest = key.partition(".")
    return rest.partition(".")[0] or None if stage in STAGES else None


def _open_pth(path: Path) -> Mapping[str, torch.Tensor]:
    mmap = zipfile.is_zipfile(path)  # pre-1.6 (non-zip) checkpoints cannot be mapped
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():
            raise CheckpointError(
                f"{path}: refused to load: the file holds more than tensors (a pickle that "
                "would run code or build objects); only plain state dicts are accepted"
            ) from None
        reason = str(exc).strip().splitlines()[-1]
    except Exception as exc:  # damaged files surface as RuntimeError, EOFError, KeyError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    raise CheckpointError(
        f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {reason}"
    )


def _open_safetensors(path: Path, keep) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys() if keep(k)}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def read_state_dict(
    path: str | Path,
    towers: Iterable[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors for `towers` (all if None), floats cast to `dtype`.

    Keys that belong to no tower are always kept, so that a checkpoint with stray keys is
    refused by `check_state_dict` rather than silently trimmed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    wanted = None if towers is None else set(towers)

    def keep(key: str) -> bool:
        tower = tower_of_key(key)
        return wanted is None or tower is None or tower in wanted

    if path.suffix == ".safetensors":
        state = _open_safetensors(path, keep)
    else:
        loaded = _open_pth(path)
        if not isinstance(loaded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
        ):
            raise CheckpointError(
                f"{path}: not a state dict (expected a flat mapping of names to tensors, "
                f"like imagebind_huge.pth)"
            )
        state = {k: v for k, v in loaded.items() if keep(k)}

    def place(t: torch.Tensor) -> torch.Tensor:
        target = dtype if dtype is not None and t.is_floating_point() else t.dtype
        return t.to(device=device, dtype=target)

    return {k: place(v) for k, v in state.items()}


def tensor_specs(path: str | Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Each tensor's shape and dtype, from the file's headers: no tensor data is read."""
    path = Path(path).expanduser()
    if path.suffix != ".safetensors":  # memory-mapped: reading it touches no tensor data
        return {k: (tuple(v.shape), v.dtype) for k, v in read_state_dict(path).items()}
    from safetensors import SafetensorError, safe_open

    dtypes = {"F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16,
              "F16": torch.float16, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}
            return {k: (tuple(t.get_shape()), dtypes[t.get_dtype()]) for k, t in slices.items()}
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def check_state_dict(
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    found: Mapping[str, torch.Tensor],
    source: str | Path,
) -> None:
    """Refuse, naming the first offending keys, unless keys and shapes match exactly."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mis_shaped = [
        f"{k} {tuple(found[k].shape)} != {tuple(expected[k])}"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k])
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
        if keys:
            more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:SHOWN_KEYS])}{more}")
    if problems:
        raise CheckpointError(
            f"{source}: checkpoint does not match the model config; " + "; ".join(problems)
        )


def convert(src: str | Path, dst: str | Path, dtype: str | None = None) -> Path:
    """Write a safetensors copy of `src` (optionally bf16/fp16) to `dst`, atomically.

    A safetensors file is read without unpickling and memory-maps tensor by tensor; in bf16 it
    is half the size. The copy gets its own record, so `verify` works on it too.
    """
    from safetensors.torch import save_file

    from bindcli.model.factory import resolve_dtype

    try:
        torch_dtype = resolve_dtype(dtype) if dtype else None
    except ValueError as err:
        raise WeightsError(f"{err}.") from None
    src, dst = existing(Path(src).expanduser(), "nothing to convert"), Path(dst).expanduser()
    if dst.suffix != ".safetensors":
        raise WeightsError(f"the converted file {dst} must end in .safetensors.")
    if dst.resolve() == src.resolve():
        raise WeightsError(f"convert would overwrite its source {src}; choose another output path.")
    state = read_state_dict(src, dtype=torch_dtype)
    # safetensors refuses tensors that share memory or are not contiguous
    tensors = {key: value.contiguous() for key, value in state.items()}
    try:
        with atomic_path(dst) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", "converted_from": src.name})
            sha256 = sha256_file(tmp)
        write_record(dst, sha256=sha256, source=f"converted from {src.name}")
    except OSError as err:
        raise WeightsError(f"cannot write {dst}: {err.strerror or err}.") from err
    return dst


@dataclasses.dataclass(frozen=True)
class TowerInfo:
    """One tower's share of a checkpoint."""

    tower: str
    tensors: int
    parameters: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What `bind weights info` shows: towers, counts, dtypes, size and the recorded hash."""

    path: Path
    file_size: int
    dtypes: tuple[str, ...]
    towers: tuple[TowerInfo, ...]
    sha256: str | None

    @property
    def parameters(self) -> int:
        return sum(t.parameters for t in self.towers)


def info(path: str | Path) -> CheckpointInfo:
    """Summarise a checkpoint from its tensor headers (memory-mapped, so cheap even at 4.8 GB)."""
    path = existing(Path(path).expanduser(), "nothing to describe")
    specs = tensor_specs(path)
    towers: dict[str, list[int]] = {}
    for key, (shape, dtype) in specs.items():
        counts = towers.setdefault(tower_of_key(key) or "other", [0, 0, 0])
        counts[0] += 1
        counts[1] += math.prod(shape)
        counts[2] += math.prod(shape) * dtype.itemsize
    record = read_record(path)
    return CheckpointInfo(
        path=path,
        file_size=path.stat().st_size,
        dtypes=tuple(sorted({str(dtype).removeprefix("torch.") for _, dtype in specs.values()})),
        towers=tuple(TowerInfo(name, *towers[name]) for name in sorted(towers, key=_tower_order)),
        sha256=record.get("sha256") if record else None,
    )


def _tower_order(tower: str) -> tuple[int, str]:
    return (TOWERS.index(tower) if tower in TOWERS else len(TOWERS), tower)
