#!/usr/bin/env bash
# Attention ablation (paper Table 3) on BCCD at a short budget: the cpu-small network with no
# attention (FPN) and with CBAM (CS-ARFPN), same recipe, seeds 0 and 1, two runs at a time on
# one thread each. Writes results/ablate-{fpn,cs-arfpn}-s{0,1}/.
#
#   experiments/ablate_attention.sh [DATA_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/bccd} steps=${2:-1500}
common=(--steps "$steps" --crop 384x384 --eval-every "$steps" --checkpoint-every 500 --lenient)
for seed in 0 1; do
  for arm in fpn cs-arfpn; do
    RAYON_NUM_THREADS=1 SEED=$seed experiments/run.sh "ablate-$arm-s$seed" "$data" \
      --config "experiments/configs/cpu-small-$arm.json" "${common[@]}" &
  done
  wait
done
