#!/usr/bin/env bash
# Builds what a GPU machine without Rust or network needs to check and time the detector on
# CUDA: release `--features cuda` binaries (stripped, xz-compressed: each embeds candle's
# ~45 MB of kernels) and a runner, in one folder that travels with the working tree.
#
#   bash scripts/gpu-bundle.sh [OUT]          # OUT defaults to .device/bundle (gitignored)
#   # then, on the GPU machine, from the repository root:
#   bash .device/bundle/run.sh                # prints the tables; OUT/results/ keeps the logs
#
# Binaries: gpu_check (GPU vs CPU agreement of every op and of a whole detector, RoIAlign GPU
# timing), detector_timing (inference and training step), the CUDA tests of arfpn-roi-align
# and of the facade. Needs scripts/cuda-env.sh's CUDA 13.0 toolchain (installed on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device/bundle}
. scripts/cuda-env.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
rm -rf "$out" && mkdir -p "$out/bin"

# Release test binaries: the `tests/cuda.rs` target of each crate, where cargo put it.
for crate in arfpn-roi-align arfpn; do
  exe=$(cargo test -j 2 --release --features cuda -p "$crate" --test cuda --no-run \
          --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["executable"])')
  cp "$exe" "$out/bin/test-$crate-cuda"
done
cargo build -j 2 --release -p arfpn-examples --features arfpn/cuda \
    --example gpu_check --example detector_timing
for e in gpu_check detector_timing; do cp "$CARGO_TARGET_DIR/release/examples/$e" "$out/bin/"; done
strip "$out"/bin/*
xz -6 -T2 "$out"/bin/*
size=$(du -sm "$out" | cut -f1)
echo "bundle: $out, ${size} MiB"
ls -l "$out/bin"
[ "$size" -le 60 ] || { echo "gpu-bundle.sh: bundle is ${size} MiB, over 60 MiB" >&2; exit 1; }
cp scripts/gpu-run.sh "$out/run.sh"
