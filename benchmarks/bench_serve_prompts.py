"""Many prompts through a warm `bind serve` vs in-process: `bind eval` over a class-folder
dataset of `--classes` classes (ImageNet's 1000 by default) of one small image each, so the command
is mostly prompts (classes x CLIP's 80 templates, `--templates paper`: 80,000 for 1000 classes), cached as in the
issue's `--preset imagenet-val` run. Prints the ratio (through the server / `--no-server`)
with the CPU named; the target is <= 1.1x. The client looks the prompts up in this machine's
cache before sending (the server's cache, here the same file): a second line measures a client
whose own cache is empty (a server on another machine, or another BIND_DATA_DIR), so that
every prompt makes the round trip and the server's cache answers it.

The small test model (tests/fixtures) stands in for imagebind_huge: on cache hits no tower
runs, so what is measured is the requests, the cache and the command around them.

Run: .venv/bin/python benchmarks/bench_serve_prompts.py [--classes 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cli import _seconds
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "imagebind-reference"


def embed_requests(sock: str) -> int:
    """The `/v1/embed` requests the server has answered so far."""
    from bindcli.embed.remote import Address

    conn = Address(unix=sock).connection(30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(int(float(n)) for n in re.findall(r'^bind_requests_total\{route="/v1/embed",[^}]*\} (\S+)$', text, re.M))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bind = [sys.executable, "-m", "bindcli"]
    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp_name:
        tmp = Path(tmp_name)
        dataset = tmp / "classes"
        for n in range(args.classes):  # a class is a folder with a file: one small image each
            (dataset / f"class {n:04}").mkdir(parents=True)
            shutil.copy(FIXTURES / "media" / "synthetic_gray_0.jpg", dataset / f"class {n:04}" / "gray.jpg")
        env = {"BIND_MODEL_CONFIG": str(FIXTURES / "public_config.json"), "BIND_WEIGHTS": str(FIXTURES / "public.pth"),
               "BIND_PRECISION": "fp32", "BIND_DEVICE": "cpu", "BIND_DATA_DIR": str(tmp / "data"),
               "PYTHONPATH": str(ROOT)}
        sock = str(tmp / "s.sock")
        evaluate = [*bind, "eval", str(dataset), "--templates", "paper", "-f", "json"]
        err = (tmp / "server.err").open("w")
        server = subprocess.Popen([*bind, "serve", "--socket", sock], stderr=err, env=os.environ | env)
        deadline = time.monotonic() + 300
        while "serving" not in (tmp / "server.err").read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(tmp / 'server.err').read_text()}")
            time.sleep(0.2)
        try:
            _seconds([*evaluate, "--server", sock], env)  # fills the cache both ways share
            served, local, sent = [], [], []
            before = embed_requests(sock)
            for _ in range(args.repeats):
                served.append(_seconds([*evaluate, "--server", sock], env))
                local.append(_seconds([*evaluate, "--no-server"], env))
            requests = (embed_requests(sock) - before) // args.repeats
            cold = env | {"BIND_DATA_DIR": str(tmp / "client-data")}  # the client's cache: empty, stays so
            before = embed_requests(sock)
            for _ in range(args.repeats):
                sent.append(_seconds([*evaluate, "--server", sock], cold))
            sent_requests = (embed_requests(sock) - before) // args.repeats
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)

    med = statistics.median
    print(f"machine: {describe()}; the small test model, cached prompts")
    print(f"bind eval, {args.classes} classes x 80 templates, repeats {args.repeats}: "
          f"through the server {med(served):.2f} s, --no-server {med(local):.2f} s, "
          f"ratio {med(served) / med(local):.2f} (target <= 1.1); {requests} requests a run")
    print(f"a client with an empty cache of its own, every prompt answered by the server's cache: "
          f"{med(sent):.2f} s, ratio {med(sent) / med(local):.2f}; {sent_requests} requests a run")


if __name__ == "__main__":
    main()
