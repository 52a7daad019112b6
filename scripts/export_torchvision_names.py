#!/usr/bin/env python3
"""Writes crates/arfpn/tests/golden/torchvision_fasterrcnn_resnet50_fpn.txt: every tensor of
torchvision's fasterrcnn_resnet50_fpn(num_classes=91) state dict as `name shape` lines (no
weights: the names and shapes are the contract). FrozenBatchNorm2d buffers are included, as a
torchvision checkpoint holds them.

    /tmp/tv/bin/python scripts/export_torchvision_names.py
"""
import os

import torchvision
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.ops import misc as misc_nn_ops
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection import FasterRCNN

backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None,
                               norm_layer=misc_nn_ops.FrozenBatchNorm2d, trainable_layers=5)
model = FasterRCNN(backbone, num_classes=91)
lines = [f"{k} {'x'.join(str(d) for d in v.shape)}" for k, v in model.state_dict().items()]
path = os.path.join(os.path.dirname(__file__), "..", "crates", "arfpn", "tests", "golden",
                    "torchvision_fasterrcnn_resnet50_fpn.txt")
with open(path, "w") as f:
    f.write(f"# torchvision {torchvision.__version__} fasterrcnn_resnet50_fpn(num_classes=91), FrozenBatchNorm2d\n")
    f.write("\n".join(lines) + "\n")
print(f"wrote {len(lines)} names to {os.path.normpath(path)}")
