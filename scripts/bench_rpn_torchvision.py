#!/usr/bin/env python3
"""torchvision's anchor generation, matching and proposal filtering on the inputs of the
arfpn-rpn criterion bench (480x640, P2-P6, 9 anchors per location, ~230 cells).

Run the Rust bench first (it writes the file), then:
    python scripts/bench_rpn_torchvision.py [INPUT_FILE]
INPUT_FILE defaults to $ARFPN_RPN_BENCH or $TMPDIR/arfpn_rpn_bench.f32 (format in
crates/arfpn-rpn/benches/rpn.rs). Needs torch + torchvision; uses 2 threads.
Also compares arfpn's match labels and test-phase proposals (INPUT_FILE + ".out") with
torchvision's on the same input, and exits with status 1 if they disagree.
"""
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

H, W, STRIDES = 480, 640, [4, 8, 16, 32, 64]


def timeit(fn, min_time=float(os.environ.get("MIN_TIME", 2.0))):
    fn()
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 5:
            return elapsed / runs


def main():
    torch.set_num_threads(2)
    default = os.environ.get("ARFPN_RPN_BENCH", os.path.join(tempfile.gettempdir(), "arfpn_rpn_bench.f32"))
    path = sys.argv[1] if len(sys.argv) > 1 else default
    v = np.fromfile(path, dtype="<f4")
    L = int(v[0]); counts = [int(c) for c in v[1:1 + L]]; G = int(v[1 + L]); R = sum(counts)
    o = 2 + L
    anchors = torch.from_numpy(v[o:o + 4 * R].reshape(R, 4).copy()); o += 4 * R
    logits = torch.from_numpy(v[o:o + R].copy()); o += R
    deltas = torch.from_numpy(v[o:o + 4 * R].reshape(R, 4).copy()); o += 4 * R
    gt = torch.from_numpy(v[o:o + 4 * G].reshape(G, 4).copy())
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}: {R} anchors, {G} gt")

    sizes = tuple(tuple(8.0 * 2 ** l * 2 ** (2 * k / 3) for k in range(3)) for l in range(L))  # AnchorConfig::rbc_dense
    ag = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * L)
    images = ImageList(torch.zeros(1, 3, H, W), [(H, W)])
    feats = [torch.zeros(1, 1, -(-H // s), -(-W // s)) for s in STRIDES]
    assert ag(images, feats)[0].shape[0] == R
    print(f"torchvision anchors_480x640_p2-p6_dense: {timeit(lambda: ag(images, feats)) * 1e3:.2f} ms")

    ours = np.fromfile(path + ".out", dtype="<f4")
    our_labels = torch.from_numpy(ours[:R].astype(np.int64))
    P = int(ours[R]); our_props = torch.from_numpy(ours[R + 1:R + 1 + 5 * P].reshape(P, 5).copy())
    ok = True

    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    tv_labels = matcher(box_iou(gt, anchors))
    same = int((tv_labels == our_labels).sum())
    print(f"match labels identical to torchvision's: {same} / {R}")
    ok &= same == R
    t = timeit(lambda: matcher(box_iou(gt, anchors)))
    print(f"torchvision match_230gt_x_230k_anchors (box_iou + Matcher): {t * 1e3:.2f} ms")

    for phase, pre, post in [("test", 2000, 2000), ("train", 4000, 2000)]:
        rpn = RegionProposalNetwork(ag, RPNHead(1, 9), 0.7, 0.3, 256, 0.5,
                                    dict(training=pre, testing=pre), dict(training=post, testing=post), 0.7)
        rpn.train(phase == "train")

        def run():
            with torch.no_grad():
                props = rpn.box_coder.decode(deltas, [anchors]).view(1, -1, 4)
                return rpn.filter_proposals(props, logits.view(1, -1), [(H, W)], counts)
        boxes, scores = run()
        if phase == "test":
            # Same set of boxes; the order of equal scores is unspecified in torchvision.
            tv = torch.cat([boxes[0], scores[0][:, None]], 1)
            found = (tv[:, None, :4] - our_props[None, :, :4]).abs().amax(-1).amin(0) < 1e-3
            score_diff = (tv[:, 4].sort().values - our_props[:, 4].sort().values).abs().max().item()
            print(f"test proposals: torchvision {len(tv)}, arfpn {P}, arfpn boxes found in "
                  f"torchvision's (1e-3 px): {int(found.sum())}, max score difference {score_diff:.1e}")
            ok &= len(tv) == P and bool(found.all()) and score_diff < 1e-5
        t = timeit(run)
        print(f"torchvision proposals_{phase}_pre{pre}_post{post} (decode all + filter_proposals): "
              f"{t * 1e3:.2f} ms, {boxes[0].shape[0]} proposals")


    if not ok:
        print("MISMATCH with torchvision")
        sys.exit(1)


if __name__ == "__main__":
    main()
