"""Prototype single-image red-cell size estimators for arfpn issue 31.

Run (venv with numpy scipy pillow):
    python experiments/cell-size/estimate.py            # full benchmark -> results.md
    python experiments/cell-size/estimate.py IMG.jpg    # one image: size px, confidence
Data: BCCD test, TXL-PBC test (per source) from ../shared/data (ARFPN_DATA), synthetic smears
(make_synthetic --profile realistic, cell scale 0.5/1/2/4, 20 images each; 500x375 for 0.5/1,
640x480 for 2, 1000x750 for 4) under CELL_SIZE_SYNTH (see data.py).
Helpers: data.py (VOC loading), bench.py (truth + table), methods.py (all methods incl. the
faithful port of scale.rs `estimate_cell_size` as `baseline`).

Recommended method = `vote_size` (gradient radial-symmetry voting, a small Hough-for-circles):
see results.md for the exact specification.
"""
import sys, time
import numpy as np
from scipy import ndimage as ndi
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

def vote_size(img):
    R, A = vote_curve(img[..., 1])
    r0, conf = pick(R, A)
    return (MULT * 2 * r0 if r0 else None), conf

def main_bench():
    from bench import run
    M = {'baseline (scale.rs)': baseline,
         'LoG energy (green)': lambda im: (1.0 * log_energy(cell_green(im))[0], None),
         'vote (recommended)': vote_size}
    res, times = run(M)
    import pickle; pickle.dump(dict(res), open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.pkl'), 'wb'))
    dss = ['BCCD', 'TXL-BCCD', 'TXL-BCDD', 'TXL-PBC', 'TXL-Raabin-WBC', 'synth-0.5', 'synth-1', 'synth-2', 'synth-4']
    L = ['| method | dataset | n | median abs rel err | within 25 % | confident | within 25 % among confident | failures flagged |',
         '|---|---|---:|---:|---:|---:|---:|---:|']
    for m in M:
        for ds in dss:
            v = res.get((m, ds), [])
            if not v: continue
            r = np.array([x[0] for x in v]); a = np.abs(np.nan_to_num(r, nan=9.99))
            ok = a <= 0.25
            s = f'| {m} | {ds} | {len(r)} | {np.median(a)*100:.1f} % | {ok.mean()*100:.0f} % |'
            if v[0][1] is not None and not isinstance(v[0][1], np.ndarray):
                c = np.array([x[1] for x in v]) >= CONF_MIN
                s += f' {c.mean()*100:.0f} % | {(ok[c].mean()*100 if c.any() else float("nan")):.0f} % | {(~c[~ok]).sum()}/{(~ok).sum()} |'
            else:
                s += ' – | – | – |'
            L.append(s)
    print('\n'.join(L)); print({k: round(t, 1) for k, t in times.items()})
    return '\n'.join(L), times

if __name__ == '__main__':
    if len(sys.argv) > 1:
        from data import load_rgb
        for p in sys.argv[1:]:
            im = load_rgb(p); t = time.perf_counter(); s, c = vote_size(im)
            print(f'{p}: {s:.1f} px, confidence {c:.2f} ({"confident" if c >= CONF_MIN else "NOT confident"}), {time.perf_counter()-t:.2f}s')
    else:
        main_bench()
