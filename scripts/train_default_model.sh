#!/usr/bin/env bash
# Reproduces the shipped blood-cell model (models/blood_cells.safetensors, card in
# models/README.md) with the project's own commands:
#
#   bash scripts/train_default_model.sh [DATA_ROOT]      # DATA_ROOT defaults to ../shared/data
#
# 1. the training set: BCCD + TXL-PBC train/val without either test split
#    (scripts/make_default_model_data.py, rules in its header);
# 2. `train`: cpu-small, 10,000 steps of 384x384 crops, seed 0, best on the merged val split
#    (resumes when runs/default-model holds checkpoints);
# 3. `pack_model`: f16 weights without optimiser state, scored against the f32 model on the
#    BCCD and TXL-PBC test splits (refused beyond 0.002 mAP), figures recorded in the file.
# About an hour on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
run=runs/default-model
python3 scripts/make_default_model_data.py "$data" runs/default-model-data
cargo build -q --release --example train --example pack_model
bin=${CARGO_TARGET_DIR:-target}/release/examples
resume=()
ls "$run"/checkpoints/*.safetensors >/dev/null 2>&1 && resume=(--resume)
train_args=(--preset cpu-small --steps 10000 --crop 384x384 --eval-every 2000
    --checkpoint-every 500 --lenient --seed 0)
"$bin/train" --data runs/default-model-data --out "$run" "${resume[@]}" "${train_args[@]}"
"$bin/pack_model" --checkpoint "$run/best.safetensors" --out models/blood_cells.safetensors \
    --dtype f16 --eval "$data/bccd:test" --eval "$data/txl-pbc:test" \
    --meta "recipe=scripts/train_default_model.sh: train ${train_args[*]} on BCCD + TXL-PBC train (val for selection)" \
    --meta "data=BCCD train/val (MIT) + TXL-PBC train/val (MIT) without test images; see models/README.md"
