"""Times pycocotools and faster-coco-eval on the dense benchmark workload and writes the
workload for the Rust criterion bench (`cargo bench -p arfpn-metrics`), so both sides
evaluate the same input.

Workload: 118 images x 230 boxes, 14 classes, 1.2x as many detections (generate.py).
Timed: evaluate() + accumulate() + summarize() on already-loaded COCO objects (JSON
parsing excluded), best of --repeat runs.

Usage: python bench_python.py OUT_DIR [--repeat N]
then:  ARFPN_METRICS_BENCH_DIR=OUT_DIR cargo bench -p arfpn-metrics
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import make_case  # noqa: E402


def time_tool(name, coco_mod, eval_cls, gt, dets, repeat):
    with contextlib.redirect_stdout(io.StringIO()):
        cgt = coco_mod.COCO()
        cgt.dataset = json.loads(json.dumps(gt))
        cgt.createIndex()
        cdt = cgt.loadRes(json.loads(json.dumps(dets)))
    best = float("inf")
    stats = None
    for _ in range(repeat):
        E = eval_cls(cgt, cdt, "bbox")
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            E.evaluate()
            E.accumulate()
            E.summarize()
        best = min(best, time.perf_counter() - t0)
        stats = [float(s) for s in E.stats]
    print(f"{name:<18} best of {repeat}: {best * 1000:9.1f} ms   AP {stats[0]:.6f} AP50 {stats[1]:.6f}")
    return best, stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    # No difficult/ignore flags: plain pycocotools only honours iscrowd.
    gt, dets = make_case(2026, 118, (230, 230), 14, det_ratio=1.2, flags=False)
    with open(os.path.join(a.out, "gt.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(a.out, "dets.json"), "w") as f:
        json.dump(dets, f)
    print(f"workload: {len(gt['images'])} images, {len(gt['annotations'])} GT, {len(dets)} detections, "
          f"{len(gt['categories'])} classes -> {a.out}")
    results = {}
    import pycocotools.coco
    import pycocotools.cocoeval
    results["pycocotools"] = time_tool("pycocotools", pycocotools.coco, pycocotools.cocoeval.COCOeval,
                                       gt, dets, a.repeat)
    try:
        import faster_coco_eval
        from faster_coco_eval import COCOeval_faster
        results["faster-coco-eval"] = time_tool(f"faster-coco-eval {faster_coco_eval.__version__}",
                                                faster_coco_eval, COCOeval_faster, gt, dets, a.repeat)
    except ImportError as e:
        print(f"faster-coco-eval not available: {e}")
    with open(os.path.join(a.out, "python_times.json"), "w") as f:
        json.dump({k: {"seconds": v[0], "stats": v[1]} for k, v in results.items()}, f)


if __name__ == "__main__":
    main()
