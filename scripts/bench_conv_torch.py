#!/usr/bin/env python3
"""PyTorch timings of the convolutions in crates/arfpn-kernels/benches/conv.rs, on the same shapes.

Forward, and forward+backward as `conv(x, w, b).sum().backward()` with x, w, b requiring
gradients (the same work as the Rust bench). Prints median wall ms, median process-CPU ms and GFLOP/s (from wall time) (forward
2*N*O*Ho*Wo*C*kh*kw FLOP, forward+backward three times that).

    /work/venv-torch/bin/python scripts/bench_conv_torch.py [--threads 2] [--reps 10]
"""
import argparse
import time

import torch
import torch.nn.functional as F

CASES = [
    ("stem7x7s2_3to64_480x640", (1, 3, 480, 640), 64, 7, 2, 3),
    ("3x3_256to256_120x160", (1, 256, 120, 160), 256, 3, 1, 1),
    ("1x1_1024to256_30x40", (1, 1024, 30, 40), 256, 1, 1, 0),
    ("3x3s2_128to128_120x160", (1, 128, 120, 160), 128, 3, 2, 1),
]


def median_ms(fn, reps):
    """Median wall and process-CPU milliseconds per call (CPU time is robust on a shared machine)."""
    fn()  # warm-up
    fn()
    ts, cs = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
        cs.append((time.process_time() - c) * 1e3)
    ts.sort()
    cs.sort()
    return ts[len(ts) // 2], cs[len(cs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--only", default=None, help="substring of the shape name")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'shape':28} {'fwd ms':>9} {'fwd cpu':>9} {'GFLOP/s':>8} {'f+b ms':>12} {'f+b cpu':>12} {'GFLOP/s':>8}")
    for name, (n, c, h, w), o, k, s, p in CASES:
        x = torch.randn(n, c, h, w, requires_grad=True)
        wt = (torch.randn(o, c, k, k) * 0.05).requires_grad_()
        b = torch.zeros(o, requires_grad=True)
        ho = (h + 2 * p - k) // s + 1
        wo = (w + 2 * p - k) // s + 1
        gflop = 2 * n * o * ho * wo * c * k * k / 1e9

        def fwd():
            with torch.no_grad():
                F.conv2d(x, wt, b, stride=s, padding=p)

        def fwd_bwd():
            F.conv2d(x, wt, b, stride=s, padding=p).sum().backward()

        if args.only and args.only not in name:
            continue
        tf, cf = median_ms(fwd, args.reps)
        tb, cb = median_ms(fwd_bwd, args.reps)
        print(f"{name:28} {tf:9.2f} {cf:9.2f} {gflop / tf * 1e3:8.1f} {tb:12.2f} {cb:12.2f} {3 * gflop / tb * 1e3:8.1f}")


if __name__ == "__main__":
    main()
