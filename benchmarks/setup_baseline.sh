#!/usr/bin/env bash
# Install upstream ImageBind's code (the speed baseline, and the preprocessing that
# measure_preprocess.py runs) into .bench/site.
#
# Benchmark-only: nothing here is a dependency of bind. The packages go into a target
# directory that only the benchmark processes put on sys.path, and they share the torch of
# bind's own virtual environment so both models run on the same kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
SITE=.bench/site
rm -rf "$SITE"
# --no-deps: upstream's declared requirements (decord, fvcore, ...) are not needed: the model
# benchmarks never import its data loaders, and measure_preprocess.py runs them with the
# torchvision, PyAV and soundfile of bind's own environment, plus pytorchvideo (pure Python;
# PyPI's last release, for its clip sampler, short-side scale, temporal subsample and PyAV
# video reader).
"$PYTHON" -m pip install --quiet --target "$SITE" --no-deps \
    imagebind-unofficial==0.1.1 timm==1.0.31 einops==0.8.2 iopath==0.1.10 \
    portalocker==4.4.2 tqdm==4.70.1 ftfy==6.3.1 wcwidth==0.9.4 regex==2026.11.19 \
    pyyaml==6.0.4 "setuptools<81" pytorchvideo==0.1.5
echo "upstream baseline installed in $SITE"
