#!/usr/bin/env bash
# The runner of the bundle scripts/gpu-bundle.sh makes (copied there as run.sh). On a GPU
# machine without Rust: finds the CUDA 13 libraries, unpacks the binaries, runs the CUDA
# tests, the GPU-vs-CPU agreement check and the GPU timings, and prints the tables.
#
#   bash .device/bundle/run.sh [OUT]   # OUT (default: results/ beside this script) keeps the logs
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/results}
mkdir -p "$out"
tmp=$(mktemp -d)
echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
# The binaries need libcuda.so.1 (the driver's) and CUDA 13's cublas, cublasLt, curand, nvrtc
# and cudart: look where toolkits and pip wheels put them.
libdirs=""
for lib in libcuda.so.1 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
  f=$(find ${CUDA_LIB_SEARCH:-/usr/lib /usr/lib64 /usr/local /opt /root /home} -name "$lib" \
        -not -path '*/stubs/*' 2>/dev/null | head -1)
  if [ -n "$f" ]; then libdirs="$libdirs:$(dirname "$f")"; else echo "missing: $lib"; fi
done
export LD_LIBRARY_PATH="${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
for f in "$here"/bin/*.xz; do
  b=$(basename "$f" .xz)
  if command -v xz >/dev/null; then xz -dc "$f" > "$tmp/$b"
  else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$f" > "$tmp/$b"; fi
  chmod +x "$tmp/$b"
done
status=0
echo "== CUDA tests"
for t in "$tmp"/test-*; do
  echo "-- $(basename "$t")"
  "$t" --test-threads 1 2>&1 | tee "$out/$(basename "$t").log" | grep -E "^test |test result|SKIP" || status=1
done
echo "== GPU vs CPU agreement"
"$tmp/gpu_check" --device cuda:0 2>&1 | tee "$out/gpu_check.md" || status=1
echo "== detector timing on the GPU (ms, best of 3 after a warm-up)"
echo "| preset | size | inference | training step | peak RSS (MB, host) |"
echo "|---|---|---|---|---|"
for preset in fpn-r50 cs-arfpn-r50 fpn-r18 cs-arfpn-r18; do
  for size in "480 640" "1418 1420"; do
    set -- $size
    j=$("$tmp/detector_timing" --device cuda:0 --preset "$preset" --height "$1" --width "$2" \
          --runs 3 --json 2>>"$out/detector_timing.err") || { status=1; j='{}'; }
    echo "$j" >> "$out/detector_timing.jsonl"
    python3 -c 'import json,sys; j=json.loads(sys.argv[1] or "{}"); f=lambda k: "%.1f" % j[k] if k in j else "failed"
print("| %s | %sx%s | %s | %s | %s |" % (sys.argv[2], sys.argv[3], sys.argv[4], f("infer_ms"), f("train_step_ms"), f("peak_rss_mb")))' \
      "$j" "$preset" "$1" "$2"
  done
done
rm -rf "$tmp"
exit $status
