#!/usr/bin/env bash
# CI step: build arfpn-roi-align with `--features cuda` (CUDA 13.0 from PyPI, stub libcuda) and
# run its tests. Without a GPU the CUDA tests print why they skip; the CPU tests run as usual.
# A clean build takes ~15-20 min on 2 cores (candle-kernels' nvcc step dominates).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cuda-env.sh
nvcc --version | tail -2
cargo test -j 2 -p arfpn-roi-align --features cuda "$@"
