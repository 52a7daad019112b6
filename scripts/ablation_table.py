#!/usr/bin/env python3
"""The ablation table of docs/results.md, from the committed result files.

Reads results/ablate-<arm>-s<seed>/metrics.json for every arm and seed present and prints
one markdown row per arm: test mAP@0.5 (VOC all-point) per seed, mean ± half the spread
(max − min over seeds), the per-class AP50 means, the mean VOC07 and COCO AP, and the
training wall time per run.

    python3 scripts/ablation_table.py [RESULTS_DIR]
"""
import glob
import json
import os
import re
import sys

# Arm -> what it changes against CS-ARFPN, with the paper table it mirrors; in print order.
ARMS = {
    "fpn": "FPN, no attention (Table 3)",
    "c-arfpn": "C-ARFPN, channel attention / SE (Table 3)",
    "s-arfpn": "S-ARFPN, spatial attention (Table 3)",
    "cs-arfpn": "CS-ARFPN, CBAM: the reference arm (Table 3)",
    "cs-arfpn-intel": "CS-ARFPN reference again, on the Intel machine with the bf16 arm's build (f32)",
    "roipool": "CS-ARFPN + RoIPool instead of RoIAlign (Table 6)",
    "adam": "CS-ARFPN + Adam lr 1e-4 instead of momentum SGD (Table 5)",
    "anchors32": "CS-ARFPN + one anchor size per level, 32·2^l (torchvision's)",
    "wce": "CS-ARFPN + class-weighted cross-entropy",
    "focal": "CS-ARFPN + softmax focal loss (γ = 2)",
    "bf16": "CS-ARFPN trained with bf16 products (AMX; not in the paper)",
    "custom": "your attention module in place of CBAM (experiments/configs/cpu-small-gated.json)",
}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "results"
    runs = {}
    for path in sorted(glob.glob(os.path.join(root, "ablate-*-s*", "metrics.json"))):
        m = re.match(r"ablate-(.+)-s(\d+)$", os.path.basename(os.path.dirname(path)))
        runs.setdefault(m.group(1), {})[int(m.group(2))] = json.load(open(path))
    classes = sorted({c for arm in runs.values() for r in arm.values() for c in r["per_class"]})
    print("| arm | seeds | mAP@0.5 per seed | mean ± half-spread | "
          + " | ".join(classes) + " | VOC07 | COCO AP | train wall (s, per run) |")
    print("|---" * (7 + len(classes)) + "|")
    for arm in list(ARMS) + sorted(set(runs) - set(ARMS)):
        if arm not in runs:
            continue
        rs = [runs[arm][s] for s in sorted(runs[arm])]
        maps = [r["map50_voc"] for r in rs]
        mean = sum(maps) / len(maps)
        half = (max(maps) - min(maps)) / 2
        avg = lambda f: sum(f(r) for r in rs) / len(rs)
        cols = [f"{avg(lambda r: r['per_class'][c]['ap50']):.3f}" for c in classes]
        print(f"| {ARMS.get(arm, arm)} | {', '.join(map(str, sorted(runs[arm])))} | "
              f"{' / '.join(f'{v:.3f}' for v in maps)} | **{mean:.3f} ± {half:.3f}** | "
              + " | ".join(cols)
              + f" | {avg(lambda r: r['map50_voc07']):.3f} | {avg(lambda r: r['coco_ap']):.3f} | "
              + " / ".join(f"{r['wall_s']:.0f}" for r in rs) + " |")


if __name__ == "__main__":
    main()
