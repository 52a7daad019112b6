"""torchvision ResNet-FPN backbone timings at 480x640, to set beside
`cargo bench -p arfpn-fpn --bench backbone_fpn`.

Same shapes as the Rust benchmark: one 3x480x640 image, f32, FrozenBatchNorm2d, FPN with 256
channels and the P6 max-pool level; forward in eval/no_grad, forward+backward of the sum of the
output means with every layer trainable. 2 threads.

Usage: /work/venv-torch/bin/python scripts/bench_backbone_torchvision.py [--runs N]
(needs torch and torchvision: pip install torch torchvision)
"""
import argparse
import statistics
import time

import torch
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone


def timed(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 480, 640)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for depth in ["resnet18", "resnet50"]:
        net = resnet_fpn_backbone(backbone_name=depth, weights=None, trainable_layers=5)
        net.eval()
        with torch.no_grad():
            fwd = timed(lambda: net(x), args.runs)

        def step():
            net.zero_grad(set_to_none=True)
            out = net(x)
            sum(v.mean() for v in out.values()).backward()

        net.train()
        fb = timed(step, args.runs)
        print(
            f"{depth}_fpn_frozenbn forward min {fwd[0] * 1000:.0f} ms median {fwd[1] * 1000:.0f} ms, "
            f"forward+backward min {fb[0] * 1000:.0f} ms median {fb[1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
