// RoIAlign forward and backward, a port of torchvision's CUDA kernels
// (torchvision/csrc/ops/cuda/roi_align_kernel.cu): one thread per output element, geometry
// recomputed per thread, backward scatters with atomicAdd into a zeroed buffer.
// Layouts: input [N, C, H, W] and rois [K, 5] (batch_index, x1, y1, x2, y2), both contiguous;
// output / grad_output [K, C, PH, PW] contiguous.

template <typename T>
__device__ T bilinear_interpolate(const T* plane, int height, int width, T y, T x) {
  if (y < (T)-1.0 || y > (T)height || x < (T)-1.0 || x > (T)width) return 0;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int y_low = (int)y, x_low = (int)x, y_high, x_high;
  if (y_low >= height - 1) { y_high = y_low = height - 1; y = (T)y_low; } else { y_high = y_low + 1; }
  if (x_low >= width - 1) { x_high = x_low = width - 1; x = (T)x_low; } else { x_high = x_low + 1; }
  T ly = y - y_low, lx = x - x_low, hy = (T)1. - ly, hx = (T)1. - lx;
  return hy * hx * plane[y_low * width + x_low] + hy * lx * plane[y_low * width + x_high] +
         ly * hx * plane[y_high * width + x_low] + ly * lx * plane[y_high * width + x_high];
}

template <typename T>
__device__ void roi_geometry(const T* roi, T scale, bool aligned, int ph_n, int pw_n, int sampling,
                             T* start_h, T* start_w, T* bin_h, T* bin_w, int* grid_h, int* grid_w) {
  T offset = aligned ? (T)0.5 : (T)0.0;
  T sw = roi[1] * scale - offset, sh = roi[2] * scale - offset;
  T ew = roi[3] * scale - offset, eh = roi[4] * scale - offset;
  T rw = ew - sw, rh = eh - sh;
  if (!aligned) { rw = rw > (T)1. ? rw : (T)1.; rh = rh > (T)1. ? rh : (T)1.; }
  *start_h = sh; *start_w = sw;
  *bin_h = rh / (T)ph_n; *bin_w = rw / (T)pw_n;
  *grid_h = sampling > 0 ? sampling : (int)ceil(rh / (T)ph_n);
  *grid_w = sampling > 0 ? sampling : (int)ceil(rw / (T)pw_n);
}

template <typename T>
__device__ void roi_align_fwd(const T* input, const T* rois, T* out, long long total, int C, int H,
                              int W, int PH, int PW, T scale, int sampling, int aligned) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    int pw = i % PW, ph = (i / PW) % PH, c = (i / PW / PH) % C;
    long long k = i / PW / PH / C;
    const T* roi = rois + k * 5;
    int b = (int)roi[0];
    T sh, sw, bh, bw; int gh, gw;
    roi_geometry(roi, scale, aligned != 0, PH, PW, sampling, &sh, &sw, &bh, &bw, &gh, &gw);
    int count = gh * gw > 1 ? gh * gw : 1;
    const T* plane = input + ((long long)b * C + c) * H * W;
    T acc = 0;
    for (int iy = 0; iy < gh; iy++) {
      T y = sh + ph * bh + ((T)iy + (T).5) * bh / (T)gh;
      for (int ix = 0; ix < gw; ix++) {
        T x = sw + pw * bw + ((T)ix + (T).5) * bw / (T)gw;
        acc += bilinear_interpolate(plane, H, W, y, x);
      }
    }
    out[i] = acc / (T)count;
  }
}

template <typename T>
__device__ void roi_align_bwd(const T* grad_out, const T* rois, T* grad_in, long long total, int C,
                              int H, int W, int PH, int PW, T scale, int sampling, int aligned) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    int pw = i % PW, ph = (i / PW) % PH, c = (i / PW / PH) % C;
    long long k = i / PW / PH / C;
    const T* roi = rois + k * 5;
    int b = (int)roi[0];
    T sh, sw, bh, bw; int gh, gw;
    roi_geometry(roi, scale, aligned != 0, PH, PW, sampling, &sh, &sw, &bh, &bw, &gh, &gw);
    int count = gh * gw;
    if (count <= 0) continue;
    T g = grad_out[i] / (T)count;
    T* plane = grad_in + ((long long)b * C + c) * H * W;
    for (int iy = 0; iy < gh; iy++) {
      T y = sh + ph * bh + ((T)iy + (T).5) * bh / (T)gh;
      for (int ix = 0; ix < gw; ix++) {
        T x = sw + pw * bw + ((T)ix + (T).5) * bw / (T)gw;
        if (y < (T)-1.0 || y > (T)H || x < (T)-1.0 || x > (T)W) continue;
        T yy = y <= 0 ? (T)0 : y, xx = x <= 0 ? (T)0 : x;
        int y_low = (int)yy, x_low = (int)xx, y_high, x_high;
        if (y_low >= H - 1) { y_high = y_low = H - 1; yy = (T)y_low; } else { y_high = y_low + 1; }
        if (x_low >= W - 1) { x_high = x_low = W - 1; xx = (T)x_low; } else { x_high = x_low + 1; }
        T ly = yy - y_low, lx = xx - x_low, hy = (T)1. - ly, hx = (T)1. - lx;
        atomicAdd(plane + y_low * W + x_low, g * hy * hx);
        atomicAdd(plane + y_low * W + x_high, g * hy * lx);
        atomicAdd(plane + y_high * W + x_low, g * ly * hx);
        atomicAdd(plane + y_high * W + x_high, g * ly * lx);
      }
    }
  }
}

#define ROI_ALIGN_OPS(T, SUFFIX)                                                                   \
  extern "C" __global__ void roi_align_fwd_##SUFFIX(const T* input, const T* rois, T* out,         \
      long long total, int C, int H, int W, int PH, int PW, T scale, int sampling, int aligned) {  \
    roi_align_fwd<T>(input, rois, out, total, C, H, W, PH, PW, scale, sampling, aligned);          \
  }                                                                                                \
  extern "C" __global__ void roi_align_bwd_##SUFFIX(const T* grad_out, const T* rois, T* grad_in,  \
      long long total, int C, int H, int W, int PH, int PW, T scale, int sampling, int aligned) {  \
    roi_align_bwd<T>(grad_out, rois, grad_in, total, C, H, W, PH, PW, scale, sampling, aligned);   \
  }

ROI_ALIGN_OPS(float, f32)
ROI_ALIGN_OPS(double, f64)
