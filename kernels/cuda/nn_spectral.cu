/* nn_spectral.cu: STFT and inverse STFT on cuFFT (periodic Hann window,
 * 1/sqrt(nfft) normalisation, torch conventions; see dx_nn_ops.h).
 *
 * stft: a kernel cuts and windows the frames into a [items*frames][nfft]
 * buffer, one batched R2C transform, a kernel scales and writes the
 * [B][2][bins][frames] layout. istft: a kernel gathers the frames' bins into
 * a complex buffer (bins past `bins` zero, the imaginary parts of DC and
 * Nyquist dropped as FFTW's c2r does), one batched C2R transform, and a
 * gather kernel overlap-adds each output sample over the frames covering it
 * (in increasing frame order) and divides by the summed squared window of
 * all frames_total frames. Batch items are processed in groups so the
 * buffers stay under about 256 MiB.
 *
 * Plans are cached per (direction, nfft, batch) in the backend's context
 * (FFT_SLOTS entries, least recently used evicted).
 *
 * Threading: one backend per thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_cuda.h"

#define FFT_SLOTS 16
#define SPEC_GROUP_FLOATS ((long long)1 << 26)

typedef struct {
  int used, type, nfft, batch;
  cufftHandle plan;
  unsigned long long last;
} fft_entry;

struct dx_cuda_fft_cache {
  fft_entry e[FFT_SLOTS];
  unsigned long long tick;
};

extern "C" void dx_cuda_fft_cache_free(dx_cuda_ctx *c) {
  if (!c->fft_cache) return;
  for (int i = 0; i < FFT_SLOTS; i++)
    if (c->fft_cache->e[i].used) cufftDestroy(c->fft_cache->e[i].plan);
  free(c->fft_cache);
  c->fft_cache = NULL;
}

static dx_status fft_plan(dx_backend *be, cufftType type, int nfft, int batch, cufftHandle *out) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  if (!c->fft_cache) {
    c->fft_cache = (dx_cuda_fft_cache *)calloc(1, sizeof *c->fft_cache);
    if (!c->fft_cache) return DX_ERR_NOMEM;
  }
  dx_cuda_fft_cache *fc = c->fft_cache;
  fc->tick++;
  int victim = 0;
  for (int i = 0; i < FFT_SLOTS; i++) {
    fft_entry *e = &fc->e[i];
    if (e->used && e->type == (int)type && e->nfft == nfft && e->batch == batch) {
      e->last = fc->tick;
      *out = e->plan;
      return DX_OK;
    }
    if (!e->used || (fc->e[victim].used && e->last < fc->e[victim].last)) victim = i;
  }
  fft_entry *e = &fc->e[victim];
  if (e->used) {
    DX_CUDA_CHECK(cudaStreamSynchronize(c->stream)); /* queued transforms may still use it */
    cufftDestroy(e->plan);
    e->used = 0;
  }
  /* A handle whose planning failed is destroyed before the one retry
   * (after releasing the allocator's cache: cuFFT may have lacked room for
   * its work area, which some versions report as an internal error) or the
   * error. */
  cufftHandle plan;
  int n = nfft;
  for (int attempt = 0;; attempt++) {
    DX_CUFFT_CHECK(cufftCreate(&plan));
    size_t work = 0;
    const cufftResult r = cufftMakePlanMany(plan, 1, &n, NULL, 1, 0, NULL, 1, 0, type, batch, &work);
    if (r == CUFFT_SUCCESS) break;
    cufftDestroy(plan);
    if (attempt)
      return dx_cuda_report(DX_ERR_CUFFT, "cufftMakePlanMany", "cufft failure", __FILE__, __LINE__);
    dx_cuda_cache_trim(be);
  }
  cufftResult r = cufftSetStream(plan, c->stream);
  if (r != CUFFT_SUCCESS) {
    cufftDestroy(plan);
    return dx_cuda_report(DX_ERR_CUFFT, "cufftSetStream", "cufft failure", __FILE__, __LINE__);
  }
  e->used = 1;
  e->type = (int)type;
  e->nfft = nfft;
  e->batch = batch;
  e->plan = plan;
  e->last = fc->tick;
  *out = plan;
  return DX_OK;
}

/* Batch items per transform group (buffers under SPEC_GROUP_FLOATS, at
 * most 2^31-1 transforms) and the group's frame buffer [group*frames][nfft]
 * and spectrum [group*frames][nfft/2+1]. The caller frees both with
 * dx_cuda_free, also on failure (DX_ERR_NOMEM). */
static dx_status spec_buffers(dx_backend *be, int batch, int frames, int nfft, long long *group_out, float **buf,
                              cufftComplex **spec) {
  const int nh = nfft / 2 + 1;
  long long group = SPEC_GROUP_FLOATS / ((long long)frames * nfft);
  if (group < 1) group = 1;
  if (group > batch) group = batch;
  if (group * frames > 0x7fffffffLL) group = 0x7fffffffLL / frames;
  *group_out = group;
  dx_status st = dx_cuda_alloc(be, (size_t)group * frames * nfft * sizeof(float), (void **)buf);
  if (st == DX_OK) st = dx_cuda_alloc(be, (size_t)group * frames * nh * sizeof(cufftComplex), (void **)spec);
  return st;
}

static __device__ __forceinline__ float hann(long long n, int nfft) {
  return (float)(0.5 - 0.5 * cospi(2.0 * (double)n / (double)nfft));
}

/* buf[(bi*frames + t)*nfft + n] = x[bi][(frame0 + t)*hop + n] * w[n]. */
__global__ void stft_frames_kernel(const float *x, float *buf, long long len, int nfft, int hop, int frame0,
                                   int frames, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int n = (int)(i % nfft);
    const long long r = i / nfft;
    const int t = (int)(r % frames);
    const long long bi = r / frames;
    buf[i] = x[bi * len + (long long)(frame0 + t) * hop + n] * hann(n, nfft);
  }
}

/* y[bi][part][f][t] = spec[bi*frames + t][f].part * norm. */
__global__ void stft_out_kernel(const cufftComplex *spec, float *y, int nh, int bins, int frames, float norm,
                                long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int t = (int)(i % frames);
    long long r = i / frames;
    const int f = (int)(r % bins);
    r /= bins;
    const int part = (int)(r % 2);
    const long long bi = r / 2;
    const cufftComplex v = spec[(bi * frames + t) * nh + f];
    y[i] = (part ? v.y : v.x) * norm;
  }
}

extern "C" dx_status dx_cuda_nn_stft(dx_backend *be, const float *x, float *y, int batch, long long len, int nfft,
                                     int hop, int frame0, int frames, int bins) {
  if (batch <= 0 || len <= 0 || nfft <= 1 || hop <= 0 || frame0 < 0 || frames <= 0 || bins <= 0 ||
      bins > nfft / 2 + 1 || (long long)(frame0 + frames - 1) * hop + nfft > len)
    return DX_ERR_INVALID;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  const int nh = nfft / 2 + 1;
  long long group;
  float *buf = NULL;
  cufftComplex *spec = NULL;
  dx_status st = spec_buffers(be, batch, frames, nfft, &group, &buf, &spec);
  const float norm = (float)(1.0 / sqrt((double)nfft));
  for (long long b0 = 0; b0 < batch && st == DX_OK; b0 += group) {
    const long long nb = batch - b0 < group ? batch - b0 : group;
    cufftHandle plan;
    st = fft_plan(be, CUFFT_R2C, nfft, (int)(nb * frames), &plan);
    if (st != DX_OK) break;
    const long long tin = nb * frames * nfft, tout = nb * 2 * bins * (long long)frames;
    stft_frames_kernel<<<dx_cuda_grid(tin, 256), 256, 0, c->stream>>>(x + b0 * len, buf, len, nfft, hop, frame0,
                                                                     frames, tin);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
      st = dx_cuda_report(DX_ERR_CUDA, "stft_frames_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
      break;
    }
    if (cufftExecR2C(plan, buf, spec) != CUFFT_SUCCESS) {
      st = dx_cuda_report(DX_ERR_CUFFT, "cufftExecR2C", "cufft failure", __FILE__, __LINE__);
      break;
    }
    stft_out_kernel<<<dx_cuda_grid(tout, 256), 256, 0, c->stream>>>(spec, y + b0 * 2 * bins * (long long)frames, nh,
                                                                   bins, frames, norm, tout);
    e = cudaGetLastError();
    if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "stft_out_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  dx_cuda_free(be, buf);
  dx_cuda_free(be, spec);
  return st;
}

/* spec[bi*frames + t][f] = (z[bi][0][f][t], z[bi][1][f][t]) for f < bins, else 0.
 * The imaginary parts of the DC bin and (even nfft) the Nyquist bin are
 * dropped: a real inverse transform ignores them (FFTW, the CPU reference,
 * does), while cuFFT's C2R leaves non-Hermitian input undefined (a nonzero
 * imaginary DC, which a network's spectrogram has, would come out as a
 * Nyquist-rate ripple). */
__global__ void istft_in_kernel(const float *z, cufftComplex *spec, int nfft, int nh, int bins, int frames,
                                long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int f = (int)(i % nh);
    const long long r = i / nh;
    const int t = (int)(r % frames);
    const long long bi = r / frames;
    cufftComplex v;
    v.x = 0.0f;
    v.y = 0.0f;
    if (f < bins) {
      const float *zb = z + bi * 2 * bins * (long long)frames;
      v.x = zb[(long long)f * frames + t];
      if (f != 0 && 2 * f != nfft) v.y = zb[((long long)bins + f) * frames + t];
    }
    spec[i] = v;
  }
}

/* y[bi][i] at signal position p = out0 + i: overlap-add of the frames
 * covering p (windowed, scaled by norm), divided by the window envelope. */
__global__ void istft_ola_kernel(const float *buf, float *y, int nfft, int hop, int frames, int frame0,
                                 int frames_total, long long out0, long long out_len, float norm, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long bi = i / out_len, p = out0 + i % out_len;
    /* global frames g with g*hop <= p < g*hop + nfft */
    long long g0 = p - nfft + 1 <= 0 ? 0 : (p - nfft + 1 + hop - 1) / hop;
    long long g1 = p < 0 ? -1 : p / hop;
    if (g1 > frames_total - 1) g1 = frames_total - 1;
    float num = 0.0f;
    double env = 0.0;
    for (long long g = g0; g <= g1; g++) {
      const long long n = p - g * hop;
      const float w = hann(n, nfft);
      env += (double)w * w;
      if (g >= frame0 && g < (long long)frame0 + frames)
        num += buf[(bi * frames + (g - frame0)) * nfft + n] * norm * w;
    }
    y[i] = env > 1e-11 ? (float)(num / env) : 0.0f;
  }
}

extern "C" dx_status dx_cuda_nn_istft(dx_backend *be, const float *z, float *y, int batch, int nfft, int hop, int bins,
                                      int frames, int frame0, int frames_total, long long out0, long long out_len) {
  if (batch <= 0 || nfft <= 1 || hop <= 0 || bins <= 0 || bins > nfft / 2 + 1 || frames <= 0 || frame0 < 0 ||
      frames_total <= 0 || (long long)frame0 + frames > frames_total || out0 < 0 || out_len <= 0 ||
      out0 + out_len > (long long)(frames_total - 1) * hop + nfft)
    return DX_ERR_INVALID;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  const int nh = nfft / 2 + 1;
  long long group;
  float *buf = NULL;
  cufftComplex *spec = NULL;
  dx_status st = spec_buffers(be, batch, frames, nfft, &group, &buf, &spec);
  const float norm = (float)(1.0 / sqrt((double)nfft));
  for (long long b0 = 0; b0 < batch && st == DX_OK; b0 += group) {
    const long long nb = batch - b0 < group ? batch - b0 : group;
    cufftHandle plan;
    st = fft_plan(be, CUFFT_C2R, nfft, (int)(nb * frames), &plan);
    if (st != DX_OK) break;
    const long long tin = nb * frames * (long long)nh, tout = nb * out_len;
    istft_in_kernel<<<dx_cuda_grid(tin, 256), 256, 0, c->stream>>>(z + b0 * 2 * bins * (long long)frames, spec, nfft,
                                                                  nh, bins, frames, tin);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
      st = dx_cuda_report(DX_ERR_CUDA, "istft_in_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
      break;
    }
    if (cufftExecC2R(plan, spec, buf) != CUFFT_SUCCESS) {
      st = dx_cuda_report(DX_ERR_CUFFT, "cufftExecC2R", "cufft failure", __FILE__, __LINE__);
      break;
    }
    istft_ola_kernel<<<dx_cuda_grid(tout, 256), 256, 0, c->stream>>>(buf, y + b0 * out_len, nfft, hop, frames, frame0,
                                                                    frames_total, out0, out_len, norm, tout);
    e = cudaGetLastError();
    if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "istft_ola_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  dx_cuda_free(be, buf);
  dx_cuda_free(be, spec);
  return st;
}
