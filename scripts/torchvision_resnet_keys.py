"""Writes the parameter names and shapes of torchvision's ResNet-18/50 state_dict (random init,
no download) to crates/arfpn-backbone/tests/data/, for the name-compatibility test.

Usage: /work/venv-torch/bin/python scripts/torchvision_resnet_keys.py
"""
import json
import pathlib

import torchvision

out = pathlib.Path(__file__).resolve().parent.parent / "crates/arfpn-backbone/tests/data"
for name in ["resnet18", "resnet50"]:
    sd = getattr(torchvision.models, name)().state_dict()
    keys = [[k, list(v.shape)] for k, v in sd.items()]
    (out / f"torchvision_{name}_keys.json").write_text(json.dumps(keys))
    print(name, len(keys), "tensors")
