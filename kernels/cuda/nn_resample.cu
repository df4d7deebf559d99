/* nn_resample.cu: julius.resample_frac (24 zeros, rolloff 0.945, replicate
 * edges) for the Demucs v3 time-only model's 2x resampling. The filter bank
 * is built on the host by dx_resample_taps (dx_resample.h, shared with the
 * CPU op) and uploaded once per (old, new) ratio into a small per-backend
 * cache (so a forward pass never waits for the host); one thread computes
 * each output sample summing the taps in the same order as the CPU
 * reference.
 *
 * Threading: one backend per thread (the cache lives in its context). */
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

#define RS_SLOTS 8

typedef struct {
  int old_sr, new_sr; /* reduced ratio */
  float *taps;        /* [new_sr][ntaps] on the device (cudaMalloc, not the allocator) */
} rs_entry;

struct dx_cuda_resample_cache {
  rs_entry e[RS_SLOTS];
  int n;
};

extern "C" void dx_cuda_resample_cache_free(dx_cuda_ctx *c) {
  if (!c->resample_cache) return;
  for (int i = 0; i < c->resample_cache->n; i++) cudaFree(c->resample_cache->e[i].taps);
  free(c->resample_cache);
  c->resample_cache = NULL;
}

/* The device filter bank of a reduced ratio (built and uploaded on first use). */
static dx_status taps_lookup(dx_backend *be, int old_sr, int new_sr, long long ntaps, const float **out) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  if (!c->resample_cache) {
    c->resample_cache = (dx_cuda_resample_cache *)calloc(1, sizeof *c->resample_cache);
    if (!c->resample_cache) return DX_ERR_NOMEM;
  }
  dx_cuda_resample_cache *rc = c->resample_cache;
  for (int i = 0; i < rc->n; i++)
    if (rc->e[i].old_sr == old_sr && rc->e[i].new_sr == new_sr) {
      *out = rc->e[i].taps;
      return DX_OK;
    }
  if (rc->n == RS_SLOTS) { /* full: start over (cudaFree waits for queued work using them) */
    for (int i = 0; i < rc->n; i++) cudaFree(rc->e[i].taps);
    rc->n = 0;
  }
  const size_t bytes = (size_t)(ntaps * new_sr) * sizeof(float);
  float *host = (float *)malloc(bytes);
  if (!host) return DX_ERR_NOMEM;
  if (dx_resample_taps(old_sr, new_sr, host, (int)(ntaps * new_sr)) != ntaps) {
    free(host);
    return DX_ERR_INVALID;
  }
  float *taps = NULL;
  cudaError_t e = cudaMalloc(&taps, bytes);
  if (e == cudaSuccess) {
    e = cudaMemcpyAsync(taps, host, bytes, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream); /* host is freed below */
    if (e != cudaSuccess) cudaFree(taps);
  }
  free(host);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return dx_cuda_report(e == cudaErrorMemoryAllocation ? DX_ERR_NOMEM : DX_ERR_CUDA, "resample taps upload",
                          cudaGetErrorString(e), __FILE__, __LINE__);
  }
  rc->e[rc->n].old_sr = old_sr;
  rc->e[rc->n].new_sr = new_sr;
  rc->e[rc->n].taps = taps;
  rc->n++;
  *out = taps;
  return DX_OK;
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
  const float *taps = NULL;
  DX_CU_TRY(taps_lookup(be, old_sr, new_sr, ntaps, &taps));
  const long long out_len = (long long)len * new_sr / old_sr;
  const long long total = (long long)rows * out_len;
  if (total > 0) {
    resample_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, y, taps, len, out_len, old_sr,
                                                                              new_sr, width, (int)ntaps, total);
    DX_CUDA_LAUNCH_CHECK();
  }
  return DX_OK;
}
