#!/usr/bin/env python3
"""PyTorch's side of `cargo run --release --example detector_timing -- --preset cs-arfpn-r50`.

The like-for-like peer of our CS-ARFPN R50 (Song et al. 2021: Faster R-CNN whose ResNet-50
residual units carry CBAM), written the way a PyTorch user would: torchvision's `resnet50`
with GroupNorm(32) and a CBAM module after each bottleneck's `bn3` (before the residual
addition), torchvision's `BackboneWithFPN` (P2-P6, 256 channels, `LastLevelMaxPool`) and
`FasterRCNN` (`RPNHead`, `TwoMLPHead` 1024, `FastRCNNPredictor`), random weights, f32.
`scripts/bench_detector_torchvision.py` times torchvision's plain R50-FPN Faster R-CNN the
same way; this script follows its protocol and JSON: one warm-up, then --runs timed runs of
one inference and one SGD training step (lr 0.0025, momentum 0.9, weight decay 1e-4) on one
3x480x640 `torch.rand` image with the same 20 synthetic boxes, 15 classes (14 + background);
the minimum over the runs (also the median, and the warm-up's training step); with
--threads 1 process CPU time, else wall time; peak RSS. `--bf16` runs both under
`torch.autocast("cpu", dtype=torch.bfloat16)` (the counterpart of `--precision bf16`).

    /work/venv-torch/bin/python scripts/bench_csarfpn_torch.py --threads 2 --runs 3 --json
    cargo run --release --example detector_timing -- --preset cs-arfpn-r50 --threads 2 --runs 3 --json
    /work/venv-torch/bin/python scripts/bench_csarfpn_torch.py --self-test

Settings: our value (`crates/arfpn-model/src/presets.rs` `preset(CsArfpn, 50)`: GroupNorm(32) +
CBAM on `ResNetConfig::resnet50()`, every other part its crate's `Default`; then what
`examples/detector_timing.rs` overrides) and this script's.

| setting | ours (`cs-arfpn-r50` in `detector_timing`) | this script |
|---|---|---|
| backbone | ResNet-50 v1.5 (stride on the 3x3), width 64, [3, 4, 6, 3] | `torchvision.models.resnet50(weights=None)`, same |
| normalisation | GroupNorm(32 groups, eps 1e-5, affine) after every conv (stem, units, shortcuts), trained | `norm_layer=lambda c: nn.GroupNorm(32, c)` (eps 1e-5), trained |
| trainable layers | all (nothing frozen with GroupNorm) | all (`BackboneWithFPN` built directly, no `trainable_layers`) |
| attention | CBAM in every bottleneck of layer1-4 (16 units), after bn3, before the addition | `bn3 -> nn.Sequential(bn3, Cbam(4*planes))`, same place |
| CBAM channel gate | `sigmoid(mlp(avgpool x) + mlp(maxpool x))`, shared MLP = 1x1 conv C->max(C/16,1) **with bias**, ReLU, 1x1 conv ->C **with bias** | same (`nn.Conv2d(..., 1, bias=True)` x2, reduction 16) |
| CBAM spatial gate | `sigmoid(conv7x7([mean_c; max_c](x')))`, mean first, 2->1 channels, padding 3, **with bias** | same (`nn.Conv2d(2, 1, 7, padding=3, bias=True)`, `cat([mean, amax])`) |
| CBAM maxima | gradient split evenly among ties (as `amax`) | `Tensor.amax` (same) |
| CBAM params per unit | 2*C*C/16 + C/16 + C + 99 | same (checked by --self-test) |
| FPN | C2-C5 -> P2-P5, 256 ch, 1x1 laterals + 3x3 outputs with bias, nearest 2x top-down, P6 = stride-2 subsample of P5 | `BackboneWithFPN(..., [256, 512, 1024, 2048], 256, LastLevelMaxPool())` |
| anchors | `rbc_dense`: 3 sizes per level `8*2^l*{1, 2^(2/3), 2^(4/3)}` (8/12.7/20.2 at P2 ... 128/203/323 at P6), ratios 0.5/1/2, offset 0, **not rounded** | `AnchorGenerator` with the same sizes/ratios (9 per location); subclassed so the cell anchors are **not rounded** (torchvision rounds them) |
| RPN head | shared 3x3 conv + ReLU, 1x1 objectness (9) and deltas (36) | `RPNHead(256, 9)` (FasterRCNN's default for 9 anchors) |
| RPN matcher / sampler | fg 0.7, bg 0.3, low-quality matches, 256 anchors, 50 % positive | torchvision defaults (same) |
| RPN proposals, training (pre / post NMS) | preset 4000 / 2000; **detector_timing overrides to 2000 / 2000** | 2000 / 2000 (`--preset-proposals`: 4000 / 2000) |
| RPN proposals, inference (pre / post NMS) | preset 2000 / 2000; **detector_timing overrides to 1000 / 1000** | 1000 / 1000 (`--preset-proposals`: 2000 / 2000) |
| RPN NMS / min size / score threshold | 0.7 / 1e-3 / 0.0, pre-NMS top-n per level | torchvision's (same) |
| RPN box coder / loss | weights (1, 1, 1, 1), smooth-L1 beta 1/9 | torchvision's (same) |
| RoI pooler | RoIAlign over P2-P5, 7x7, **adaptive sampling** (ceil(bin)), **aligned=True** (detectron2 ROIAlignV2), FPN eq. 1 level mapping (224, level 4) | `MultiScaleRoIAlign(["0".."3"], 7, sampling_ratio=0)` subclassed to call `roi_align(..., aligned=True)` (torchvision hard-codes aligned=False) |
| box head | `TwoMLPHead` fc6/fc7 1024 + ReLU | `TwoMLPHead(256*7*7, 1024)` |
| predictor | 15 classes (RBC14 + background), class-specific boxes | `FastRCNNPredictor(1024, 15)` |
| RoI matcher / sampler | fg 0.5, bg 0.5, 512 RoIs per image, 25 % positive, GT added to proposals | torchvision defaults, `box_batch_size_per_image=512` |
| RoI box coder / loss | weights (10, 10, 5, 5), smooth-L1 beta 1/9, cross-entropy | torchvision's (same) |
| post-processing | score > 0.05, per-class NMS 0.5, boxes >= 1e-2 px, **1000 detections per image** | `box_score_thresh=0.05`, `box_nms_thresh=0.5`, `box_detections_per_img=1000` |
| input | ImageNet mean/std, **no resizing**, padded to a multiple of 32 | same mean/std; `min_size=480, max_size=640` and the transform's `resize` made the identity (torchvision would run a scale-1.0 bilinear pass); padded to 32 |
| optimiser | SGD lr 0.0025, momentum 0.9, weight decay 1e-4 (`SgdConfig::default`) | `torch.optim.SGD` same |
| precision | f32 (`--precision bf16`: AMX bf16 products) | f32 (`--bf16`: autocast bf16) |

What cannot be matched, or is not:
* Our CPU build fuses CBAM with the residual addition and ReLU into one op with a hand-written
  backward (`arfpn_nn::cbam_add_relu`); PyTorch runs the composed eager ops (pools, MLP,
  sigmoid, mean/amax, 7x7 conv, two multiplications, add, ReLU) and autograd keeps their
  intermediates. That is an implementation difference being measured, not a model difference.
* `detector_timing` flushes subnormal floats to zero by default (`--keep-denormals` turns it
  off); PyTorch does not unless asked: `--flush-denormals` here calls
  `torch.set_flush_denormal(True)` (off by default, as in bench_detector_torchvision.py).
* Initialisation differs in details that do not change the work done (e.g. our CBAM convs use
  Kaiming-normal fan-out, as set here; our box head uses `kaiming_uniform(a=1)`, torchvision's
  `nn.Linear` default). Random streams (sampling, `torch.rand` image) differ, so the sampled
  anchors/RoIs differ, not their counts.
* `detector_timing` reports `first_train_step_ms` (the warm-up step); so does this script.
  The extra keys (`first_train_step_ms`, `*_median`, `params`, ...) come after the keys of
  bench_detector_torchvision.py, whose JSON shape is otherwise kept.
"""
import argparse
import json
import math
import resource
import statistics

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops import poolers as _poolers
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

# The protocol shared with torchvision's plain detector (same folder, so importable when run
# as `python scripts/bench_csarfpn_torch.py`).
from bench_detector_torchvision import synthetic_target, time_steps

NUM_CLASSES = 15  # 14 RBC classes + background, as bench_detector_torchvision.py
FPN_CHANNELS = 256
REDUCTION = 16
SPATIAL_KERNEL = 7
# Our figures (docs/benchmarks.md, "Parameter counts", `cargo run --example param_counts`):
# ResNet-50 + CBAM backbone without fc, and with the 256-channel FPN.
OURS_BACKBONE_PARAMS = 26_040_608
OURS_BACKBONE_FPN_PARAMS = 29_384_992


def rbc_dense_sizes():
    """`AnchorConfig::rbc_dense`: `8 * 2^l * 2^(2k/3)` for levels l = 0..4 (P2-P6), k = 0..2."""
    return tuple(tuple(8.0 * 2.0 ** l * 2.0 ** (2.0 * k / 3.0) for k in range(3)) for l in range(5))


ASPECT_RATIOS = ((0.5, 1.0, 2.0),) * 5


class Cbam(nn.Module):
    """CBAM as `arfpn_nn::cbam`: channel gate then spatial gate, both sigmoid, with biases.

    cw = sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))   [N, C, 1, 1]
    xc = x * cw
    sw = sigmoid(conv7x7(cat[mean_c(xc), max_c(xc)]))  [N, 1, H, W]
    y  = xc * sw
    """

    def __init__(self, channels, reduction=REDUCTION, kernel_size=SPATIAL_KERNEL):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)
        for m in (self.fc1, self.fc2, self.conv):  # ours: KAIMING_FAN_OUT, zero bias
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def mlp(self, d):
        return self.fc2(torch.relu(self.fc1(d)))

    def forward(self, x):
        cw = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True))
                           + self.mlp(x.amax((2, 3), keepdim=True)))
        xc = x * cw
        desc = torch.cat([xc.mean(1, keepdim=True), xc.amax(1, keepdim=True)], 1)
        return xc * torch.sigmoid(self.conv(desc))


def cbam_resnet50():
    """torchvision ResNet-50 with GroupNorm(32) and CBAM after each bottleneck's bn3."""
    body = torchvision.models.resnet50(weights=None, norm_layer=lambda c: nn.GroupNorm(32, c))
    for layer in (body.layer1, body.layer2, body.layer3, body.layer4):
        for block in layer:
            # Bottleneck.forward: out = bn3(conv3(out)); out += identity; relu(out).
            block.bn3 = nn.Sequential(block.bn3, Cbam(block.bn3.num_channels))
    return body


class UnroundedAnchorGenerator(AnchorGenerator):
    """torchvision's AnchorGenerator without `base_anchors.round()` (ours keeps fractions)."""

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32,
                         device=torch.device("cpu")):
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return torch.stack([-ws, -hs, ws, hs], dim=1) / 2


class AlignedMultiScaleRoIAlign(MultiScaleRoIAlign):
    """MultiScaleRoIAlign with `aligned=True` (detectron2's ROIAlignV2, our default)."""

    def forward(self, x, boxes, image_shapes):
        feats = _poolers._filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _poolers._setup_scales(
                feats, image_shapes, self.canonical_scale, self.canonical_level)
        rois = _poolers._convert_to_roi_format(boxes)
        levels = self.map_levels(boxes)
        result = feats[0].new_zeros((len(rois), feats[0].shape[1]) + self.output_size)
        for level, (f, scale) in enumerate(zip(feats, self.scales)):
            idx = torch.where(levels == level)[0]
            r = roi_align(f, rois[idx], output_size=self.output_size, spatial_scale=scale,
                          sampling_ratio=self.sampling_ratio, aligned=True)
            result[idx] = r.to(result.dtype)
        return result


class NoResizeTransform(GeneralizedRCNNTransform):
    """Normalise and pad to 32 only: no resizing (ours: `input.min_size = None`)."""

    def resize(self, image, target=None):
        return image, target


def build_model(height, width, preset_proposals=False):
    backbone = BackboneWithFPN(
        cbam_resnet50(),
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[256, 512, 1024, 2048], out_channels=FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool())
    train_pre, train_post, test_pre, test_post = (
        (4000, 2000, 2000, 2000) if preset_proposals else (2000, 2000, 1000, 1000))
    side = (min(height, width), max(height, width))
    model = FasterRCNN(
        backbone, num_classes=NUM_CLASSES, min_size=side[0], max_size=side[1],
        rpn_anchor_generator=UnroundedAnchorGenerator(rbc_dense_sizes(), ASPECT_RATIOS),
        rpn_pre_nms_top_n_train=train_pre, rpn_post_nms_top_n_train=train_post,
        rpn_pre_nms_top_n_test=test_pre, rpn_post_nms_top_n_test=test_post,
        box_roi_pool=AlignedMultiScaleRoIAlign(["0", "1", "2", "3"], 7, sampling_ratio=0),
        box_batch_size_per_image=512, box_detections_per_img=1000)
    t = model.transform
    model.transform = NoResizeTransform(t.min_size, t.max_size, t.image_mean, t.image_std)
    return model, (train_pre, train_post, test_pre, test_post)


def count(module):
    return sum(p.numel() for p in module.parameters())


def param_breakdown(model):
    body = model.backbone.body
    return {
        "backbone": count(body),
        "backbone_fpn": count(model.backbone),
        "cbam": sum(count(m) for m in body.modules() if isinstance(m, Cbam)),
        "rpn": count(model.rpn),
        "roi_heads": count(model.roi_heads),
        "total": count(model),
    }


def self_test():
    """CBAM against a hand-written loop reference, its placement, anchors, pooler, params."""
    torch.manual_seed(0)
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))
    # 1. CBAM vs plain-Python loops (float64): N=2, C=32 (hidden 2), 5x6, a tie in the maxima.
    n, c, h, w = 2, 32, 5, 6
    m = Cbam(c).double()
    with torch.no_grad():  # non-trivial biases too
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    x[0, 3, 1, 2] = x[0, 3, 4, 4] = x[0, 3].max() + 1.0  # tied channel maximum
    y = m(x)
    W1, b1 = m.fc1.weight[:, :, 0, 0].tolist(), m.fc1.bias.tolist()
    W2, b2 = m.fc2.weight[:, :, 0, 0].tolist(), m.fc2.bias.tolist()
    K, kb = m.conv.weight[0].tolist(), float(m.conv.bias.detach()[0])
    X = x.tolist()
    hid = len(b1)
    worst = 0.0
    for i in range(n):
        avg = [sum(X[i][ch][r][q] for r in range(h) for q in range(w)) / (h * w) for ch in range(c)]
        mx = [max(X[i][ch][r][q] for r in range(h) for q in range(w)) for ch in range(c)]

        def mlp(d):
            z = [max(0.0, sum(W1[j][ch] * d[ch] for ch in range(c)) + b1[j]) for j in range(hid)]
            return [sum(W2[ch][j] * z[j] for j in range(hid)) + b2[ch] for ch in range(c)]

        ma, mm = mlp(avg), mlp(mx)
        cw = [sig(ma[ch] + mm[ch]) for ch in range(c)]
        xc = [[[X[i][ch][r][q] * cw[ch] for q in range(w)] for r in range(h)] for ch in range(c)]
        desc = [[[sum(xc[ch][r][q] for ch in range(c)) / c for q in range(w)] for r in range(h)],
                [[max(xc[ch][r][q] for ch in range(c)) for q in range(w)] for r in range(h)]]
        k = len(K[0])
        for r in range(h):
            for q in range(w):
                acc = kb
                for ci in range(2):
                    for ky in range(k):
                        for kx in range(k):
                            rr, qq = r + ky - k // 2, q + kx - k // 2
                            if 0 <= rr < h and 0 <= qq < w:
                                acc += K[ci][ky][kx] * desc[ci][rr][qq]
                sw = sig(acc)
                for ch in range(c):
                    worst = max(worst, abs(xc[ch][r][q] * sw - float(y[i, ch, r, q])))
    assert worst < 1e-12, f"CBAM vs loop reference: max |diff| {worst}"
    print(f"self-test: CBAM (N=2, C=32, 5x6, float64) vs loop reference: max |diff| = {worst:.2e}")
    # The tie shares the channel maximum's gradient equally (as our fused op).
    xt = torch.zeros(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    xt.data[0, 0, 0, 0] = xt.data[0, 0, 1, 1] = 1.0
    xt.amax((2, 3)).sum().backward()
    assert xt.grad[0, 0, 0, 0] == xt.grad[0, 0, 1, 1] == 0.5
    # crates/arfpn-kernels/src/cbam.rs doc example: ones, zero weights -> both gates 0.5.
    z = Cbam(4, reduction=2)
    with torch.no_grad():
        for p in z.parameters():
            p.zero_()
        s = float(z(torch.ones(1, 4, 5, 5)).sum())
    assert s == 100 * 0.25, s
    print("self-test: zero-weight CBAM on ones(1,4,5,5) sums to 25.0 (as the Rust doc test)")
    assert torch.autograd.gradcheck(m, (x[:1, :, :3, :4].clone().requires_grad_(),))
    print("self-test: CBAM gradcheck passed")

    # 2. Placement: a bottleneck computes relu(cbam(bn3(conv3(...))) + shortcut(x)).
    body = cbam_resnet50().eval()
    blk = body.layer2[0]
    xb = torch.randn(1, 256, 16, 16)
    with torch.no_grad():
        o = blk.relu(blk.bn1(blk.conv1(xb)))
        o = blk.relu(blk.bn2(blk.conv2(o)))
        o = blk.bn3[1](blk.bn3[0](blk.conv3(o)))
        want = torch.relu(o + blk.downsample(xb))
        got = blk(xb)
    assert torch.equal(got, want)
    n_cbam = sum(isinstance(mm, Cbam) for mm in body.modules())
    assert n_cbam == 16, n_cbam
    assert all(isinstance(mm, nn.GroupNorm) and mm.num_groups == 32 and mm.eps == 1e-5
               for mm in body.modules() if "Norm" in type(mm).__name__)
    print("self-test: CBAM after bn3 before the addition, in all 16 bottlenecks; GroupNorm(32)")

    # 3. Anchors: 9 per location, unrounded, P2's first size-8 ratio-0.5 anchor.
    model, _ = build_model(64, 96)
    ag = model.rpn.anchor_generator
    assert ag.num_anchors_per_location() == [9] * 5
    a0 = ag.cell_anchors[0][0].tolist()  # ratio 0.5 (outer), size 8 (inner)
    want0 = [-8 / math.sqrt(0.5) / 2, -8 * math.sqrt(0.5) / 2, 8 / math.sqrt(0.5) / 2,
             8 * math.sqrt(0.5) / 2]
    assert max(abs(u - v) for u, v in zip(a0, want0)) < 1e-6, a0
    print(f"self-test: anchors 9/location, unrounded (P2 first: {[round(v, 4) for v in a0]}); "
          f"sizes {[[round(s, 1) for s in lv] for lv in rbc_dense_sizes()]}")

    # 4. Pooler: aligned=True, adaptive sampling, level mapping as torchvision's.
    feats = {str(i): torch.randn(1, 8, 64 >> i, 64 >> i) for i in range(4)}
    bx = [torch.tensor([[3.0, 5.0, 40.5, 30.25], [0.0, 0.0, 250.0, 240.0]])]
    got = model.roi_heads.box_roi_pool(feats, bx, [(256, 256)])
    lv = model.roi_heads.box_roi_pool.map_levels(bx).tolist()
    want = torch.cat([roi_align(feats[str(l)], [b[None]], 7, 1 / 4 / 2 ** l, 0, aligned=True)
                      for l, b in zip(lv, bx[0])])
    assert torch.equal(got, want), (got - want).abs().max()
    print(f"self-test: RoIAlign aligned=True, sampling 0, levels {lv} for a 37x25 and a 250x240 box")

    # 5. Parameter counts against docs/benchmarks.md (backbone, backbone + FPN).
    # (BackboneWithFPN's IntermediateLayerGetter stops at layer4: no avgpool, no fc.)
    pb = param_breakdown(model)
    print(f"self-test: parameters {json.dumps(pb)}")
    assert pb["backbone"] == OURS_BACKBONE_PARAMS, (pb["backbone"], OURS_BACKBONE_PARAMS)
    assert pb["backbone_fpn"] == OURS_BACKBONE_FPN_PARAMS, (pb["backbone_fpn"],
                                                            OURS_BACKBONE_FPN_PARAMS)
    print(f"self-test: backbone {pb['backbone']} and backbone+FPN {pb['backbone_fpn']} "
          f"parameters = ours (docs/benchmarks.md: {OURS_BACKBONE_PARAMS}, "
          f"{OURS_BACKBONE_FPN_PARAMS})")
    print("self-test: OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (CPU)")
    ap.add_argument("--preset-proposals", action="store_true",
                    help="the preset's 4000/2000 training and 2000/2000 test proposals instead "
                         "of detector_timing's 2000/2000 and 1000/1000")
    ap.add_argument("--flush-denormals", action="store_true",
                    help="torch.set_flush_denormal(True), as detector_timing does by default")
    ap.add_argument("--skip-train", action="store_true", help="time inference only")
    ap.add_argument("--self-test", action="store_true",
                    help="check CBAM against a loop reference, its placement, anchors, pooler "
                         "and parameter counts, then exit")
    a = ap.parse_args()
    if a.threads < 1 or a.runs < 1:
        ap.error("--threads and --runs must be at least 1")
    torch.set_num_threads(a.threads)
    if a.self_test:
        self_test()
        return
    if a.flush_denormals:
        torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model, proposals = build_model(a.height, a.width, a.preset_proposals)
    params = param_breakdown(model)
    image = torch.rand(3, a.height, a.width)
    target = synthetic_target(a.height, a.width)
    ti_all, tt_all, first_train = time_steps(model, image, target, a.threads, a.runs, a.bf16,
                                             a.skip_train)
    ms = lambda v: None if a.skip_train else v * 1e3
    out = {"model": "cs-arfpn-r50", "threads": a.threads, "bf16": a.bf16,
           "infer_ms": min(ti_all) * 1e3,
           "train_step_ms": ms(min(tt_all)),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "torch": torch.__version__, "torchvision": torchvision.__version__,
           "first_train_step_ms": ms(first_train),
           "infer_ms_median": statistics.median(ti_all) * 1e3,
           "train_step_ms_median": ms(statistics.median(tt_all)),
           "runs": a.runs, "height": a.height, "width": a.width,
           "proposals": dict(zip(["train_pre", "train_post", "test_pre", "test_post"], proposals)),
           "flush_denormals": a.flush_denormals, "params": params["total"]}
    if not a.json:
        print(f"parameters: {json.dumps(params)}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
