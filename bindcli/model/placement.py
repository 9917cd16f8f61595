"""Where the encoders run and at what precision: `--device` and `--precision`, decided once.

The precision names are declared here and nowhere else (the CLI option, the embedding cache
key and the model factory all take them from `Precision`). torch is imported inside the
functions, so the CLI can name the choices without paying for torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from typing import TYPE_CHECKING

from bindcli.errors import DeviceError

if TYPE_CHECKING:  # pragma: no cover
    import torch


class Precision(str, enum.Enum):
    """What `--precision` accepts; `auto` is decided by `choose_precision`. `int8` is opt-in
    (auto never picks it): fp32 with the transformer blocks' linear layers in int8, on CPU."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"

    @property
    def dtype(self) -> "torch.dtype":
        """The torch dtype the encoders hold their weights and activations in."""
        import torch

        if self is Precision.AUTO:
            raise ValueError("precision 'auto' has no dtype until it is chosen")
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        return dtypes.get(self.value, torch.float32)  # int8: activations stay fp32

    @property
    def quantized(self) -> bool:
        """The linear layers run in int8 (`bindcli.model.quantize`), quantised at load time."""
        return self is Precision.INT8

    @classmethod
    def explicit(cls) -> tuple["Precision", ...]:
        """The precisions a model can run at (all but `auto`)."""
        return tuple(p for p in cls if p is not cls.AUTO)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the encoders run and at what precision; `reason` says why `auto` chose so."""

    device: "torch.device"
    precision: str
    reason: str = ""
    warning: str | None = None

    @property
    def dtype(self) -> "torch.dtype":
        return Precision(self.precision).dtype

    @property
    def int8(self) -> bool:
        return Precision(self.precision).quantized

    def describe(self) -> str:
        """e.g. `cpu, bf16 (the CPU has AMX)`: the line -q silences."""
        return f"{self.device}, {self.precision}" + (f" ({self.reason})" if self.reason else "")


def choose_device(spec: str = "auto") -> "torch.device":
    """`auto` (CUDA, then MPS, then CPU), `cpu`, `cuda`, `cuda:N` or `mps`; refuses what
    this machine does not have."""
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: Apple's MPS backend is not available here")
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"--device {spec}: write cuda or cuda:N (N a GPU number)")
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support"
            raise DeviceError(
                f"--device {spec}: no CUDA GPU is visible (this torch {torch.__version__} has "
                f"{build}); use --device cpu"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise DeviceError(f"--device {spec}: only {count} GPU(s) here (cuda:0..cuda:{count - 1})")
        return torch.device(spec)
    raise DeviceError(f"--device {spec}: use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def cpu_bf16_units() -> list[str]:
    """The CPU's native bf16 matrix units (AMX, AVX512-BF16): where bf16 is fast, not emulated."""
    import torch

    units = []
    with contextlib.suppress(AttributeError, RuntimeError):
        if torch.cpu._is_amx_tile_supported():
            units.append("AMX")
        if torch.cpu._is_avx512_bf16_supported():
            units.append("AVX512-BF16")
    return units


def choose_precision(spec: str, device: "torch.device") -> Placement:
    """`auto` picks the fastest precision the hardware runs natively; an explicit choice is
    kept, with a warning where it will be slow."""
    spec = spec.strip().lower()
    if spec == Precision.AUTO.value:
        return Placement(device, *_auto_precision(device))
    if spec not in {p.value for p in Precision.explicit()}:
        names = ", ".join(p.value for p in Precision)
        raise DeviceError(f"--precision {spec}: use one of {names}")
    if spec == Precision.INT8.value:
        _check_int8(device)
        units = cpu_bf16_units()
        warning = None
        if units:  # measured on AMX: images 4.8x upstream fp32 in bf16, 4.1x in int8
            warning = f"this CPU has {'/'.join(units)}: bf16 is faster than int8 and closer to fp32"
        return Placement(device, spec, warning=warning)
    warning = None
    if device.type == "cpu" and spec == "fp16":
        warning = "fp16 on a CPU is emulated and slow; bf16 or fp32 is faster"
    elif device.type == "cpu" and spec == "bf16" and not cpu_bf16_units():
        warning = "this CPU has no native bf16 (AMX/AVX512-BF16), so bf16 will be slow"
    return Placement(device, spec, warning=warning)


def _check_int8(device: "torch.device") -> None:
    """Refuses int8 where its kernels cannot run (they are oneDNN's, CPU only)."""
    from bindcli.model.quantize import unavailable_reason

    if device.type != "cpu":
        raise DeviceError(
            f"--precision int8 runs on the CPU only, not {device}; use --device cpu, or "
            "bf16/fp16 on the GPU"
        )
    reason = unavailable_reason()
    if reason:
        raise DeviceError(f"--precision int8: {reason}; use fp32")


def _auto_precision(device: "torch.device") -> tuple[str, str]:
    import torch

    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "the GPU supports bf16"
        return "fp16", "the GPU has no fast bf16"
    if device.type == "mps":
        return "fp16", "MPS runs fp16 natively"
    units = cpu_bf16_units()
    if units:
        return "bf16", f"the CPU has {'/'.join(units)}; --precision fp32 for full precision"
    return "fp32", "the CPU has no native bf16"


def place(device: str = "auto", precision: str = "auto") -> Placement:
    """Device and precision from the `--device` and `--precision` values; int8 with device
    `auto` runs on the CPU (the only device it runs on)."""
    if precision.strip().lower() == Precision.INT8.value and device.strip().lower() == "auto":
        device = "cpu"
    return choose_precision(precision, choose_device(device))
