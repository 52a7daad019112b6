#!/usr/bin/env python3
"""Exports the torchvision reference case for crates/arfpn-head/tests/torchvision.rs.

A torchvision RoIHeads (MultiScaleRoIAlign over two levels, TwoMLPHead, FastRCNNPredictor)
with seeded random weights runs on fixed features and proposals: in training mode (every
proposal is sampled, so the loss does not depend on torch's random sampling order) for the
losses, and in eval mode for the class probabilities and the post-processed detections.
Writes crates/arfpn-head/tests/fixtures/torchvision_head.safetensors (torch names, background
class in column 0 as torchvision has it).

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision safetensors
    /tmp/tv/bin/python scripts/export_head_fixture.py
"""
import collections
import os

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import MultiScaleRoIAlign

torch.manual_seed(0)
C, REP, NUM_CLASSES = 4, 16, 3  # NUM_CLASSES includes background (torchvision)
H, W = 64, 64
pooler = MultiScaleRoIAlign(["0", "1"], output_size=7, sampling_ratio=2)
head = TwoMLPHead(C * 7 * 7, REP)
predictor = FastRCNNPredictor(REP, NUM_CLASSES)
for p in list(head.parameters()) + list(predictor.parameters()):
    torch.nn.init.normal_(p, std=0.1)
roi_heads = RoIHeads(
    pooler, head, predictor,
    fg_iou_thresh=0.5, bg_iou_thresh=0.5,
    batch_size_per_image=512, positive_fraction=0.25,
    bbox_reg_weights=None,
    score_thresh=0.05, nms_thresh=0.5, detections_per_img=100,
).double()
features = collections.OrderedDict(
    [("0", torch.randn(1, C, 16, 16, dtype=torch.float64)),
     ("1", torch.randn(1, C, 8, 8, dtype=torch.float64))]
)
proposals = torch.tensor(
    [[3.3, 4.1, 30.2, 40.7], [10.4, 2.2, 50.9, 33.3], [20.7, 20.1, 60.2, 61.6],
     [1.6, 30.4, 14.3, 55.8], [0.5, 0.5, 63.0, 63.5], [8.0, 9.0, 20.0, 21.0],
     [30.0, 5.0, 62.0, 28.0], [12.0, 40.0, 40.0, 63.0]], dtype=torch.float64)
gt_boxes = torch.tensor([[5.0, 5.0, 32.0, 38.0], [22.0, 18.0, 58.0, 60.0]], dtype=torch.float64)
gt_labels = torch.tensor([1, 2])  # torchvision: 1..K; ours: class = label - 1
image_shapes = [(H, W)]

roi_heads.train()
_, losses = roi_heads(features, [proposals], image_shapes,
                      [{"boxes": gt_boxes, "labels": gt_labels}])
roi_heads.eval()
with torch.no_grad():
    pooled = pooler(features, [proposals], image_shapes)
    logits, deltas = predictor(head(pooled))
    dets, _ = roi_heads(features, [proposals], image_shapes)

out = {
    "features.p2": features["0"], "features.p3": features["1"],
    "proposals": proposals, "gt.boxes": gt_boxes, "gt.labels": gt_labels.to(torch.int64),
    "expected.class_logits": logits, "expected.box_deltas": deltas,
    "expected.loss_classifier": losses["loss_classifier"].detach().reshape(1),
    "expected.loss_box_reg": losses["loss_box_reg"].detach().reshape(1),
    "expected.boxes": dets[0]["boxes"], "expected.scores": dets[0]["scores"],
    "expected.labels": dets[0]["labels"].to(torch.int64),
}
for name, t in list(head.state_dict().items()):
    out["roi_heads.box_head." + name] = t.double()
for name, t in list(predictor.state_dict().items()):
    out["roi_heads.box_predictor." + name] = t.double()
path = os.path.join(os.path.dirname(__file__), "..", "crates", "arfpn-head", "tests",
                    "fixtures", "torchvision_head.safetensors")
save_file({k: v.contiguous() for k, v in out.items()}, path,
          metadata={"torch": torch.__version__, "torchvision": torchvision.__version__})
print(f"wrote {os.path.normpath(path)}: {len(dets[0]['boxes'])} detections, losses "
      f"{losses['loss_classifier'].item():.6f} / {losses['loss_box_reg'].item():.6f}")
