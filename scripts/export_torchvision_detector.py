#!/usr/bin/env python3
"""Saves a torchvision Faster R-CNN's state dict as safetensors, for
`cargo run --release --example import_torchvision -- --weights OUT ...`.

    python scripts/export_torchvision_detector.py MODEL OUT.safetensors

MODEL is a file written by `torch.save(model.state_dict(), MODEL)` or by
`torch.save(model, MODEL)` (a whole FasterRCNN), or the name of a torchvision builder with
COCO weights (`fasterrcnn_resnet50_fpn`, which torch downloads). Tensors are written as
they are (f32; `num_batches_tracked` counters too: the importer skips them).
Needs torch, torchvision and safetensors.
"""
import sys

import torch
import torchvision
from safetensors.torch import save_file


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    if hasattr(torchvision.models.detection, src):
        state = getattr(torchvision.models.detection, src)(weights="DEFAULT").state_dict()
    else:
        obj = torch.load(src, map_location="cpu", weights_only=False)
        state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    tensors = {k: v.detach().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    save_file(tensors, out)
    print(f"{out}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
