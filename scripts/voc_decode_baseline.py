"""Side-by-side baseline for arfpn-voc's loading benchmark: decode BCCD train with PIL
(what torchvision's VOCDetection does) and parse its XML with ElementTree, single thread.

usage: python scripts/voc_decode_baseline.py [DATA_DIR]   (default ../shared/data)
"""
import sys, time, os
import xml.etree.ElementTree as ET
from PIL import Image

root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "../shared/data", "bccd")
ids = open(os.path.join(root, "ImageSets/Main/train.txt")).read().split()

def xml_pass():
    n = 0
    for i in ids:
        t = ET.parse(os.path.join(root, "Annotations", i + ".xml"))
        n += len(t.findall("object"))
    return n

def decode_pass():
    for i in ids:
        Image.open(os.path.join(root, "JPEGImages", i + ".jpg")).convert("RGB").load()

for name, f in [("xml_parse", xml_pass), ("pil_decode_rgb", decode_pass)]:
    f()  # warm-up
    best = min((lambda t0: (f(), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(5))
    print(f"{name}: {len(ids) / best:.0f} images/s ({best * 1000:.1f} ms for {len(ids)} images, best of 5)")
