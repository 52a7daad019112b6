// RoIPool forward and backward, a port of torchvision's CUDA kernels
// (torchvision/csrc/ops/cuda/roi_pool_kernel.cu): one thread per output element. The backward
// recomputes each bin's argmax from the input (instead of storing it) and scatters with
// atomicAdd into a zeroed buffer. Layouts as in roi_align.cu.

template <typename T>
__device__ long long roi_pool_argmax(const T* plane, const T* roi, int H, int W, int PH, int PW,
                                     int ph, int pw, T scale, T* maxval) {
  int sw = (int)round(roi[1] * scale), sh = (int)round(roi[2] * scale);
  int ew = (int)round(roi[3] * scale), eh = (int)round(roi[4] * scale);
  int rw = max(ew - sw + 1, 1), rh = max(eh - sh + 1, 1);
  T bh = (T)rh / (T)PH, bw = (T)rw / (T)PW;
  int hstart = (int)floor((T)ph * bh), wstart = (int)floor((T)pw * bw);
  int hend = (int)ceil((T)(ph + 1) * bh), wend = (int)ceil((T)(pw + 1) * bw);
  hstart = min(max(hstart + sh, 0), H); hend = min(max(hend + sh, 0), H);
  wstart = min(max(wstart + sw, 0), W); wend = min(max(wend + sw, 0), W);
  bool empty = (hend <= hstart) || (wend <= wstart);
  T m = empty ? (T)0 : (T)-3.402823466e+38;
  long long idx = -1;
  for (int h = hstart; h < hend; h++)
    for (int w = wstart; w < wend; w++) {
      int j = h * W + w;
      if (plane[j] > m) { m = plane[j]; idx = j; }
    }
  *maxval = m;
  return idx;
}

template <typename T>
__device__ void roi_pool_fwd(const T* input, const T* rois, T* out, long long total, int C, int H,
                             int W, int PH, int PW, T scale) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    int pw = i % PW, ph = (i / PW) % PH, c = (i / PW / PH) % C;
    long long k = i / PW / PH / C;
    const T* roi = rois + k * 5;
    int b = (int)roi[0];
    T m;
    roi_pool_argmax(input + ((long long)b * C + c) * H * W, roi, H, W, PH, PW, ph, pw, scale, &m);
    out[i] = m;
  }
}

template <typename T>
__device__ void roi_pool_bwd(const T* grad_out, const T* input, const T* rois, T* grad_in,
                             long long total, int C, int H, int W, int PH, int PW, T scale) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    int pw = i % PW, ph = (i / PW) % PH, c = (i / PW / PH) % C;
    long long k = i / PW / PH / C;
    const T* roi = rois + k * 5;
    int b = (int)roi[0];
    long long off = ((long long)b * C + c) * H * W;
    T m;
    long long j = roi_pool_argmax(input + off, roi, H, W, PH, PW, ph, pw, scale, &m);
    if (j >= 0) atomicAdd(grad_in + off + j, grad_out[i]);
  }
}

#define ROI_POOL_OPS(T, SUFFIX)                                                                    \
  extern "C" __global__ void roi_pool_fwd_##SUFFIX(const T* input, const T* rois, T* out,          \
      long long total, int C, int H, int W, int PH, int PW, T scale) {                             \
    roi_pool_fwd<T>(input, rois, out, total, C, H, W, PH, PW, scale);                              \
  }                                                                                                \
  extern "C" __global__ void roi_pool_bwd_##SUFFIX(const T* grad_out, const T* input,              \
      const T* rois, T* grad_in, long long total, int C, int H, int W, int PH, int PW, T scale) {  \
    roi_pool_bwd<T>(grad_out, input, rois, grad_in, total, C, H, W, PH, PW, scale);                \
  }

ROI_POOL_OPS(float, f32)
ROI_POOL_OPS(double, f64)
