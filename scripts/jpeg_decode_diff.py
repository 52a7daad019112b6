#!/usr/bin/env python3
"""How arfpn's JPEG decoding differs from PIL's (libjpeg-turbo): per image and over all.

    cargo run --release --example to_png -- ../shared/data/bccd/JPEGImages --out /tmp/bccd-png
    python scripts/jpeg_decode_diff.py ../shared/data/bccd/JPEGImages /tmp/bccd-png

Prints the maximum and mean absolute difference per channel value (0-255 scale) and the
share of values that differ, over all images, and the worst image. Needs numpy and pillow.
"""
import os
import sys

import numpy as np
from PIL import Image


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    jpeg_dir, png_dir = sys.argv[1], sys.argv[2]
    names = sorted(f for f in os.listdir(jpeg_dir) if f.lower().endswith((".jpg", ".jpeg")))
    total = diff_sum = differing = 0
    worst = (0, "")
    hist = np.zeros(256, dtype=np.int64)
    for f in names:
        ours_path = os.path.join(png_dir, os.path.splitext(f)[0] + ".png")
        if not os.path.exists(ours_path):
            continue
        pil = np.asarray(Image.open(os.path.join(jpeg_dir, f)).convert("RGB")).astype(np.int16)
        ours = np.asarray(Image.open(ours_path).convert("RGB")).astype(np.int16)
        if pil.shape != ours.shape:
            sys.exit(f"{f}: PIL {pil.shape}, arfpn {ours.shape}")
        d = np.abs(pil - ours)
        hist += np.bincount(d.ravel(), minlength=256)
        total += d.size
        diff_sum += int(d.sum())
        differing += int((d > 0).sum())
        if d.max() > worst[0]:
            worst = (int(d.max()), f)
    n = len(names)
    levels = np.nonzero(hist)[0]
    print(f"{n} images, {total} values: max |diff| {levels.max()}, mean |diff| {diff_sum / total:.4f}, "
          f"{100 * differing / total:.2f} % of values differ; worst image {worst[1]} (max {worst[0]})")
    print("histogram of |diff|: " + ", ".join(f"{v}: {100 * hist[v] / total:.3f} %" for v in levels))


if __name__ == "__main__":
    main()
