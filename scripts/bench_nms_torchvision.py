#!/usr/bin/env python3
"""torchvision's nms / batched_nms on the exact boxes the arfpn-boxes NMS bench uses.

Run the Rust bench first (it writes the file), then:
    python scripts/bench_nms_torchvision.py [BOXES_FILE]
BOXES_FILE defaults to $ARFPN_NMS_BOXES or $TMPDIR/arfpn_nms_boxes_10000.f32: little-endian
f32 rows (x1, y1, x2, y2, score, group), 10 000 "clustered" rows then 10 000 "uniform" rows.
Needs torch and torchvision (pip install torch torchvision). Uses 2 threads, like the
2-core machine the Rust numbers come from. Also checks that the kept sets agree with
the kept indices agree with arfpn's (BOXES_FILE + ".out", written by the bench): the same
set, in the same order up to equal scores; exits with status 1 otherwise.
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


def timeit(fn, min_time=float(os.environ.get("MIN_TIME", 2.0))):
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
    ours = np.fromfile(path + ".out", dtype="<f4").astype(np.int64)
    pos, ok = 0, True
    for k, name in enumerate(["clustered", "uniform"]):
        rows = torch.from_numpy(data[k * N:(k + 1) * N].copy())
        boxes, scores, groups = rows[:, :4].contiguous(), rows[:, 4].contiguous(), rows[:, 5].long()
        keep = nms(boxes, scores, 0.7)
        keep_b = batched_nms(boxes, scores, groups, 0.7)
        print(f"{name}: nms keeps {len(keep)}, batched_nms keeps {len(keep_b)}")
        for label, tv_keep in [("nms", keep), ("batched_nms", keep_b)]:
            n = ours[pos]
            mine = torch.from_numpy(ours[pos + 1:pos + 1 + n])
            pos += 1 + n
            same_set = n == len(tv_keep) and bool((mine.sort().values == tv_keep.sort().values).all())
            # Orders may differ only among equal scores.
            same_order = same_set and bool((scores[mine] == scores[tv_keep]).all())
            print(f"  {label}: same kept set as arfpn: {same_set}, same score order: {same_order}")
            ok &= same_order
        t = timeit(lambda: nms(boxes, scores, 0.7))
        print(f"torchvision nms_10000_{name}_iou0.7: {t * 1e3:.3f} ms")
        t = timeit(lambda: batched_nms(boxes, scores, groups, 0.7))
        print(f"torchvision batched_nms_10000_{name}_5groups_iou0.7: {t * 1e3:.3f} ms")
    if not ok:
        print("MISMATCH with torchvision")
        sys.exit(1)


if __name__ == "__main__":
    main()
