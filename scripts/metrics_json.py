#!/usr/bin/env python3
"""Builds results/<experiment>/metrics.json from `evaluate --json` output and `--csv` table.

    evaluate -- --data D --split test --checkpoint C --json --csv table.csv > summary.json
    python3 scripts/metrics_json.py --summary summary.json --csv table.csv --dataset bccd \
        --split test --preset cpu-small --steps 3000 --seed 0 --wall-s 1234 \
        --command "..." --out results/bccd-pilot/metrics.json
"""
import argparse
import csv
import json
import os


def main():
    ap = argparse.ArgumentParser()
    for a in ["summary", "csv", "dataset", "split", "preset", "command", "out"]:
        ap.add_argument("--" + a.replace("_", "-"), required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--wall-s", type=float, required=True)
    a = ap.parse_args()
    summary = json.load(open(a.summary))
    per_class = {}
    with open(a.csv) as f:
        for row in csv.DictReader(f):
            if row["class"] == "mean":
                continue
            num = lambda k: float(row[k]) if row[k] not in ("", None) else None
            per_class[row["class"]] = {
                "ap50": num("voc_ap"), "ap50_voc07": num("voc07_ap"), "coco_ap": num("coco_ap"),
                "npos": int(row["npos"]),
                "precision": num("precision"), "recall": num("recall"), "f1": num("f1"),
                "best_f1_threshold": num("best_threshold"), "best_precision": num("best_precision"),
                "best_recall": num("best_recall"), "best_f1": num("best_f1"),
            }
    out = {
        "dataset": a.dataset, "split": a.split, "preset": a.preset, "steps": a.steps,
        "seed": a.seed,
        "map50_voc": summary["voc"]["map"], "map50_voc07": summary["voc07"]["map"],
        "coco_ap": summary["coco"]["ap"], "coco_ap50": summary["coco"]["ap50"],
        "coco_ap75": summary["coco"]["ap75"],
        "per_class": per_class, "precision_recall_at": 0.5, "wall_s": a.wall_s,
        "command": a.command,
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {a.out}: mAP@0.5 {out['map50_voc']:.4f}")


if __name__ == "__main__":
    main()
