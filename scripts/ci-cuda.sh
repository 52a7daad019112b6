#!/usr/bin/env bash
# CI step: build arfpn-roi-align and the arfpn facade with `--features cuda` (CUDA 13.0 from PyPI, stub libcuda) and
# run its tests. Without a GPU the CUDA tests print why they skip; the CPU tests run as usual.
# A clean run took 24 min on the shared 2-core machine (pip install + candle-kernels' nvcc
# step dominate; ~14 min on a quiet machine per the candle notes); incremental runs ~30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cuda-env.sh
nvcc --version | tail -2
cargo clippy -j 2 -p arfpn-roi-align --features cuda --all-targets -- -D warnings
cargo test -j 2 -p arfpn-roi-align --features cuda "$@"
# The facade with the whole detector: builds, passes clippy, and its GPU test (skipping
# without a device) agrees with the CPU where a device is present.
cargo clippy -j 2 -p arfpn --features cuda --all-targets -- -D warnings
cargo test -j 2 -p arfpn --features cuda --test cuda --lib
# The GPU agreement check builds with the feature and, without a device (the stub driver),
# says so and exits 3.
cargo build -j 2 -p arfpn-examples --features arfpn/cuda --example gpu_check
rc=0; "${CARGO_TARGET_DIR:-target}"/debug/examples/gpu_check || rc=$?
[ "$rc" -eq 3 ] || { echo "gpu_check without a device exited $rc, expected 3" >&2; exit 1; }
# Our kernels' PTX must also assemble for the target card (nvcc --ptx only type-checks).
for f in "${CARGO_TARGET_DIR:-target}"/debug/build/arfpn-roi-align-*/out/*.ptx; do
  ptxas -arch="sm_${CUDA_COMPUTE_CAP}" -o "$(mktemp)" "$f"
  echo "ptxas sm_${CUDA_COMPUTE_CAP}: ok $f"
done
