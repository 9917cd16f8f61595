"""What a warm `bind serve` saves: the issue's target table, every figure a ratio (or a
difference) against a baseline measured in the same run, on imagebind_huge with random
weights (vision, audio and text towers), CPU.

1. `bind compare img wav --text t`: through a warm server vs in-process (`--no-server`).
2. What that command spends beyond the server's encode time (the server's
   `bind_encode_seconds` sum over the request): client start, transfer, decode.
3. 8 concurrent clients sending one image each, `--rounds` times: images/s vs embedding the
   same images offline in one `Embedder.embed` call (batch 8), in this process.
4. `bind embed --text x` through the server vs `bind --help` (client start-up).
5. The idle server's RSS (no tower loaded) vs a bare `python -c "import torch"`.

Run: .venv/bin/python benchmarks/bench_serve.py [--repeats 3] [--rounds 2] [--precision auto] [--avx2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_cli import _seconds
from machine import describe, held_to, rerun_avx2_only

ROOT = Path(__file__).resolve().parent.parent
TOWERS = ["vision", "audio", "text"]


def write_inputs(folder: Path, images: int) -> tuple[list[Path], Path]:
    """Distinct random photos (640x480 JPEG) and one 10 s WAV."""
    import wave

    from PIL import Image

    rng = np.random.default_rng(0)
    photos = []
    for i in range(images):
        photos.append(folder / f"photo_{i:03}.jpg")
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(photos[-1], quality=90)
    wav = folder / "sound.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((rng.standard_normal(160000) * 3000).astype("<i2").tobytes())
    return photos, wav


def write_checkpoint(path: Path) -> None:
    import torch

    from bindcli.model.factory import create_model

    torch.manual_seed(0)
    torch.save(create_model("imagebind_huge", TOWERS, dtype="bf16").state_dict(), path)


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))


def encode_seconds(sock: str) -> float:
    from bindcli.embed.remote import Address

    conn = Address(unix=sock).connection(30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return float(re.search(r"^bind_encode_seconds_sum (\S+)$", text, re.M).group(1))


def post_image(sock: str, path: Path) -> None:
    from bindcli.embed.remote import Address, Client

    client = Client(Address(unix=sock))
    status, body = client.request("POST", "/v1/embed", {"inputs": [{"path": str(path)}], "cache": False})
    client.close()
    if status != 200 or "error" in body["results"][0]:
        raise SystemExit(f"server failed: {body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="images per concurrent client")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--avx2", action="store_true", help="hold torch's kernels to AVX2 (an AVX2-only CPU)")
    args = parser.parse_args()
    if args.avx2:
        rerun_avx2_only()  # the variables reach the server and the commands through the environment
    bind = [sys.executable, "-m", "bindcli"]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        photos, wav = write_inputs(tmp, 8 * args.rounds)
        weights = tmp / "huge_random.pth"
        write_checkpoint(weights)
        env = {**os.environ, "BIND_WEIGHTS": str(weights), "BIND_MODEL_CONFIG": "imagebind_huge",
               "BIND_DEVICE": "cpu", "BIND_PRECISION": args.precision, "BIND_DATA_DIR": str(tmp / "data"),
               "PYTHONPATH": str(ROOT)}
        sock = str(tmp / "s.sock")
        compare = [*bind, "compare", str(photos[0]), str(wav), "--text", "a dog", "-f", "json", "--no-cache"]

        torch_proc = subprocess.Popen([sys.executable, "-c", "import torch, sys; sys.stdin.read()"],
                                      stdin=subprocess.PIPE, env=env)
        err = (tmp / "server.err").open("w")
        server = subprocess.Popen([*bind, "serve", "--socket", sock, "--batch-size", "8"], stderr=err, env=env)
        deadline = time.monotonic() + 300
        while "serving" not in (tmp / "server.err").read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(tmp / 'server.err').read_text()}")
            time.sleep(0.2)
        for _ in range(100):  # the bare interpreter has imported torch once its RSS stops growing
            before = rss_kib(torch_proc.pid)
            time.sleep(0.1)
            if rss_kib(torch_proc.pid) == before and before > 100_000:
                break
        idle_rss, torch_rss = rss_kib(server.pid), rss_kib(torch_proc.pid)
        torch_proc.communicate(b"")
        try:
            _seconds([*compare, "--server", sock], env)  # warm: loads the three towers
            served, overhead, local = [], [], []
            for _ in range(args.repeats):
                before = encode_seconds(sock)
                served.append(_seconds([*compare, "--server", sock], env))
                overhead.append(served[-1] - (encode_seconds(sock) - before))
                local.append(_seconds([*compare, "--no-server"], env))
            help_s = [_seconds([*bind, "--help"], env) for _ in range(args.repeats)]
            _seconds([*bind, "embed", "--text", "x", "--server", sock], env)  # cached from now on
            text_s = [_seconds([*bind, "embed", "--text", "x", "--server", sock], env) for _ in range(args.repeats)]

            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda p: post_image(sock, p), photos))
            served_rate = len(photos) / (time.perf_counter() - start)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)

        from bindcli.embed.embedder import open_embedder

        with open_embedder("imagebind_huge", weights, device="cpu", precision=args.precision, cache=False) as emb:
            emb.encoder.prepare(frozenset({"vision"}))
            start = time.perf_counter()
            emb.embed(photos)
            offline_rate = len(photos) / (time.perf_counter() - start)
            placement = emb.placement.describe()

    med = statistics.median
    print(f"machine: {describe()}{held_to()}; imagebind_huge random weights on {placement}")
    print(f"repeats {args.repeats}, {len(photos)} images for the throughput figure")
    print("| figure | measured | baseline | ratio / difference | target | met |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("compare img wav --text t, warm server vs in-process", f"{med(served):.2f} s", f"{med(local):.2f} s",
         med(served) / med(local), "<= 0.2x (bf16 native) / 0.35x (AVX2 fp32)", med(served) / med(local) <= 0.35),
        ("time beyond the server's encode time (`bind --help` alone: the baseline)", f"{med(overhead):.3f} s",
         f"{med(help_s):.3f} s", med(overhead), "<= 0.3 s", med(overhead) <= 0.3),
        ("8 concurrent clients, one image each: images/s", f"{served_rate:.2f}/s", f"{offline_rate:.2f}/s offline",
         served_rate / offline_rate, ">= 0.9x", served_rate / offline_rate >= 0.9),
        ("`bind embed --text x` through the server vs `bind --help`", f"{med(text_s):.3f} s", f"{med(help_s):.3f} s",
         med(text_s) - med(help_s), "<= +0.2 s", med(text_s) - med(help_s) <= 0.2),
        ("idle server RSS vs `import torch`", f"{idle_rss / 1024:.0f} MiB", f"{torch_rss / 1024:.0f} MiB",
         idle_rss / torch_rss, "<= 1.2x", idle_rss / torch_rss <= 1.2),
    ]
    for name, mine, base, ratio, target, met in rows:
        print(f"| {name} | {mine} | {base} | {ratio:.2f} | {target} | {'yes' if met else 'NO'} |")
    print(json.dumps({"served_s": served, "local_s": local, "overhead_s": overhead}))


if __name__ == "__main__":
    main()
