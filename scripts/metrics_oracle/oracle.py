"""Exactness oracle for arfpn-metrics.

Writes generated cases (COCO GT + results JSON) and, for each, the values of
  * a straight Python port of the PASCAL VOC devkit (VOCevaldet.m + VOCap), under every
    option combination arfpn-metrics offers (>= / >, continuous / +1, difficult policy),
  * pycocotools' COCOeval (precision and recall arrays, the 12 stats, per-class AP),
to OUT/expected.json. The Rust test crates/arfpn-metrics/tests/oracle.rs compares.

Usage: python oracle.py OUT_DIR
Needs numpy and pycocotools (scripts/oracle-env.sh installs them).
"""

import contextlib
import io
import json
import math
import os
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import make_case  # noqa: E402

CASES = [
    # name, seed, images, boxes per image, classes, maxDets[-1]
    ("dense14", 1, 6, (100, 250), 14, 100),
    ("dense3_cap100", 2, 4, (150, 250), 3, 100),
    ("dense3_cap300", 3, 4, (150, 250), 3, 300),
    ("dense5_cap10", 4, 5, (100, 150), 5, 10),
    ("sparse", 5, 12, (0, 6), 4, 100),
]


# ---------------------------------------------------------------- VOC devkit, straight port
def voc_class(gt, dets, cat, strict, plus_one, policy):
    """VOCevaldet.m for one class. gt/dets: COCO dicts; returns (ap11, ap_all, npos, tp, fp)."""
    one = 1.0 if plus_one else 0.0
    recs = {}
    for a in gt["annotations"]:
        if a["category_id"] != cat:
            continue
        diff = bool(a.get("difficult", 0) or a.get("ignore", 0) or a.get("iscrowd", 0))
        if policy == "drop" and diff:
            continue
        if policy == "asgt":
            diff = False
        x, y, w, h = a["bbox"]
        r = recs.setdefault(a["image_id"], {"bb": [], "diff": [], "det": []})
        r["bb"].append((x, y, x + w, y + h))
        r["diff"].append(diff)
        r["det"].append(False)
    npos = sum(1 for r in recs.values() for d in r["diff"] if not d)
    ds = [d for d in dets if d["category_id"] == cat]
    conf = np.array([d["score"] for d in ds], dtype=float)
    si = np.argsort(-conf, kind="stable")  # MATLAB sort is stable
    nd = len(ds)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for k in range(nd):
        d = ds[si[k]]
        x, y, w, h = d["bbox"]
        bb = (x, y, x + w, y + h)
        r = recs.get(d["image_id"], {"bb": [], "diff": [], "det": []})
        ovmax = -math.inf
        jmax = -1
        for j, bbgt in enumerate(r["bb"]):
            bi = (max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3]))
            iw = bi[2] - bi[0] + one
            ih = bi[3] - bi[1] + one
            if iw > 0 and ih > 0:
                ua = ((bb[2] - bb[0] + one) * (bb[3] - bb[1] + one)
                      + (bbgt[2] - bbgt[0] + one) * (bbgt[3] - bbgt[1] + one) - iw * ih)
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax = ov
                    jmax = j
        ok = (ovmax > 0.5) if strict else (ovmax >= 0.5)
        if ok:
            if not r["diff"][jmax]:
                if not r["det"][jmax]:
                    tp[k] = 1
                    r["det"][jmax] = True
                else:
                    fp[k] = 1
        else:
            fp[k] = 1
    fpc = np.cumsum(fp)
    tpc = np.cumsum(tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tpc / npos
        prec = tpc / (fpc + tpc)  # NaN where 0/0, as MATLAB
    ap11 = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        sel = prec[rec >= t]
        if sel.size == 0:
            p = 0.0
        else:
            p = float(np.nanmax(sel)) if not np.all(np.isnan(sel)) else math.nan
        ap11 = ap11 + p / 11
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 2, -1, -1):
        mpre[i] = np.fmax(mpre[i], mpre[i + 1])  # MATLAB max ignores NaN
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    ap_all = 0.0
    for i in idx:
        ap_all += (mrec[i] - mrec[i - 1]) * mpre[i]
    if npos == 0:
        ap11 = ap_all = None
    return ap11, ap_all, npos, int(tp.sum()), int(fp.sum())


def voc_all(gt, dets, cat_ids):
    out = []
    for strict in (False, True):
        for plus_one in (False, True):
            for policy in ("ignore", "asgt", "drop"):
                rows = [voc_class(gt, dets, c, strict, plus_one, policy) for c in cat_ids]
                out.append({"strict": strict, "plus_one": plus_one, "difficult": policy,
                            "ap11": [r[0] for r in rows], "ap_all": [r[1] for r in rows],
                            "npos": [r[2] for r in rows], "tp": [r[3] for r in rows],
                            "fp": [r[4] for r in rows]})
    return out


# ---------------------------------------------------------------- pycocotools
class COCOevalDifficult(COCOeval):
    """COCOeval that also ignores `difficult` / `ignore` boxes (pycocotools itself only
    honours `iscrowd`); arfpn-metrics treats them as ignored, non-crowd boxes."""

    def _prepare(self):
        super()._prepare()
        for gts in self._gts.values():
            for g in gts:
                g["ignore"] = int(bool(g.get("iscrowd", 0) or g.get("difficult", 0)
                                       or g.get("orig_ignore", 0)))


def coco_eval(gt, dets, max_det):
    gt = json.loads(json.dumps(gt))
    for a in gt["annotations"]:
        if "ignore" in a:
            a["orig_ignore"] = a.pop("ignore")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        cdt = coco.loadRes(json.loads(json.dumps(dets)))
        E = COCOevalDifficult(coco, cdt, "bbox")
        E.params.maxDets = [1, 10, max_det]
        E.evaluate()
        E.accumulate()
        E.summarize()
    prec = E.eval["precision"]
    rec = E.eval["recall"]
    p = E.params

    def mean(s):
        s = s[s > -1]
        return None if s.size == 0 else float(np.mean(s))

    # summarize()'s formulas, with the last maxDets everywhere it means "maxDets[2]"
    # (summarize() hard-codes 100 for stats[0]; identical when maxDets[2] == 100).
    t50 = np.where(p.iouThrs == 0.5)[0]
    t75 = np.where(p.iouThrs == 0.75)[0]
    stats = [mean(prec[:, :, :, 0, 2]), mean(prec[t50][:, :, :, 0, 2]),
             mean(prec[t75][:, :, :, 0, 2])]
    stats += [mean(prec[:, :, :, a, 2]) for a in (1, 2, 3)]
    stats += [mean(rec[:, :, 0, m]) for m in (0, 1, 2)]
    stats += [mean(rec[:, :, a, 2]) for a in (1, 2, 3)]
    if max_det == 100:
        assert [(-1 if s is None else s) for s in stats] == list(E.stats), (stats, E.stats)
    per_class = []
    for k in range(len(p.catIds)):
        per_class.append({"ap": mean(prec[:, :, k, 0, 2]), "ap50": mean(prec[t50][:, :, k, 0, 2]),
                          "ap75": mean(prec[t75][:, :, k, 0, 2])})
    return {"stats": stats, "precision": prec.ravel().tolist(), "recall": rec.ravel().tolist(),
            "precision_shape": list(prec.shape), "per_class": per_class}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = []
    for name, seed, n_img, boxes, n_cls, max_det in CASES:
        gt, dets = make_case(seed, n_img, boxes, n_cls)
        gt_path = os.path.join(out, f"{name}_gt.json")
        det_path = os.path.join(out, f"{name}_dets.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        with open(det_path, "w") as f:
            json.dump(dets, f)
        cat_ids = sorted(c["id"] for c in gt["categories"])
        cases.append({"name": name, "gt": gt_path, "dets": det_path, "max_dets": max_det,
                      "num_gt": len(gt["annotations"]), "num_dets": len(dets),
                      "voc": voc_all(gt, dets, cat_ids), "coco": coco_eval(gt, dets, max_det)})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"cases": cases}, f)
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
