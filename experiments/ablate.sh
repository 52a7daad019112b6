#!/usr/bin/env bash
# BCCD ablations at a short budget, any arms: each arm trains the cpu-small network with one
# change against CS-ARFPN (the paper's model), seeds 0 and 1 side by side on one thread each,
# same recipe and step budget for every arm. Writes results/ablate-ARM-s{0,1}/ and skips a
# run whose metrics.json is already there.
#
#   experiments/ablate.sh DATA_DIR STEPS ARM [ARM...]
#   e.g. experiments/ablate.sh ../shared/data/bccd 3000 c-arfpn s-arfpn adam anchors32 wce focal bf16
#
# Arms (paper table): fpn, c-arfpn, s-arfpn, cs-arfpn (Table 3: no / channel / spatial / CBAM
# attention); roipool (Table 6); adam (Table 5: Adam, lr 1e-4, instead of momentum SGD 0.02);
# anchors32 (one anchor size per level, 32·2^l for P2–P6, torchvision's, instead of the dense
# three sizes from 8 px); wce (class-weighted cross-entropy, weights mean/count from BCCD's
# train counts); focal (softmax focal loss, gamma 2); bf16 (the CS-ARFPN arm trained with
# bf16 products in every convolution and linear layer, forward and backward, f32
# accumulation and weights: `train --precision bf16`, Intel AMX); custom (your own attention
# module in place of CBAM: experiments/configs/cpu-small-gated.json names the module that
# examples/custom_attention.rs registers, trained and evaluated by that program's `train` and
# `evaluate`; put your module there, or point ARFPN_TRAIN / ARFPN_EVALUATE and CUSTOM_CONFIG at
# your own program and config).
#
#   my module against the paper's four variants on BCCD, two seeds each:
#   experiments/ablate.sh ../shared/data/bccd 3000 fpn c-arfpn s-arfpn cs-arfpn custom && python3 scripts/ablation_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1 steps=$2; shift 2
common=(--steps "$steps" --crop 384x384 --eval-every "$steps" --checkpoint-every 500 --lenient)
for arm in "$@"; do
  case $arm in
    fpn|c-arfpn|s-arfpn|cs-arfpn) args=(--config "experiments/configs/cpu-small-$arm.json") ;;
    roipool|anchors32|wce|focal) args=(--config "experiments/configs/cpu-small-cs-arfpn-$arm.json") ;;
    adam) args=(--config experiments/configs/cpu-small-cs-arfpn.json --optimizer adam --lr 1e-4) ;;
    bf16) args=(--config experiments/configs/cpu-small-cs-arfpn.json --precision bf16) ;;
    custom)
      args=(--config "${CUSTOM_CONFIG:-experiments/configs/cpu-small-gated.json}")
      if [ -z "${ARFPN_TRAIN:-}" ]; then
        cargo build -q --release --example custom_attention
        export ARFPN_TRAIN="${CARGO_TARGET_DIR:-target}/release/examples/custom_attention train"
        export ARFPN_EVALUATE="${CARGO_TARGET_DIR:-target}/release/examples/custom_attention evaluate"
      fi ;;
    *) echo "unknown arm: $arm" >&2; exit 2 ;;
  esac
  for seed in 0 1; do
    name="ablate-$arm-s$seed"
    if [ -f "results/$name/metrics.json" ]; then echo "$name: done, skipped"; continue; fi
    RAYON_NUM_THREADS=1 SEED=$seed experiments/run.sh "$name" "$data" "${args[@]}" "${common[@]}" &
  done
  wait
done
