#!/usr/bin/env bash
# RoIAlign vs RoIPool (paper Table 6) on BCCD: the CS-ARFPN cpu-small network with RoIPool,
# seeds 0 and 1 side by side on one thread each; the RoIAlign arm is ablate_attention.sh's
# `ablate-cs-arfpn-s*`. Writes results/ablate-roipool-s{0,1}/.
#
#   experiments/ablate_pooler.sh [DATA_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/bccd} steps=${2:-3000}
common=(--steps "$steps" --crop 384x384 --eval-every "$steps" --checkpoint-every 500 --lenient)
for seed in 0 1; do
  RAYON_NUM_THREADS=1 SEED=$seed experiments/run.sh "ablate-roipool-s$seed" "$data" \
    --config experiments/configs/cpu-small-cs-arfpn-roipool.json "${common[@]}" &
done
wait
