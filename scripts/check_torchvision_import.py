#!/usr/bin/env python3
"""End-to-end check of `import_torchvision` on a full-size torchvision Faster R-CNN.

1. torchvision's `fasterrcnn_resnet50_fpn` (or `--arch resnet18`: `resnet_fpn_backbone`)
   for 3 classes, built from scratch (BatchNorm2d, so `num_batches_tracked` counters are in
   the state dict), with the oracle's seeded peaked random weights, `min_size`/`max_size`
   480/640; its state dict is saved as safetensors and its detections on the given PNG
   images are written as JSON:

       python scripts/check_torchvision_import.py make --out /tmp/tv IMAGE.png ...

2. import and detect with arfpn (score 0: every detection, no tiling or rescaling):

       cargo run --release --example import_torchvision -- --weights /tmp/tv/model.safetensors \\
           --preset fpn-r50 --classes a,b,c --min-size 480 --max-size 640 --out /tmp/tv/arfpn.safetensors
       cargo run --release --example detect -- --checkpoint /tmp/tv/arfpn.safetensors --score 0 \\
           --tile off --rescale off --out /tmp/tv/detect IMAGE.png ...

3. compare (prints per image: counts, worst IoU and score difference over the detections
   paired by label, score (within 1e-4) and IoU, and how many found no partner):

       python scripts/check_torchvision_import.py compare --out /tmp/tv

Needs torch, torchvision, safetensors, numpy, pillow.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.models.detection import FasterRCNN, fasterrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import box_iou

sys.path.insert(0, os.path.dirname(__file__))
from make_torchvision_oracle import peaked_weights  # noqa: E402


def make(args):
    torch.set_num_threads(2)
    kw = dict(num_classes=4, min_size=480, max_size=640)
    if args.arch == "resnet50":
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kw)
    else:
        model = FasterRCNN(resnet_fpn_backbone(backbone_name=args.arch, weights=None,
                                               norm_layer=torch.nn.BatchNorm2d), **kw)
    model.eval()
    paths = args.images
    images = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float() / 255
              for p in paths]
    weights = peaked_weights(model, args.seed, images)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    os.makedirs(args.out, exist_ok=True)
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
              os.path.join(args.out, "model.safetensors"))
    out = {}
    with torch.no_grad():
        for p, im in zip(paths, images):
            d = model([im])[0]
            out[os.path.basename(p)] = {k: d[k].tolist() for k in ("boxes", "scores", "labels")}
            print(f"{p}: {len(d['boxes'])} detections")
    with open(os.path.join(args.out, "torchvision.json"), "w") as f:
        json.dump(out, f)


def compare(args):
    tv = json.load(open(os.path.join(args.out, "torchvision.json")))
    ids = {r["id"]: os.path.basename(r["file_name"]) for r in json.load(open(os.path.join(args.out, "detect", "images.json")))}
    ours = {name: [] for name in ids.values()}
    for r in json.load(open(os.path.join(args.out, "detect", "detections.json"))):
        ours[ids[r["image_id"]]].append(r)
    worst_iou, worst_score, all_ok = 1.0, 0.0, True
    for name, t in tv.items():
        o = ours.get(name, [])
        tb = torch.tensor(t["boxes"]).reshape(-1, 4)
        ob = torch.tensor([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]] for r in o]).reshape(-1, 4)
        # Pair each of torchvision's detections with one of ours: the same label, scores
        # within 1e-4, the best IoU, one to one. Two detections whose scores differ by less
        # than the rounding may come out in either order, so order alone does not pair them.
        iou_all = box_iou(tb, ob) if len(tb) and len(ob) else torch.zeros(len(tb), len(ob))
        used, ious, dss = set(), [], []
        for i in range(len(tb)):
            best = None
            for j in range(len(ob)):
                if j in used or o[j]["category_id"] != t["labels"][i]:
                    continue
                d = abs(t["scores"][i] - o[j]["score"])
                if d <= 1e-4 and (best is None or iou_all[i, j] > best[0]):
                    best = (iou_all[i, j].item(), j, d)
            if best is not None:
                used.add(best[1])
                ious.append(best[0])
                dss.append(best[2])
        n = len(ious)
        iou = torch.tensor(ious)
        ds = torch.tensor(dss)
        unpaired = len(tb) - n  # torchvision's detections with no partner of the same label
        ok = len(tb) == len(ob) and unpaired == 0 and (n == 0 or (iou.min() >= 0.999 and ds.max() <= 1e-4))
        all_ok &= bool(ok)
        if n:
            worst_iou, worst_score = min(worst_iou, iou.min().item()), max(worst_score, ds.max().item())
        print(f"{name}: torchvision {len(tb)}, arfpn {len(ob)}, min IoU {iou.min().item() if n else 1:.6f}, "
              f"max |dscore| {ds.max().item() if n else 0:.2e}, unpaired {unpaired}{'' if ok else '  <-- differs'}")
    print(f"all images: min IoU {worst_iou:.6f}, max |dscore| {worst_score:.2e}: {'SAME' if all_ok else 'DIFFERENT'}")
    sys.exit(0 if all_ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50", "resnet101"])
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("images", nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    make(args) if args.cmd == "make" else compare(args)


if __name__ == "__main__":
    main()
