#!/usr/bin/env python3
"""PyTorch's side of arfpn-nn's `norm` bench: GroupNorm(32, 256) on 1x256x120x160 (f32),
forward, forward+backward of the sum, and the same with a ReLU after it; median of --reps
calls after a warm-up, in ms, with --threads intra-op threads.

    /work/venv-torch/bin/python scripts/bench_group_norm_torch.py --threads 2 --reps 30
"""
import argparse
import statistics
import time

import torch


def median_ms(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gn = torch.nn.GroupNorm(32, 256)
    x = torch.randn(1, 256, 120, 160, requires_grad=True)

    def fwd():
        with torch.no_grad():
            gn(x)

    def fwd_bwd():
        gn(x).sum().backward()

    def fwd_bwd_relu():
        torch.relu(gn(x)).sum().backward()

    for name, f in [("forward", fwd), ("forward_backward", fwd_bwd),
                    ("relu/forward_backward", fwd_bwd_relu)]:
        print(f"torch group_norm {name}: {median_ms(f, a.reps):.2f} ms")


if __name__ == "__main__":
    main()
