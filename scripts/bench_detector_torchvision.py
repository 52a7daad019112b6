#!/usr/bin/env python3
"""torchvision's side of `cargo run --release --example detector_timing`.

One inference and one training step of fasterrcnn_resnet50_fpn / a ResNet-18 FPN Faster
R-CNN (random weights, FrozenBN as the detection models use it, no resizing: min_size and
max_size fixed to the input, 2000/2000 training and 1000/1000 test proposals, 512 RoIs) at
480x640, 15 classes (14 + background). Prints one JSON object
{"infer_ms", "train_step_ms", "peak_rss_mb"}: the minimum over --runs after one warm-up;
with --threads 1 process CPU time, else wall time. `--bf16` runs both under
`torch.autocast("cpu", dtype=torch.bfloat16)` (PyTorch's mixed precision on CPU: oneDNN's
bf16 kernels, AMX where the CPU has it), the counterpart of `detector_timing --precision bf16`.

    /tmp/tv/bin/python scripts/bench_detector_torchvision.py --model resnet50 --threads 2 --runs 3 --json
"""
import argparse
import json
import resource
import time

import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import misc as misc_nn_ops


def synthetic_target(height, width):
    """20 boxes and labels drawn from a seeded generator (the benchmarks' one target)."""
    g = torch.Generator().manual_seed(0)
    boxes = []
    for i in range(20):
        x = float(torch.rand(1, generator=g)) * (width - 60)
        y = float(torch.rand(1, generator=g)) * (height - 60)
        boxes.append([x, y, x + 20 + (i % 3) * 15, y + 25])
    return {"boxes": torch.tensor(boxes), "labels": torch.tensor([1 + i % 14 for i in range(20)])}


def time_steps(model, image, target, threads, runs, bf16, skip_train=False):
    """One warm-up, then `runs` rounds of one inference and one SGD training step (lr 0.0025,
    momentum 0.9, weight decay 1e-4). Returns (inference seconds per round, training seconds
    per round, the warm-up's training seconds): process CPU time with one thread, else wall
    time; training times are NaN with `skip_train`."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0025,
                          momentum=0.9, weight_decay=1e-4)
    clock = time.process_time if threads == 1 else time.perf_counter

    def cast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def infer():
        model.eval()
        with torch.no_grad(), cast():
            model([image])

    def train():
        model.train()
        with cast():
            losses = model([image], [target])
            loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    infer_s, train_s, first_train = [], [], float("nan")
    for run in range(runs + 1):
        t = clock(); infer(); ti = clock() - t
        tt = float("nan")
        if not skip_train:
            t = clock(); train(); tt = clock() - t
        if run > 0:
            infer_s.append(ti)
            train_s.append(tt)
        else:
            first_train = tt
    return infer_s, train_s, first_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["resnet50", "resnet18"], default="resnet50")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (CPU)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(
        backbone_name=a.model, weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d,
        trainable_layers=5)
    side = (min(a.height, a.width), max(a.height, a.width))
    model = FasterRCNN(
        backbone, num_classes=15, min_size=side[0], max_size=side[1],
        rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=1000,
        box_batch_size_per_image=512)
    image = torch.rand(3, a.height, a.width)
    target = synthetic_target(a.height, a.width)
    infer_s, train_s, _ = time_steps(model, image, target, a.threads, a.runs, a.bf16)
    out = {"model": a.model, "threads": a.threads, "bf16": a.bf16, "infer_ms": min(infer_s) * 1e3,
           "train_step_ms": min(train_s) * 1e3,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "torch": torch.__version__, "torchvision": torchvision.__version__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
