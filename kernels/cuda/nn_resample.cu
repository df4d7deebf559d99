/* nn_resample.cu: julius.resample_frac (24 zeros, rolloff 0.945, replicate
 * edges) for the Demucs v3 time-only model's 2x resampling. The filter bank
 * is built on the host by dx_resample_taps (dx_resample.h, shared with the
 * CPU op), uploaded into a temporary block, and one thread computes each
 * output sample summing the taps in the same order as the CPU reference.
 *
 * Threading: one backend per thread; scratch from its allocator. */
#include <stdlib.h>

#include "nn_cuda.h"

extern "C" {
#include "dx_resample.h"
}

static int gcd_i(int a, int b) {
  while (b) {
    const int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* y[r][o] = sum_k taps[o % new][k] * x[r][clamp((o / new)*old + k - width)]. */
__global__ void resample_kernel(const float *x, float *y, const float *taps, int len, long long out_len, int old_sr,
                                int new_sr, int width, int ntaps, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / out_len, o = i % out_len;
    const long long blk = o / new_sr;
    const float *tj = taps + (long long)(o % new_sr) * ntaps;
    const float *xr = x + r * len;
    float acc = 0.0f;
    for (int k = 0; k < ntaps; k++) {
      long long idx = blk * old_sr + k - width;
      if (idx < 0) idx = 0;
      if (idx >= len) idx = len - 1;
      acc += tj[k] * xr[idx];
    }
    y[i] = acc;
  }
}

extern "C" dx_status dx_cuda_nn_resample(dx_backend *be, const float *x, float *y, int rows, int len, int old_sr,
                                         int new_sr) {
  if (rows <= 0 || len <= 0 || old_sr <= 0 || new_sr <= 0) return DX_ERR_INVALID;
  const int g = gcd_i(old_sr, new_sr);
  old_sr /= g;
  new_sr /= g;
  const int width = dx_resample_width(old_sr, new_sr);
  const long long ntaps = 2LL * width + old_sr;
  if (width < 0 || ntaps * new_sr > (1 << 24)) return DX_ERR_INVALID;
  float *host = (float *)malloc((size_t)(ntaps * new_sr) * sizeof(float));
  if (!host) return DX_ERR_NOMEM;
  if (dx_resample_taps(old_sr, new_sr, host, (int)(ntaps * new_sr)) != ntaps) {
    free(host);
    return DX_ERR_INVALID;
  }
  float *taps = NULL;
  dx_status st = dx_cuda_alloc(be, (size_t)(ntaps * new_sr) * sizeof(float), (void **)&taps);
  if (st == DX_OK) {
    cudaStream_t s = dx_cuda_stream(be);
    cudaError_t e = cudaMemcpyAsync(taps, host, (size_t)(ntaps * new_sr) * sizeof(float), cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s); /* host is freed below */
    if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "resample taps upload", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  free(host);
  if (st == DX_OK) {
    const long long out_len = (long long)len * new_sr / old_sr;
    const long long total = (long long)rows * out_len;
    if (total > 0) {
      resample_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, y, taps, len, out_len, old_sr,
                                                                                new_sr, width, (int)ntaps, total);
      cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "resample_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
    }
  }
  dx_cuda_free(be, taps);
  return st;
}
