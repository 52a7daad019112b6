#!/usr/bin/env python3
"""Makes the whole-detector torchvision oracle of crates/arfpn/tests/torchvision_oracle.rs.

A torchvision 0.29 Faster R-CNN over a narrow ResNet-18-FPN (every ResNet width / 8: stem 8,
stages 8/16/32/64 channels; FrozenBatchNorm2d; FPN P2-P6 at 32 channels with
LastLevelMaxPool; torchvision's default AnchorGenerator, RPNHead, MultiScaleRoIAlign and
thresholds; TwoMLPHead of 128; 3 foreground classes; min_size 256 / max_size 320, so the
two 320x256 test images are not resized) gets seeded random weights, "peaked" so that it
makes tens of confident detections: He-normal convolutions, frozen batch norms near the
identity, a classifier with large weights. The weights are rounded to f16 and the model runs
in f32 on those rounded values, so that the committed f16 file is exactly the model.

Outputs in crates/arfpn/tests/fixtures/torchvision/ (about 1 MB in all):
  model.safetensors     the state dict (torchvision's names and layout, f16), what a user
                        exports with scripts/export_torchvision_detector.py
  expected.safetensors  torchvision's outputs on image-0.png and image-1.png (one batch):
                        fpn.<level>.{shape,index,value}: FPN maps sampled at 64 seeded
                          positions each, with the level's mean and std in fpn.<level>.stats;
                        proposals.<i>: the RPN's boxes (test mode, 1000 per image, best first);
                        detections.<i>.{boxes,scores,labels}: final detections (labels 1..3);
                        nms.*: torchvision.ops.nms / batched_nms keep lists on random boxes.

Robustness: the same model is also run in float64, and in f32 on the images moved by up to
1e-6 (two draws). The fixture is only written when these runs give the same detections
(same count, order and labels, IoU >= 0.9999, scores within 1e-5) and the same proposals
(the same set of boxes within 1e-3 px; proposals of equal objectness come in an unspecified
order): then differences at f32 rounding level, which is what separates two correct
implementations, cannot change which boxes come out. The seed is raised until that holds
and each image has 10-99 detections (below torchvision's cap of 100).

Usage (torch, torchvision, safetensors, pillow, numpy):
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch torchvision safetensors pillow numpy
    /work/venv-torch/bin/python scripts/make_torchvision_oracle.py
The two images are synthetic smears rendered by the project itself (no dataset image):
    cargo run --release --example make_synthetic -- /tmp/oracle-smears --images 2 --width 320 --height 256 --png --seed 7 --profile realistic
and copied to the fixture folder as image-0.png / image-1.png (the script does that when
--smears DIR is given).
"""
import argparse
import collections
import os
import shutil
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.ops import batched_nms, box_iou, nms
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

WIDTH = 8  # ResNet stem width (torchvision: 64)
FPN_CHANNELS = 32
REPRESENTATION = 128
NUM_CLASSES = 3  # foreground
MIN_SIZE, MAX_SIZE = 256, 320
BACKGROUND_BIAS = 4.0
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "arfpn", "tests", "fixtures", "torchvision")


def narrow_resnet18():
    """torchvision's ResNet-18 with every width scaled by WIDTH / 64 (same modules and names)."""

    class NarrowResNet(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            if planes == 64:  # the first stage: narrow the stem built just before it
                self.inplanes = WIDTH
                self.conv1 = nn.Conv2d(3, WIDTH, kernel_size=7, stride=2, padding=3, bias=False)
                self.bn1 = self._norm_layer(WIDTH)
            return super()._make_layer(block, planes * WIDTH // 64, blocks, stride, dilate)

    return NarrowResNet(BasicBlock, [2, 2, 2, 2], norm_layer=FrozenBatchNorm2d)


def build_model():
    body = narrow_resnet18()
    backbone = BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[WIDTH, 2 * WIDTH, 4 * WIDTH, 8 * WIDTH],
        out_channels=FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
    )
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=MIN_SIZE,
        max_size=MAX_SIZE,
        box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, REPRESENTATION),
        box_predictor=FastRCNNPredictor(REPRESENTATION, NUM_CLASSES + 1),
    )


def peaked_weights(model, seed, images):
    """Seeded random weights, scaled on the two images so that every stage sees values of
    order 1 and the classifier's logits have a standard deviation of about 2.5 (confident,
    but not saturated, scores). f16."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name, t in model.state_dict().items():
        shape = t.shape
        if name.endswith("num_batches_tracked"):  # BatchNorm2d (models trained from scratch)
            w[name] = t
            continue
        if name.endswith("running_var"):
            v = 1.0 + 0.5 * torch.rand(shape, generator=g)
        elif name.endswith("running_mean"):
            v = 0.1 * torch.randn(shape, generator=g)
        elif ".bn" in name or "downsample.1" in name or name.startswith("backbone.body.bn1"):
            # Frozen batch norm's affine part, damped so the residual sums stay of order 1.
            v = (0.5 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            v = 0.05 * torch.randn(shape, generator=g)
        else:  # convolution / linear weights: He-normal
            fan_in = int(np.prod(shape[1:]))
            v = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        w[name] = v
    model.load_state_dict(w)
    with torch.no_grad():
        batch, _ = model.transform(images)
        features = model.backbone(batch.tensors)
        s = torch.cat([f.flatten() for f in features.values()]).std().item()
        w["rpn.head.conv.0.0.weight"] /= s
        w["roi_heads.box_head.fc6.weight"] /= s
        w["rpn.head.cls_logits.weight"] *= 3.0  # objectness logits of a few units
        w["rpn.head.bbox_pred.weight"] *= 0.3  # proposals a few pixels off their anchors
        model.load_state_dict(w)
        proposals, _ = model.rpn(batch, features)
        pooled = model.roi_heads.box_roi_pool(features, proposals, batch.image_sizes)
        r = model.roi_heads.box_head(pooled).pow(2).mean().sqrt().item()
        k = w["roi_heads.box_predictor.cls_score.weight"].shape[1]
        w["roi_heads.box_predictor.cls_score.weight"] *= 2.5 / (r * (2.0 * k / k) ** 0.5)
        w["roi_heads.box_predictor.bbox_pred.weight"] *= 0.3 / r
        # Favour the background, so that tens of RoIs per image are detections, not all.
        w["roi_heads.box_predictor.cls_score.bias"][0] += BACKGROUND_BIAS
    return {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in w.items()}


def run(model, images):
    """Stage by stage, as FasterRCNN.forward in eval mode."""
    with torch.no_grad():
        original_sizes = [tuple(im.shape[-2:]) for im in images]
        batch, _ = model.transform(images)
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
        detections = model.transform.postprocess(detections, batch.image_sizes, original_sizes)
    return batch, features, proposals, detections


def same(d32, d64, p32, p64):
    for a, b in zip(d32, d64):
        if len(a["boxes"]) != len(b["boxes"]) or not torch.equal(a["labels"], b["labels"]):
            return f"detections differ ({len(a['boxes'])} vs {len(b['boxes'])})"
        if len(a["boxes"]) == 0:
            continue
        if box_iou(a["boxes"].double(), b["boxes"]).diagonal().min() < 0.9999:
            return "detection boxes differ"
        if (a["scores"].double() - b["scores"]).abs().max() > 1e-5:
            return "scores differ"
    for a, b in zip(p32, p64):
        if not same_box_set(a, b):
            return "proposals differ"
    return None


def same_box_set(a, b, tol=1e-3):
    """Every box of `a` has its own box in `b` within `tol` px (order free: proposals of
    equal objectness, which uniform regions make, come in an unspecified order)."""
    if a.shape != b.shape:
        return False
    d = (a.double()[:, None, :] - b.double()[None, :, :]).abs().amax(2)
    used = torch.zeros(len(b), dtype=torch.bool)
    for row in d:
        row = row.masked_fill(used, float("inf"))
        j = int(row.argmin())
        if row[j] > tol:
            return False
        used[j] = True
    return True


def nms_cases(seed):
    """Random clustered boxes; keep lists of nms at three thresholds and batched_nms."""
    g = torch.Generator().manual_seed(seed)
    n = 400
    centres = torch.rand(20, 2, generator=g) * 200
    c = centres[torch.randint(0, 20, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 6
    wh = 10 + torch.rand(n, 2, generator=g) * 30
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
    scores = torch.rand(n, generator=g)
    idxs = torch.randint(0, 5, (n,), generator=g)
    iou = box_iou(boxes, boxes)
    out = {"nms.boxes": boxes, "nms.scores": scores, "nms.idxs": idxs.to(torch.int64)}
    for t in (0.3, 0.5, 0.7):
        margin = (iou - t).abs().min().item()
        if margin < 1e-5:
            return None
        out[f"nms.keep.{t}"] = nms(boxes, scores, t).to(torch.int64)
        out[f"nms.batched_keep.{t}"] = batched_nms(boxes, scores, idxs, t).to(torch.int64)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smears", help="folder written by make_synthetic (JPEGImages/*.png)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.smears:
        pngs = sorted(f for f in os.listdir(os.path.join(args.smears, "JPEGImages")) if f.endswith(".png"))
        for i, f in enumerate(pngs[:2]):
            shutil.copy(os.path.join(args.smears, "JPEGImages", f), os.path.join(OUT, f"image-{i}.png"))
    images = [
        torch.from_numpy(np.asarray(Image.open(os.path.join(OUT, f"image-{i}.png")).convert("RGB")).copy())
        .permute(2, 0, 1).float() / 255.0
        for i in range(2)
    ]
    torch.set_num_threads(2)
    seed = args.seed
    while True:
        model = build_model().eval()
        weights = peaked_weights(model, seed, images)
        model.load_state_dict({k: v.float() for k, v in weights.items()})
        _, f32, p32, d32 = run(model, images)
        model64 = build_model().eval().double()
        model64.load_state_dict({k: v.double() for k, v in weights.items()})
        _, _, p64, d64 = run(model64, [im.double() for im in images])
        counts = [len(d["boxes"]) for d in d32]
        why = same(d32, d64, p32, p64)
        for trial in range(2):
            if why is not None:
                break
            # Inputs moved by up to 1e-6: rounding-level noise must not change the outcome.
            noise = torch.Generator().manual_seed(100 + trial)
            moved = [(im + (torch.rand(im.shape, generator=noise) - 0.5) * 2e-6).clamp(0, 1) for im in images]
            _, _, pn, dn = run(model, moved)
            why = same(dn, d64, pn, p64)
        if why is None and min(counts) >= 10 and max(counts) < 100:
            break
        print(f"seed {seed}: {why or 'not 10-99 detections per image'} (counts {counts}); next seed", file=sys.stderr)
        seed += 1
    nms_seed = 0
    while (nms := nms_cases(nms_seed)) is None:
        nms_seed += 1

    expected = {"seed": torch.tensor([seed, nms_seed], dtype=torch.int64)}
    g = torch.Generator().manual_seed(1)
    for name, f in f32.items():
        flat = f.flatten()
        idx = torch.randint(0, flat.numel(), (64,), generator=g)
        expected[f"fpn.{name}.shape"] = torch.tensor(list(f.shape), dtype=torch.int64)
        expected[f"fpn.{name}.index"] = idx.to(torch.int64)
        expected[f"fpn.{name}.value"] = flat[idx].contiguous()
        expected[f"fpn.{name}.stats"] = torch.stack([f.mean(), f.std(unbiased=False)])
    for i, (p, d) in enumerate(zip(p32, d32)):
        expected[f"proposals.{i}"] = p.contiguous()
        expected[f"detections.{i}.boxes"] = d["boxes"].contiguous()
        expected[f"detections.{i}.scores"] = d["scores"].contiguous()
        expected[f"detections.{i}.labels"] = d["labels"].to(torch.int64)
    expected.update({k: v.contiguous() for k, v in nms.items()})
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "width": str(WIDTH),
        "fpn_channels": str(FPN_CHANNELS),
        "representation": str(REPRESENTATION),
        "num_classes": str(NUM_CLASSES),
        "min_size": str(MIN_SIZE),
        "max_size": str(MAX_SIZE),
    }
    save_file({k: v.contiguous() for k, v in weights.items()}, os.path.join(OUT, "model.safetensors"), metadata=meta)
    save_file(expected, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    print(
        f"seed {seed}: detections {[len(d['boxes']) for d in d32]}, proposals {[len(p) for p in p32]}, "
        f"scores {[round(float(d['scores'].min()), 3) for d in d32]}..{[round(float(d['scores'].max()), 3) for d in d32]}; "
        f"nms seed {nms_seed}; wrote {os.path.normpath(OUT)}"
    )


if __name__ == "__main__":
    main()
