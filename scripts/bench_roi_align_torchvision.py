"""torchvision side of the arfpn-roi-align benchmark (benches/roi_align.rs): the same boxes
(same LCG), 1000 RoIs of 16-64 px on 1x256x128x160 (stride 4), 7x7, sampling 2, aligned;
forward and forward+backward; roi_pool; MultiScaleRoIAlign over strides 4-32 (torchvision's
pooler has no `aligned` argument: it runs aligned=False). 2 threads.

    /work/venv-torch/bin/python scripts/bench_roi_align_torchvision.py
"""
import statistics
import time

import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool

torch.set_num_threads(2)
M = (1 << 64) - 1


class Lcg:
    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & M
        return (self.s >> 40) / float(1 << 24)


def boxes(k, lo, hi, seed):
    r, v = Lcg(seed), []
    for _ in range(k):
        w, h = lo + (hi - lo) * r.next(), lo + (hi - lo) * r.next()
        x, y = (640 - w) * r.next(), (512 - h) * r.next()
        v.append([0.0, x, y, x + w, y + h])
    return torch.tensor(v, dtype=torch.float32)


def timeit(name, f, reps=10):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    print(f"{name:55s} median {statistics.median(ts) * 1e3:8.1f} ms  (min {min(ts) * 1e3:.1f})")


x = (torch.rand(1, 256, 128, 160) - 0.5).requires_grad_(True)
b = boxes(1000, 16.0, 64.0, 2)
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()}")
with torch.no_grad():
    timeit("roi_align_1000x256x7x7/forward", lambda: roi_align(x, b, (7, 7), 0.25, 2, True))


def fb():
    y = roi_align(x, b, (7, 7), 0.25, 2, True)
    y.backward(torch.ones_like(y))


def pool_fb():
    y = roi_pool(x, b, (7, 7), 0.25)
    y.backward(torch.ones_like(y))


timeit("roi_align_1000x256x7x7/forward_backward", fb)
timeit("roi_align_1000x256x7x7/roi_pool_forward_backward", pool_fb)

strides = [4, 8, 16, 32]
feats = {str(i): (torch.rand(1, 256, 512 // s, 640 // s) - 0.5).requires_grad_(True) for i, s in enumerate(strides)}
pooler = MultiScaleRoIAlign(list(feats), 7, 2)
for name, bx in [("boxes16-64", b), ("boxes16-448", boxes(1000, 16.0, 448.0, 3))]:
    lst = [bx[:, 1:]]
    with torch.no_grad():
        timeit(f"multi_scale_roi_align_1000x256x7x7/{name}/forward", lambda: pooler(feats, lst, [(512, 640)]))

    def mfb():
        y = pooler(feats, lst, [(512, 640)])
        y.backward(torch.ones_like(y))

    timeit(f"multi_scale_roi_align_1000x256x7x7/{name}/forward_backward", mfb)
