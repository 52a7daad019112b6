import numpy as np
from scipy import ndimage as ndi

# ---------------- baseline: faithful port of scale.rs ----------------
def otsu_u8(v):
    hist = np.bincount(v.ravel(), minlength=256).astype(np.float64)
    total = v.size
    sum_all = (np.arange(256) * hist).sum()
    w0 = np.cumsum(hist); sum0 = np.cumsum(np.arange(256) * hist)
    w1 = total - w0
    best, best_t = -1.0, None
    for t in range(256):
        if w0[t] == 0 or w1[t] == 0:
            continue
        m0 = sum0[t] / w0[t]; m1 = (sum_all - sum0[t]) / w1[t]
        b = w0[t] * w1[t] * (m0 - m1) ** 2
        if b > best:
            best, best_t = b, min(t + 1, 255)
    return best_t

def saturation_u8(img):
    img = img.astype(np.uint32)
    mx = img.max(2); mn = img.min(2)
    return np.where(mx > 0, (255 * (mx - mn)) // np.maximum(mx, 1), 0).astype(np.uint8)

def baseline(img):
    h, w = img.shape[:2]
    sat = saturation_u8(img)
    t = otsu_u8(sat)
    if t is None:
        return None
    fg = sat >= t
    lab, n = ndi.label(fg)  # 4-connectivity (default structure)
    min_area = max(16, w * h // 2000)
    sizes = []
    objs = ndi.find_objects(lab)
    areas = np.bincount(lab.ravel())
    for k, sl in enumerate(objs, 1):
        if sl is None:
            continue
        y0, y1 = sl[0].start, sl[0].stop - 1
        x0, x1 = sl[1].start, sl[1].stop - 1
        touches = x0 == 0 or y0 == 0 or x1 + 1 == w or y1 + 1 == h
        if areas[k] >= min_area and not touches:
            sizes.append(np.sqrt((x1 - x0 + 1) * (y1 - y0 + 1)))
    if not sizes:
        return None
    s = np.sort(np.array(sizes, np.float32))
    return float(s[len(s) // 2])

# ---------------- cellness channels ----------------
def cell_green(img):
    """Darkness of the green channel relative to the background (bright) level: 0 bg .. 1 black."""
    g = img[..., 1].astype(np.float32)
    bg = np.percentile(g, 95)
    return np.clip((bg - g) / max(bg, 1.0), 0, 1)

def cell_sat(img):
    return saturation_u8(img).astype(np.float32) / 255.0

# ---------------- Gaussian scale space (pyramid) ----------------
def block_down(a, f):
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    return a[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))

def dog_stack(c, s_per_oct=4, smin=1.2, smax=None, level_sigma=2.0):
    """Normalized blob response R_s = (G_s - G_{k s}) / (k - 1) ~ -s^2 LoG, for s in a geometric
    series; computed on a block-mean pyramid so that s/f >= level_sigma. Returns list of
    (sigma, f, R) with R on the grid downsampled by f."""
    h, w = c.shape
    if smax is None:
        smax = min(h, w) / 6.0
    k = 2 ** (1.0 / s_per_oct)
    pyr = {1: c}
    out = []
    s = smin
    while s <= smax:
        f = 1
        while s / (2 * f) >= level_sigma:
            f *= 2
        if f not in pyr:
            pyr[f] = block_down(c, f)
        a = pyr[f]
        g1 = ndi.gaussian_filter(a, s / f, mode='reflect', truncate=3.0)
        g2 = ndi.gaussian_filter(a, k * s / f, mode='reflect', truncate=3.0)
        out.append((s, f, (g1 - g2) / (k - 1)))
        s *= k
    return out

def peak_of(x, y):
    """Parabolic interpolation of the argmax of y over x (x uniform in log)."""
    i = int(np.argmax(y))
    if 0 < i < len(y) - 1:
        d = (y[i - 1] - y[i + 1]) / (2 * (y[i - 1] - 2 * y[i] + y[i + 1]) + 1e-12)
        d = float(np.clip(d, -0.5, 0.5))
        lx = np.log(x)
        return float(np.exp(lx[i] + d * (lx[1] - lx[0]))), i
    return float(x[i]), i

def log_energy(c, mult=2.0 * np.sqrt(2), power=2):
    st = dog_stack(c)
    sig = np.array([s for s, _, _ in st])
    e = np.array([np.mean(np.maximum(R, 0) ** power) for _, _, R in st])
    s, i = peak_of(sig, e)
    return mult * s, e

def log_blobs(c, mult=2.0 * np.sqrt(2), rel_thr=0.1):
    """Scale-space maxima of R; diameter = mult * median sigma of strong maxima (weighted)."""
    st = dog_stack(c)
    sig = np.array([s for s, _, _ in st])
    h, w = c.shape
    # spatial maxima at each scale
    cand = []
    gmax = max(R.max() for _, _, R in st)
    for j, (s, f, R) in enumerate(st):
        mx = ndi.maximum_filter(R, size=3, mode='nearest')
        ys, xs = np.nonzero((R == mx) & (R > rel_thr * gmax))
        for y, x in zip(ys, xs):
            v = R[y, x]
            cy, cx = (y + 0.5) * f, (x + 0.5) * f  # full-res centre
            ok = True
            for jj in (j - 1, j + 1):
                if 0 <= jj < len(st):
                    s2, f2, R2 = st[jj]
                    yy = min(int(cy / f2), R2.shape[0] - 1); xx = min(int(cx / f2), R2.shape[1] - 1)
                    y0, y1 = max(yy - 1, 0), yy + 2; x0, x1 = max(xx - 1, 0), xx + 2
                    if R2[y0:y1, x0:x1].max() > v:
                        ok = False; break
            # not at the smallest/largest scale
            if ok and 0 < j < len(st) - 1:
                cand.append((s, v, cy, cx))
    if not cand:
        return None, 0
    cand = np.array(cand)
    return mult * float(np.median(cand[:, 0])), cand

# ---------------- radial-symmetry voting (gradient Hough for circles) ----------------
def frst_curve(gray, r_min=2.5, lo=4.0, hi=8.0, steps_per_oct=8, pre_sigma=1.0, edge_frac=0.25,
               blur_frac=0.25, blur_add=0.0, min_side=40, c0=None):
    """For each radius R (full-res px): every strong-edge pixel votes at p - r*g/|g| (towards the
    darker side), the vote map is blurred (sigma = blur_frac*r), and the agreement
    A = r * sum(V^2) / n_voters is recorded. Returns (radii, A)."""
    h, w = gray.shape
    k = 2 ** (1.0 / steps_per_oct)
    Rs, As = [], []
    f = 1
    a = gray.astype(np.float32)
    while min(a.shape) >= min_side:
        s = ndi.gaussian_filter(a, pre_sigma)
        gy = ndi.sobel(s, 0) / 8.0; gx = ndi.sobel(s, 1) / 8.0
        mag = np.hypot(gx, gy)
        thr = edge_frac * np.percentile(mag, 99)
        ys, xs = np.nonzero(mag > thr)
        if len(ys) == 0:
            break
        ux = gx[ys, xs] / mag[ys, xs]; uy = gy[ys, xs] / mag[ys, xs]
        hh, ww = a.shape
        r = r_min if f == 1 else lo
        while r < hi - 1e-6:
            tx = np.rint(xs - r * ux).astype(np.int64); ty = np.rint(ys - r * uy).astype(np.int64)
            ok = (tx >= 0) & (tx < ww) & (ty >= 0) & (ty < hh)
            V = np.bincount(ty[ok] * ww + tx[ok], minlength=hh * ww).astype(np.float32).reshape(hh, ww)
            sb = np.sqrt(blur_add ** 2 + (blur_frac * r) ** 2)
            V = ndi.gaussian_filter(V, sb)
            if c0 is None:
                V -= V.mean()
                Rs.append(r * f); As.append(2 * sb * sb * float((V * V).sum()) / (len(ys) * r))
            else:
                tau = c0 * r / (sb * sb)
                Rs.append(r * f); As.append(float(np.maximum(V - tau, 0).sum()) / len(ys))
            r *= k
        f *= 2
        a = block_down(gray.astype(np.float32), f)
    o = np.argsort(Rs)
    return np.array(Rs)[o], np.array(As)[o]

def frst(img, mult=2.0, **kw):
    R, A = frst_curve(img[..., 1], **kw)
    r, i = peak_of(R, A)
    return mult * r, (R, A)
