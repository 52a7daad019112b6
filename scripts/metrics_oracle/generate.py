"""Generates dense synthetic detection cases in COCO form (ground truth + results).

Blood-smear-like fields: 100-250 boxes of ~20 px per image (a few medium and large ones so
every COCO area range is populated), 14 classes with a skewed frequency (one class never in
the ground truth), difficult / ignore / iscrowd flags, and detections jittered from the
ground truth with wrong classes, duplicates, false positives, exact copies and scores
rounded to 2-3 decimals (so ties happen). Deterministic for a given seed.

Used by oracle.py (the exactness oracle of arfpn-metrics) and bench_python.py.
"""

import math
import random


def make_case(seed, n_images, n_boxes=(100, 250), n_classes=14, det_ratio=1.2,
              flags=True, width=512, height=512):
    rng = random.Random(seed)
    weights = [1.0 / (1 + k) for k in range(n_classes)]
    weights[n_classes - 1] = 0.0  # the last class never occurs in the ground truth
    images, anns, dets = [], [], []
    ann_id = 1
    # Image ids are neither contiguous nor sorted in the file.
    image_ids = rng.sample(range(1, 10 * n_images + 10), n_images)
    for idx, img_id in enumerate(image_ids):
        images.append({"id": img_id, "width": width, "height": height,
                       "file_name": f"{img_id}.jpg"})
        if idx == 0 and n_images > 2:
            continue  # an empty image
        n = rng.randint(*n_boxes)
        gts = []
        for _ in range(n):
            u = rng.random()
            if u < 0.80:
                w, h = max(4.0, rng.gauss(20, 3)), max(4.0, rng.gauss(20, 3))
            elif u < 0.95:
                w, h = rng.uniform(32, 70), rng.uniform(32, 70)
            else:
                w, h = rng.uniform(96, 130), rng.uniform(96, 130)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            x, y, w, h = round(x, 2), round(y, 2), round(w, 2), round(h, 2)
            cls = rng.choices(range(n_classes), weights)[0]
            a = {"id": ann_id, "image_id": img_id, "category_id": 100 + 3 * cls,
                 "bbox": [x, y, w, h], "area": round(math.pi / 4 * w * h, 2), "iscrowd": 0}
            if flags:
                f = rng.random()
                if f < 0.04:
                    a["difficult"] = 1
                elif f < 0.06:
                    a["ignore"] = 1
                elif f < 0.075:
                    a["iscrowd"] = 1
            ann_id += 1
            anns.append(a)
            gts.append(a)
        if idx == 1 and n_images > 2:
            gts_for_dets = []  # an image with ground truth and no detections
        else:
            gts_for_dets = gts
        n_target = int(det_ratio * len(gts))
        img_dets = []
        for g in gts_for_dets:
            if rng.random() > 0.85:
                continue
            x, y, w, h = g["bbox"]
            cls = (g["category_id"] - 100) // 3
            if rng.random() < 0.1:
                cls = rng.randrange(n_classes)
            for dup in range(2 if rng.random() < 0.1 else 1):
                if rng.random() < 0.05:
                    bb = [x, y, w, h]  # exact copy: IoU 1
                else:
                    s = 0.12 if dup == 0 else 0.25
                    bb = [round(x + rng.gauss(0, s * w), 2), round(y + rng.gauss(0, s * h), 2),
                          round(w * math.exp(rng.gauss(0, s)), 2),
                          round(h * math.exp(rng.gauss(0, s)), 2)]
                score = round(rng.betavariate(4, 2) * (0.7 if dup else 1.0), rng.choice([2, 3]))
                img_dets.append({"image_id": img_id, "category_id": 100 + 3 * cls,
                                 "bbox": bb, "score": score})
        while len(img_dets) < n_target:
            w, h = max(4.0, rng.gauss(20, 5)), max(4.0, rng.gauss(20, 5))
            bb = [round(rng.uniform(0, width - w), 2), round(rng.uniform(0, height - h), 2),
                  round(w, 2), round(h, 2)]
            img_dets.append({"image_id": img_id,
                             "category_id": 100 + 3 * rng.randrange(n_classes),
                             "bbox": bb, "score": round(rng.betavariate(2, 4), 2)})
        dets.extend(img_dets)
    # Interleave images in the results file (file order breaks VOC ties).
    rng.shuffle(dets)
    cats = [{"id": 100 + 3 * k, "name": f"class_{k:02d}"} for k in range(n_classes)]
    rng.shuffle(cats)
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, dets
