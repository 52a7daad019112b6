#!/usr/bin/env bash
# One experiment end to end: train (resuming when RUN_DIR holds checkpoints), evaluate the
# best (else the last) checkpoint on a split, and write results/NAME/{metrics.json,
# per_class.csv, pr_curves.png, loss.png, map.png}.
#
#   experiments/run.sh NAME DATA_DIR [train options...]
#   e.g. experiments/run.sh bccd ../shared/data/bccd --preset cpu-small --steps 12000 --crop 384x384
#
# Environment: RUNS (default runs/) holds the run directories (not in git); SPLIT (test) is
# the split scored; SEED (0); ARFPN_BIN (below); ARFPN_TRAIN / ARFPN_EVALUATE: other train and
# evaluate commands, e.g. "target/release/examples/custom_attention train" for a program that
# registers its own modules (experiments/ablate.sh's `custom` arm).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 data=$2; shift 2
runs=${RUNS:-runs} split=${SPLIT:-test} seed=${SEED:-0}
run="$runs/$name" out="results/$name"
mkdir -p "$out"
# ARFPN_BIN: a folder with prebuilt train/evaluate binaries (e.g. to keep an ablation grid on
# one build while the source changes); otherwise they are built here.
if [ -n "${ARFPN_BIN:-}" ]; then
  bin=$ARFPN_BIN
else
  cargo build -q --release --example train --example evaluate
  bin=${CARGO_TARGET_DIR:-target}/release/examples
fi
cmd="experiments/run.sh $name $data $*"
start=$(date +%s)
resume=()
[ -d "$run/checkpoints" ] && ls "$run"/checkpoints/*.safetensors >/dev/null 2>&1 && resume=(--resume)
read -r -a train_cmd <<< "${ARFPN_TRAIN:-$bin/train}"
read -r -a evaluate_cmd <<< "${ARFPN_EVALUATE:-$bin/evaluate}"
"${train_cmd[@]}" --data "$data" --out "$run" --seed "$seed" "${resume[@]}" "$@"
wall=$(( $(date +%s) - start ))
# Wall time over all sessions of this run, kept beside it.
total=$(( $(cat "$run/wall_s" 2>/dev/null || echo 0) + wall ))
echo "$total" > "$run/wall_s"
ckpt="$run/best.safetensors"
[ -f "$ckpt" ] || ckpt=$(ls -t "$run"/checkpoints/*.safetensors | head -1)
"${evaluate_cmd[@]}" --data "$data" --split "$split" --checkpoint "$ckpt" --json \
    --csv "$out/per_class.csv" --plot "$out/pr_curves.png" > "$run/summary.json"
steps=$(python3 -c "import json,sys; print(json.load(open('$run/train.json'))['steps'])")
preset=$(python3 -c "
import sys; a=sys.argv[1:]
import os
if '--config' in a: print('config ' + os.path.basename(a[a.index('--config')+1]))
else: print(a[a.index('--preset')+1] if '--preset' in a else 'cpu-small')" "$@")
python3 scripts/metrics_json.py --summary "$run/summary.json" --csv "$out/per_class.csv" \
    --dataset "$(basename "$data")" --split "$split" --preset "$preset" --steps "$steps" \
    --seed "$seed" --wall-s "$total" --command "$cmd" --out "$out/metrics.json"
for p in loss.png map.png; do [ -f "$run/$p" ] && cp "$run/$p" "$out/"; done
echo "results in $out"
