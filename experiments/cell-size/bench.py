import sys, time, json, collections
import numpy as np
from data import items, load_rgb, box_sizes, median_hi

TRUTH_MODE = 'inner'

def truth(ds, boxes, W, H, mode=None):
    """Median sqrt(w*h) of the red-cell boxes (all boxes on synthetic: every class is a red cell).
    'inner': only boxes not within 2 px of the image border (cut cells have small boxes), when
    at least 3 are left; images with fewer than 3 red-cell boxes are not scored."""
    mode = mode or TRUTH_MODE
    rb = [x for x in boxes if ds.startswith('synth') or x[0] == 'RBC']
    if len(box_sizes(rb)) < 3:
        return None
    if mode == 'inner':
        inner = [x for x in rb if x[1] > 2 and x[2] > 2 and x[3] < W - 2 and x[4] < H - 2]
        if len(box_sizes(inner)) >= 3:
            rb = inner
    return median_hi(box_sizes(rb))

def run(methods, only=None, verbose=False, cache={}):
    res = collections.defaultdict(list)  # (method, ds) -> [(rel, conf, id)]
    times = collections.defaultdict(float)
    for ds, i, p, b in items():
        if only and not any(ds.startswith(o) for o in only):
            continue
        img = load_rgb(p)
        t = truth(ds, b, img.shape[1], img.shape[0])
        if t is None:
            continue
        for name, fn in methods.items():
            t0 = time.perf_counter()
            out = fn(img)
            times[name] += time.perf_counter() - t0
            est, conf = (out if isinstance(out, tuple) else (out, None))
            rel = (est / t - 1) if est else float('nan')
            res[(name, ds)].append((rel, conf, i, t, est))
    return res, times

def table(res, methods, dss):
    lines = ['| method | dataset | n | median abs rel err | within 25 % |', '|---|---|---:|---:|---:|']
    for m in methods:
        for ds in dss:
            v = res.get((m, ds))
            if not v: continue
            r = np.array([x[0] for x in v])
            a = np.abs(np.where(np.isnan(r), 9.99, r))
            lines.append(f'| {m} | {ds} | {len(r)} | {np.median(a)*100:.1f} % | {np.mean(a <= 0.25)*100:.0f} % |')
    return '\n'.join(lines)
