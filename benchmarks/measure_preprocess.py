"""How far upstream's own preprocessing moves between CPU code paths, and bind beside it.

Runs upstream ImageBind's `imagebind/data.py` (from `.bench/site`, see `setup_baseline.sh`):
`load_and_transform_audio_data`, `load_and_transform_vision_data` and
`load_and_transform_video_data`, on the fixture media, and bind's `bindcli.media.load` on the
same files in the same process, once per configuration, each in a fresh process because the
libraries read these variables at start-up:

- ATEN_CPU_CAPABILITY: which of ATen's vectorised kernels torch dispatches to (avx512, avx2,
  default = no explicit vectorisation);
- MKL_ENABLE_INSTRUCTIONS: the widest instruction set MKL's GEMM and FFT may use;
- ONEDNN_MAX_CPU_ISA: the same for oneDNN (convolutions: the resampler's conv1d);
- the thread count (torch.set_num_threads: OpenMP and MKL), which changes how sums are split.

An AVX2-only machine (AMD EPYC) picks avx2 / AVX2 / AVX2 by itself; the fixture was computed
on an Intel CPU with torch 2.9.1. Each configuration is compared with the fixture
(`preprocess.npz`), with the others (the worst pair) and with bind's output; the small fixture
model's outputs are checked against `end_to_end.npz` and `public_model_io.npz` as well.

Substituted, because the pinned stack no longer provides them (nothing CPU-dependent):
- file reading of audio: torchaudio 2.11's `torchaudio.load` needs torchcodec, so it is
  replaced by soundfile returning the same float32 (channels, samples) tensor in [-1, 1];
  resampling, fbank (FFT, mel matmul) and normalisation are upstream's torchaudio calls;
- video decoder: the fixture was decoded with PyAV, so `EncodedVideo.from_path` is called with
  decoder="pyav" instead of "decord" (PyPI's pytorchvideo 0.1.5 also lacks the `sample_rate`
  keyword upstream passes, which only decord's audio reader uses);
- `torchvision.transforms.functional_tensor` (renamed `_functional_tensor` in torchvision 0.17)
  is aliased so that pytorchvideo's package imports; data.py uses none of its augmentations.

Run: .venv/bin/python benchmarks/measure_preprocess.py [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from machine import describe

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "imagebind-reference"
MEDIA = FIXTURES / "media"
VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SSE = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}
THRESHOLDS = (1e-5, 1e-4)
MODALITIES = ("audio", "video", "vision")
#: the embedding checks of the tests (test_model_parity.py, test_media_load.py)
EMBEDDING_ATOL, EMBEDDING_RTOL = 1e-5, 1e-4


def configurations(threads: int) -> list[tuple[str, dict[str, str], int]]:
    """(name, environment, threads): native first, then one library at a time, then whole CPUs."""
    return [
        ("native", {}, threads),
        ("native", {}, 1),
        ("ATen avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, threads),
        ("MKL AVX2", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, threads),
        ("oneDNN AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, threads),
        ("AVX2 CPU (all three)", AVX2, threads),
        ("AVX2 CPU (all three)", AVX2, 1),
        ("SSE4.2 CPU (default/SSE4_2/SSE41)", SSE, threads),
        ("SSE4.2 CPU (default/SSE4_2/SSE41)", SSE, 1),
    ]


def upstream_data():
    """`imagebind.data` from the benchmark site, with the substitutions the docstring lists."""
    import soundfile
    import torch
    import torchaudio
    import torchvision.transforms._functional_tensor as functional_tensor

    from upstream import upstream_module

    upstream_module()  # puts the site on sys.path; registers `imagebind` without its __init__
    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    from imagebind import data

    def read(path: str) -> tuple[torch.Tensor, int]:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(samples.T)), rate

    encoded_video = data.EncodedVideo

    class PyAVVideo:
        @staticmethod
        def from_path(path: str, decoder: str, decode_audio: bool, **_decord_only):
            return encoded_video.from_path(path, decode_audio=decode_audio, decoder="pyav")

    torchaudio.load = read
    data.EncodedVideo = PyAVVideo
    return data


def child(out: Path, threads: int) -> None:
    """In a fresh process: upstream's and bind's tensors for every fixture file, into `out`."""
    import torch

    torch.set_num_threads(threads)
    data = upstream_data()
    from bindcli.media import load
    from bindcli.modality import Kind

    upstream_loaders = {
        "audio": data.load_and_transform_audio_data,
        "video": data.load_and_transform_video_data,
        "vision": data.load_and_transform_vision_data,
    }
    kinds = {"audio": Kind.AUDIO, "video": Kind.VIDEO, "vision": Kind.IMAGE}
    arrays = {}
    for key in sorted(np.load(FIXTURES / "preprocess.npz").files):
        modality, name = key.split("/", 1)
        if modality not in kinds:
            continue
        with torch.no_grad():
            arrays[f"upstream/{key}"] = upstream_loaders[modality]([str(MEDIA / name)], "cpu")[0].numpy()
            arrays[f"bind/{key}"] = load(MEDIA / name, kinds[modality]).numpy()
    arrays.update(model_outputs(arrays))
    meta = {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
        "amx_tile": torch.cpu._is_amx_tile_supported(),
        "mkldnn_bf16": torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    }
    np.savez(out, meta=np.array(json.dumps(meta)), **arrays)


def model_outputs(arrays: dict) -> dict:
    """The small fixture model's outputs: bind's model on bind's tensors (as end_to_end.npz),
    and upstream's model and bind's on public_model_io.npz's inputs."""
    import torch

    from bindcli import load_model
    from upstream import upstream_module

    config = json.loads((FIXTURES / "public_config.json").read_text())
    ours = load_model(config=FIXTURES / "public_config.json", weights=FIXTURES / "public.pth")
    theirs = upstream_module().ImageBindModel(**config).eval()
    theirs.load_state_dict(torch.load(FIXTURES / "public.pth", weights_only=True), strict=True)
    towers = {"audio": "audio", "video": "vision", "vision": "vision"}
    out = {}
    with torch.inference_mode(), np.load(FIXTURES / "public_model_io.npz") as io:
        for key in [k for k in arrays if k.startswith("bind/")]:
            tower = towers[key.split("/")[1]]
            batch = torch.from_numpy(arrays[key])[None]
            out[key.replace("bind/", "embedding/", 1)] = ours({tower: batch})[tower][0].numpy()
        for case in [k.removeprefix("in_") for k in io.files if k.startswith("in_")]:
            tower = "vision" if case == "video" else case
            x = torch.from_numpy(io[f"in_{case}"])
            out[f"model_upstream/{case}"] = theirs({tower: x})[tower].numpy()
            out[f"model_bind/{case}"] = ours({tower: x})[tower].numpy()
    return out


def run_child(folder: Path, index: int, environment: dict[str, str], threads: int) -> dict:
    """One configuration's arrays (by key) and its `meta`, from a fresh process."""
    out = folder / f"config{index}.npz"
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(environment)
    argv = [sys.executable, __file__, "--child", str(out), "--threads", str(threads)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"configuration {environment} x {threads} failed:\n{done.stderr}")
    with np.load(out) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def differences(a: dict, b: dict, modality: str, prefix_a: str, prefix_b: str = "") -> dict:
    """|a - b| for each of the modality's files (by name): a's arrays under `prefix_a`, b's
    under `prefix_b` (the fixture has none)."""
    keys = [k.removeprefix(prefix_b) for k in b if k.startswith(f"{prefix_b}{modality}/")]
    return {
        key.split("/", 1)[1]: np.abs(a[prefix_a + key].astype(np.float64) - b[prefix_b + key])
        for key in keys
    }


def cell(diffs: dict) -> str:
    """Max over all files, then how many values exceed each of THRESHOLDS."""
    values = np.concatenate([d.ravel() for d in diffs.values()])
    counts = " / ".join(str(int((values > t).sum())) for t in THRESHOLDS)
    return f"{values.max():.1e} ({counts})" if values.max() else "0"


def embedding_cell(arrays: dict, prefix: str, expected: dict, expected_prefix: str = "") -> str:
    """Max |diff| of model outputs, and the largest share of the tests' allowance
    (atol 1e-5 + rtol 1e-4 x |expected|) that any value uses: under 100% passes."""
    pairs = [
        (np.abs(arrays[k] - expected[expected_prefix + k.removeprefix(prefix)]),
         expected[expected_prefix + k.removeprefix(prefix)])
        for k in arrays if k.startswith(prefix)
    ]
    worst = max(float(d.max()) for d, _ in pairs)
    used = max(float((d / (EMBEDDING_ATOL + EMBEDDING_RTOL * np.abs(e))).max()) for d, e in pairs)
    return f"{worst:.1e} ({used:.0%})"


def worst_file(diffs: dict) -> str:
    """The file with the largest difference: its max and the share of its values above each
    of THRESHOLDS (what a per-file test sees)."""
    name = max(diffs, key=lambda n: diffs[n].max())
    d = diffs[name]
    shares = ", ".join(f"{(d > t).mean():.3%} > {t:.0e}" for t in THRESHOLDS)
    return f"{d.max():.1e} in {name} ({shares} of its {d.size:,} values)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads)
        return
    import torch

    print(f"machine: {describe()}")
    print(f"torch {torch.__version__}; fixture: Intel CPU, torch 2.9.1, torchaudio 2.9.1")
    fixture = dict(np.load(FIXTURES / "preprocess.npz"))
    embeddings = dict(np.load(FIXTURES / "end_to_end.npz"))
    model_io = dict(np.load(FIXTURES / "public_model_io.npz"))
    runs = []
    with tempfile.TemporaryDirectory(prefix="bind-measure-") as folder:
        for index, (name, environment, threads) in enumerate(configurations(args.threads)):
            runs.append((f"{name}, {threads} thr", run_child(Path(folder), index, environment, threads)))
    sizes = ", ".join(
        f"{m} {sum(a.size for a in differences(runs[0][1], fixture, m, 'upstream/').values()):,}"
        for m in MODALITIES
    )
    print(f"\nmax |difference| (values > {' / > '.join(f'{t:.0e}' for t in THRESHOLDS)}); {sizes} values;")
    print("model outputs: max |difference| (largest share of atol 1e-5 + rtol 1e-4 used)\n")
    header = ["configuration", "ATen", "AVX512-BF16 / AMX / oneDNN bf16 seen"]
    header += [f"upstream vs fixture: {m}" for m in MODALITIES]
    header += [f"bind vs upstream: {m}" for m in MODALITIES]
    header += ["bind end to end vs end_to_end.npz", "upstream model vs public_model_io.npz"]
    header += ["bind model vs public_model_io.npz"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, arrays in runs:
        meta = arrays["meta"]
        seen = " / ".join(str(meta[k]) for k in ("avx512_bf16", "amx_tile", "mkldnn_bf16"))
        row = [name, meta["capability"], seen]
        row += [cell(differences(arrays, fixture, m, "upstream/")) for m in MODALITIES]
        row += [cell(differences(arrays, arrays, m, "bind/", "upstream/")) for m in MODALITIES]
        row.append(embedding_cell(arrays, "embedding/", embeddings))
        row.append(embedding_cell(arrays, "model_upstream/", model_io, "out_"))
        row.append(embedding_cell(arrays, "model_bind/", model_io, "out_"))
        print("| " + " | ".join(row) + " |")
    print("\nupstream against itself, worst pair of configurations:")
    for modality in MODALITIES:
        pairs = [
            (differences(a, b, modality, "upstream/", "upstream/"), f"{na} vs {nb}")
            for (na, a), (nb, b) in itertools.combinations(runs, 2)
        ]
        diffs, names = max(pairs, key=lambda p: max(d.max() for d in p[0].values()))
        print(f"  {modality}: {worst_file(diffs)}; {names}")
    print("\nupstream against the fixture, worst configuration:")
    for modality in MODALITIES:
        diffs, name = max(
            ((differences(a, fixture, modality, "upstream/"), n) for n, a in runs),
            key=lambda p: max(d.max() for d in p[0].values()),
        )
        print(f"  {modality}: {worst_file(diffs)}; {name}")


if __name__ == "__main__":
    main()
