#!/usr/bin/env bash
# BCCD -> TXL-PBC transfer: evaluates a checkpoint on TXL-PBC's test images that do not come
# from BCCD (TXL-PBC re-annotated 160 BCCD images; source_map.csv names each image's source),
# and writes results/NAME/{metrics.json,per_class.csv,pr_curves.png}.
#
#   experiments/txl_transfer.sh NAME CHECKPOINT [TXL_DIR]
#   e.g. experiments/txl_transfer.sh bccd-to-txl-pbc runs/bccd/best.safetensors ../shared/data/txl-pbc
#
# The subset is a folder of symbolic links under $RUNS (default runs/) with its own split
# file, so the dataset folder itself is never written to.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 ckpt=$2 txl=${3:-../shared/data/txl-pbc}
runs=${RUNS:-runs} out="results/$name" sub="$runs/txl-pbc-non-bccd"
txl=$(cd "$txl" && pwd)
mkdir -p "$sub/ImageSets/Main" "$out"
ln -sfn "$txl/Annotations" "$sub/Annotations"
ln -sfn "$txl/JPEGImages" "$sub/JPEGImages"
python3 - "$txl/source_map.csv" "$sub/ImageSets/Main" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for split in ("train", "val", "test"):
    ids = [r["id"] for r in rows if r["split"] == split and r["source_dataset"] != "BCCD"]
    open(f"{sys.argv[2]}/{split}.txt", "w").write("".join(i + "\n" for i in sorted(ids)))
    print(split, len(ids), "non-BCCD images")
PY
cargo build -q --release --example evaluate
bin=${CARGO_TARGET_DIR:-target}/release/examples
start=$(date +%s)
"$bin/evaluate" --data "$sub" --split test --checkpoint "$ckpt" --json \
    --csv "$out/per_class.csv" --plot "$out/pr_curves.png" > "$out/summary.json"
wall=$(( $(date +%s) - start ))
python3 scripts/metrics_json.py --summary "$out/summary.json" --csv "$out/per_class.csv" \
    --dataset txl-pbc-non-bccd --split test --preset "checkpoint $ckpt" --steps 0 --seed 0 \
    --wall-s "$wall" --command "experiments/txl_transfer.sh $*" --out "$out/metrics.json"
rm -f "$out/summary.json"
echo "results in $out"
