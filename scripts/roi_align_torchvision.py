"""Writes crates/arfpn-roi-align/tests/data/torchvision_roi.safetensors: a small input, boxes
(inside, partly and wholly outside, degenerate, tiny, two images), and torchvision's
roi_align / roi_pool outputs and input gradients for every aligned / sampling_ratio
combination. Run with a Python that has torch + torchvision (e.g. /work/venv-torch):

    /work/venv-torch/bin/python scripts/roi_align_torchvision.py

The safetensors file is written by hand (no safetensors package needed). The Rust test
tests/torchvision_fixture.rs checks our ops against it to ~1e-5.
"""
import json
import os
import struct

import torch
import torchvision
from torchvision.ops import roi_align, roi_pool

torch.manual_seed(0)
torch.set_num_threads(2)

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "arfpn-roi-align", "tests", "data",
                   "torchvision_roi.safetensors")

N, C, H, W = 2, 3, 9, 11
SCALE = 0.5  # boxes are in image coordinates of a 18x22 image
OUTPUT = (3, 4)
x = torch.randn(N, C, H, W, dtype=torch.float32)
boxes = torch.tensor([
    [0, 2.0, 3.0, 15.0, 12.0],     # inside
    [1, 0.0, 0.0, 22.0, 18.0],     # the whole image
    [0, -6.0, -4.0, 5.0, 7.0],     # partly outside (top left)
    [1, 14.0, 10.0, 30.0, 25.0],   # partly outside (bottom right)
    [0, 40.0, 40.0, 50.0, 44.0],   # wholly outside
    [1, 5.0, 5.0, 5.0, 5.0],       # zero size
    [0, 7.3, 4.1, 7.9, 4.4],       # tiny
    [1, 9.7, 2.2, 9.1, 8.8],       # inverted in x
    [0, 3.25, 1.75, 20.5, 16.25],  # fractional
    [1, -1.9, 16.6, 3.3, 18.9],    # touches the bottom border
    [0, 21.0, 0.0, 22.0, 18.0],    # one pixel wide column at the right border
    [1, 1.0, 1.0, 3.0, 3.0],       # small
], dtype=torch.float32)
K = boxes.shape[0]
grad_out = torch.randn(K, C, *OUTPUT, dtype=torch.float32)

tensors = {"input": x, "boxes": boxes, "grad_out": grad_out}
meta = {"spatial_scale": str(SCALE), "output_size": f"{OUTPUT[0]},{OUTPUT[1]}",
        "torch": torch.__version__, "torchvision": torchvision.__version__}
for aligned in (False, True):
    for sampling in (0, 2, -1, 3):
        xi = x.clone().requires_grad_(True)
        y = roi_align(xi, boxes, OUTPUT, spatial_scale=SCALE, sampling_ratio=sampling, aligned=aligned)
        y.backward(grad_out)
        tag = f"align_{'a' if aligned else 'u'}_s{sampling}".replace("-", "m")
        tensors[tag + "_out"] = y.detach()
        tensors[tag + "_grad"] = xi.grad.detach()
xi = x.clone().requires_grad_(True)
y = roi_pool(xi, boxes, OUTPUT, spatial_scale=SCALE)
y.backward(grad_out)
tensors["pool_out"] = y.detach()
tensors["pool_grad"] = xi.grad.detach()

header, blobs, off = {"__metadata__": meta}, [], 0
for name, t in tensors.items():
    b = t.contiguous().numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print(f"wrote {os.path.normpath(OUT)} ({8 + len(h) + off} bytes, {len(tensors)} tensors)")
