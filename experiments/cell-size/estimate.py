"""Prototype single-image red-cell size estimators for arfpn issue 31.

Run (venv with numpy scipy pillow):
    python experiments/cell-size/estimate.py            # full benchmark table (stdout; raw rows -> results.pkl)
    python experiments/cell-size/estimate.py IMG.jpg    # one image: size px, confidence
Data: BCCD test, TXL-PBC test (per source) from ../shared/data (ARFPN_DATA), synthetic smears
(make_synthetic --profile realistic, cell scale 0.5/1/2/4, 20 images each; 500x375 for 0.5/1,
640x480 for 2, 1000x750 for 4) under CELL_SIZE_SYNTH (see data.py).
Helpers: data.py (VOC loading), bench.py (truth + table), methods.py (all methods incl. the
faithful port of scale.rs `estimate_cell_size` as `baseline`).

Recommended method = `vote_size` (gradient voting for circle centres, a small Hough for circles,
on one continuous geometric radius grid: for each candidate radius R the image is resized so that R
becomes 8 px, which makes the score scale-covariant; WBC nuclei / platelets / dark debris masked).
The previous octave-pyramid variant is kept as `vote_size_pyramid`. Spec: results.md.
    python experiments/cell-size/estimate.py --controls   # negative controls for the confidence
"""
import sys, time
import numpy as np
from scipy import ndimage as ndi
from PIL import Image
import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from methods import baseline, log_energy, cell_green, block_down

MULT = 1.09          # box size / (2 * voted radius), calibrated once over all datasets
CONF_MIN = 1.2       # confident when the chosen peak beats its rivals by 20 %

def vote_curve(green, r0=3.0, lo=4.0, hi=8.0, k=2 ** 0.125, edge_frac=0.25, blur_frac=0.2, c0=0.5, min_side=24):
    Rs, As = [], []
    f, a = 1, green.astype(np.float32)
    while min(a.shape) >= min_side:
        s = ndi.gaussian_filter(a, 1.0)
        gy = ndi.sobel(s, 0) / 8.0; gx = ndi.sobel(s, 1) / 8.0
        mag = np.hypot(gx, gy)
        ys, xs = np.nonzero(mag > edge_frac * np.percentile(mag, 99))
        n = len(ys)
        if n == 0:
            break
        ux = gx[ys, xs] / mag[ys, xs]; uy = gy[ys, xs] / mag[ys, xs]
        hh, ww = a.shape
        r = r0 if f == 1 else lo
        while r < hi - 1e-6:
            tx = np.rint(xs - r * ux).astype(np.int64); ty = np.rint(ys - r * uy).astype(np.int64)
            ok = (tx >= 0) & (tx < ww) & (ty >= 0) & (ty < hh)
            V = np.bincount(ty[ok] * ww + tx[ok], minlength=hh * ww).astype(np.float32).reshape(hh, ww)
            sb = blur_frac * r
            V = ndi.gaussian_filter(V, sb, truncate=3.0)
            tau = c0 * r / (sb * sb)
            Rs.append(r * f); As.append(float(np.maximum(V - tau, 0).sum()) / n)
            r *= k
        f *= 2
        a = block_down(green.astype(np.float32), f)
    o = np.argsort(Rs)
    return np.array(Rs)[o], np.array(As)[o]

def pick(R, A):
    n = len(A); lx = np.log(R)
    pk = [i for i in range(1, n - 1) if A[i] >= A[i - 1] and A[i] >= A[i + 1] and A[i] > 0]
    if not pk:
        return None, 0.0
    i = max(pk, key=lambda j: A[j])
    d = (A[i - 1] - A[i + 1]) / (2 * (A[i - 1] - 2 * A[i] + A[i + 1]) - 1e-12)
    r0 = float(np.exp(lx[i] + float(np.clip(d, -0.5, 0.5)) * (lx[i + 1] - lx[i])))
    band = A[((R >= r0 / 2.2) & (R <= r0 / 1.4)) | ((R >= r0 * 1.4) & (R <= r0 * 2.2))]
    rival = max([A[j] for j in pk if abs(lx[j] - lx[i]) > np.log(1.4)] + [band.max() if len(band) else 0.0])
    return r0, float(A[i] / max(rival, 1e-9))

def vote_size_pyramid(img):
    """Previous prototype (octave pyramid): not scale-covariant, kept for the table."""
    R, A = vote_curve(img[..., 1])
    r0, conf = pick(R, A)
    return (MULT * 2 * r0 if r0 else None), conf

# ---------------- continuous-radius vote (recommended; spec in results.md) ----------------
CV_R0 = 3.0             # smallest radius tried (full-res px)
CV_STEP = 2 ** 0.125    # geometric radius grid (8 per octave)
CV_MAX_FRAC = 0.25      # largest radius = 0.25 * shorter image side
CV_RW = 8.0             # working radius: the image is resized so that R -> 8 px ...
CV_SMAX = 2.0           # ... but never enlarged more than 2x
CV_MAX_PIX = 2 ** 19    # ... nor to more than 524288 pixels (bounds the cost of small radii)
CV_PURPLE = 60          # WBC nucleus / platelet: (B-G) - median(B-G) > 60
CV_DARK = 0.35          # debris / nucleus: G < 0.35 * p95(G)
CV_DILATE = 2           # mask grown by 2 steps of 4-neighbour dilation
CV_EDGE = 0.25          # voters: |grad| > 0.25 * p99(|grad| outside the mask)
CV_BLUR = 0.2           # vote map blur sigma = 0.2 r
CV_TAU = 0.5            # vote threshold tau = 0.5 r / sigma^2 (half a complete 1-px-thick circle)
CV_MULT = 1.15          # box size / (2 * voted radius)
CV_RATIO = 1.3          # the chosen peak must beat its rivals by 30 % ...
CV_APEAK = 0.075        # ... and hold >= 7.5 % of the voters on complete-enough circles
CV_CONF = 1.0           # confidence = min(ratio / 1.3, A_peak / 0.075) (0 if A is largest at the last radius)

def rank_pct(v, p):
    """Value of rank floor(p * (N - 1)) in ascending order (select_nth_unstable in Rust)."""
    v = np.ravel(v)
    if len(v) == 0: return 0.0
    k = int(p * (len(v) - 1)); return float(np.partition(v, k)[k])

def cv_score(rgb, qmed, gbg, r):
    g = rgb[..., 1].astype(np.float32)
    q = rgb[..., 2].astype(np.float32) - g - qmed
    g = ndi.gaussian_filter(g, 1.0, truncate=3.0)
    q = ndi.gaussian_filter(q, 1.0, truncate=3.0)
    gy = ndi.sobel(g, 0) / 8.0; gx = ndi.sobel(g, 1) / 8.0
    mag = np.hypot(gx, gy)
    m = ndi.binary_dilation((q > CV_PURPLE) | (g < CV_DARK * gbg), iterations=CV_DILATE)
    if m.all(): return 0.0
    thr = CV_EDGE * rank_pct(mag[~m], 0.99)
    ys, xs = np.nonzero((mag > thr) & ~m)
    n = len(ys)
    if n == 0: return 0.0
    ux = gx[ys, xs] / mag[ys, xs]; uy = gy[ys, xs] / mag[ys, xs]
    hh, ww = g.shape
    tx = np.rint(xs - r * ux).astype(np.int64); ty = np.rint(ys - r * uy).astype(np.int64)
    ok = (tx >= 0) & (tx < ww) & (ty >= 0) & (ty < hh)
    V = np.bincount(ty[ok] * ww + tx[ok], minlength=hh * ww).astype(np.float32).reshape(hh, ww)
    sb = CV_BLUR * r
    V = ndi.gaussian_filter(V, sb, truncate=3.0)
    V[m] = 0
    return float(np.maximum(V - CV_TAU * r / (sb * sb), 0).sum()) / n

def cv_curve(img):
    H, W = img.shape[:2]
    qmed = float(np.median(img[..., 2].astype(np.int32) - img[..., 1].astype(np.int32)))
    gbg = rank_pct(img[..., 1], 0.95)
    pil = Image.fromarray(img)
    Rs, As = [], []
    j = 0
    while True:
        R = CV_R0 * CV_STEP ** j
        if R > CV_MAX_FRAC * min(H, W): break
        s = min(CV_SMAX, CV_RW / R, (CV_MAX_PIX / (W * H)) ** 0.5)
        w, h = max(1, round(W * s)), max(1, round(H * s))
        a = img if (w, h) == (W, H) else np.asarray(pil.resize((w, h), Image.BILINEAR))
        Rs.append(R); As.append(cv_score(a, qmed, gbg, R * w / W)); j += 1
    return np.array(Rs), np.array(As)

def vote_size(img):
    """Recommended: continuous-radius gradient vote. Returns (size px, confidence)."""
    R, A = cv_curve(img)
    r0, ratio = pick(R, A)
    if r0 is None:
        return None, 0.0
    apk = float(A[int(np.argmin(np.abs(np.log(R / r0))))])   # score at the grid point nearest r0
    conf = 0.0 if A[-1] >= A.max() else min(ratio / CV_RATIO, apk / CV_APEAK)
    return CV_MULT * 2 * r0, conf

DATASETS = ['BCCD', 'TXL-BCCD', 'TXL-BCDD', 'TXL-PBC', 'TXL-Raabin-WBC', 'synth-0.5', 'synth-1', 'synth-2', 'synth-4',
            'BCCD/2.5 bilinear', 'BCCD/2.5 box']

def bench_items():
    """(dataset, id, rgb array, annotated size). Adds the BCCD test images downscaled 2.5x
    (640x480 -> 256x192, PIL bilinear and box) with truth = original annotation / 2.5."""
    from PIL import Image
    from data import items
    from bench import truth
    for ds, i, p, b in items():
        im = Image.open(p).convert('RGB')
        t = truth(ds, b, im.size[0], im.size[1])
        if t is None:
            continue
        yield ds, i, np.asarray(im), t
        if ds == 'BCCD':
            for nm, flt in (('BCCD/2.5 bilinear', Image.BILINEAR), ('BCCD/2.5 box', Image.BOX)):
                yield nm, i, np.asarray(im.resize((round(im.size[0] / 2.5), round(im.size[1] / 2.5)), flt)), t / 2.5

def main_bench():
    import collections, pickle
    M = {'baseline (scale.rs)': (baseline, None),
         'LoG energy (green)': (lambda im: (1.0 * log_energy(cell_green(im))[0], None), None),
         'vote, octave pyramid (previous)': (vote_size_pyramid, CONF_MIN),
         'vote, continuous radius + WBC mask (recommended)': (vote_size, CV_CONF)}
    res = collections.defaultdict(list); times = collections.defaultdict(list)
    for ds, i, img, t in bench_items():
        for m, (fn, _) in M.items():
            t0 = time.perf_counter(); est, conf = (lambda o: o if isinstance(o, tuple) else (o, None))(fn(img))
            times[(m, ds)].append(time.perf_counter() - t0)
            res[(m, ds)].append(((est / t - 1) if est else float('nan'), conf, i, t, est))
    pickle.dump(dict(res), open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.pkl'), 'wb'))
    L = ['| method | dataset | n | median abs rel err | within 25 % | confident | within 25 % among confident | failures flagged |',
         '|---|---|---:|---:|---:|---:|---:|---:|']
    for m, (fn, cmin) in M.items():
        for ds in DATASETS:
            v = res.get((m, ds), [])
            if not v: continue
            r = np.array([x[0] for x in v]); a = np.abs(np.nan_to_num(r, nan=9.99))
            ok = a <= 0.25
            s = f'| {m} | {ds} | {len(r)} | {np.median(a)*100:.1f} % | {ok.mean()*100:.0f} % |'
            if cmin is not None:
                c = np.array([x[1] for x in v]) >= cmin
                s += f' {c.mean()*100:.0f} % | {(ok[c].mean()*100 if c.any() else float("nan")):.0f} % | {(~c[~ok]).sum()}/{(~ok).sum()} |'
            else:
                s += ' – | – | – |'
            L.append(s)
    L.append('')
    L.append('Mean time per 640x480 image (BCCD test, this machine, one core): ' +
             ', '.join(f'{m}: {np.mean(times[(m, "BCCD")])*1000:.0f} ms' for m in M))
    print('\n'.join(L))
    return '\n'.join(L)

def controls():
    """Negative controls the confidence must flag: BCCD crops too small to hold a whole cell
    (160x160 px, cells ~100 px: the radius grid stops at 40 px), uniform noise, flat, ramp.
    Also heavy blur (sigma 6) of BCCD images, where a correct estimate is still possible."""
    from PIL import Image
    from data import D
    rng = np.random.default_rng(0)
    cases = []
    for i in open(f'{D}/bccd/ImageSets/Main/test.txt').read().split()[:8]:
        im = np.asarray(Image.open(f'{D}/bccd/JPEGImages/{i}.jpg').convert('RGB'))
        cases.append((f'{i} crop 160x160 (cells ~100 px)', im[160:320, 240:400].copy()))
        cases.append((f'{i} blurred sigma 6', np.stack([ndi.gaussian_filter(im[..., k].astype(np.float32), 6) for k in range(3)], -1).astype(np.uint8)))
    cases.append(('uniform noise 640x480', rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)))
    cases.append(('flat 640x480', np.full((480, 640, 3), 200, np.uint8)))
    cases.append(('ramp 640x480', np.linspace(0, 255, 640)[None, :, None].repeat(480, 0).repeat(3, 2).astype(np.uint8)))
    for nm, im in cases:
        s, c = vote_size(im)
        print(f'| {nm} | {"–" if s is None else f"{s:.1f}"} | {c:.2f} | {"confident" if c >= CV_CONF else "flagged"} |')

if __name__ == '__main__':
    if sys.argv[1:] == ['--controls']:
        controls()
    elif len(sys.argv) > 1:
        from data import load_rgb
        for p in sys.argv[1:]:
            im = load_rgb(p); t = time.perf_counter(); s, c = vote_size(im)
            if s is None:
                print(f'{p}: no estimate'); continue
            print(f'{p}: {s:.1f} px, confidence {c:.2f} ({"confident" if c >= CV_CONF else "NOT confident"}), {time.perf_counter()-t:.2f}s')
    else:
        main_bench()
