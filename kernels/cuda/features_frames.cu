/* features_frames.cu: the CUDA backend's per-frame features, one thread
 * block per STFT frame: spectral centroid, bandwidth, rolloff, flatness and
 * contrast peak/valley from the power spectrogram, and RMS and
 * zero-crossing rate from the signal; and chroma_power, one warp per frame.
 * Each equals its CPU reference in kernels/cpu/features_frames.c and
 * features_ops.c (same formulas and constants, sums in double; the rolloff
 * scan and the contrast selection run sequentially in one thread in the
 * CPU's order). Threading: launches on the plan's stream. */
#include <float.h>
#include <math.h>

#include "features_cuda.h"

#define FTPB 256
#define MAX_Q 64 /* contrast quantile bins per band the kernel can hold */

__device__ static double block_sum(double v, double *sm) {
  sm[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  double r = sm[0];
  __syncthreads();
  return r;
}

__global__ void k_spectral(const float *power, int ld_pow, int nb, const double *freq, float roll_pct,
                           dx_cuda_bands bands, float *feat, int ld_feat) {
  __shared__ double sm[FTPB];
  const float *P = power + (size_t)blockIdx.x * ld_pow;
  float *out = feat + (size_t)blockIdx.x * ld_feat;
  double l1 = 0, ws = 0, ls = 0, as = 0, prod = 1;
  int cnt = 0;
  for (int k = threadIdx.x; k < nb; k += blockDim.x, cnt++) {
    double s = sqrtf(P[k]);
    l1 += s;
    ws += freq[k] * s;
    double v = P[k] > 1e-10f ? P[k] : 1e-10f; /* flatness: max(amin, |X|^2), amin a float as on the CPU */
    prod *= v; /* the log of a running product, renormalised every 16 factors (as on the CPU) */
    as += v;
    if ((cnt & 15) == 15) {
      int e;
      prod = frexp(prod, &e);
      ls += e * M_LN2;
    }
  }
  ls += log(prod);
  l1 = block_sum(l1, sm);
  ws = block_sum(ws, sm);
  ls = block_sum(ls, sm);
  as = block_sum(as, sm);
  double norm = l1 < FLT_MIN ? 1.0 : l1; /* util.normalize(norm=1) leaves tiny columns */
  double centroid = ws / norm, bw = 0;
  for (int k = threadIdx.x; k < nb; k += blockDim.x) {
    double d = freq[k] - centroid;
    bw += sqrtf(P[k]) / norm * d * d;
  }
  bw = block_sum(bw, sm);
  if (threadIdx.x == 0) {
    /* rolloff: lowest bin whose cumulative magnitude reaches roll_pct of the total */
    double thr = roll_pct * l1, cum = 0, roll = freq[nb - 1];
    for (int k = 0; k < nb; k++) {
      cum += sqrtf(P[k]);
      if (cum >= thr) {
        roll = freq[k];
        break;
      }
    }
    out[DX_FCOL_CENTROID] = (float)centroid;
    out[DX_FCOL_BANDWIDTH] = (float)sqrt(bw);
    out[DX_FCOL_ROLLOFF] = (float)roll;
    out[DX_FCOL_FLATNESS] = (float)(exp(ls / nb) / (as / nb));
  }
  if ((int)threadIdx.x < bands.n) {
    /* contrast band b: means of the q smallest and q largest magnitudes */
    int b = threadIdx.x, q = bands.q[b], nlo = 0, nhi = 0;
    float lo[MAX_Q], hi[MAX_Q];
    const float *band = P + bands.lo[b];
    for (int k = 0; k < bands.cnt[b]; k++) {
      float v = sqrtf(band[k]);
      if (nlo < q || v < lo[nlo - 1]) {
        int i = nlo < q ? nlo++ : q - 1;
        while (i > 0 && lo[i - 1] > v) {
          lo[i] = lo[i - 1];
          i--;
        }
        lo[i] = v;
      }
      if (nhi < q || v > hi[nhi - 1]) {
        int i = nhi < q ? nhi++ : q - 1;
        while (i > 0 && hi[i - 1] < v) {
          hi[i] = hi[i - 1];
          i--;
        }
        hi[i] = v;
      }
    }
    dx_feat_contrast_store(lo, hi, q, b, out);
  }
}

extern "C" dx_status dx_cuda_spectral_frames(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames,
                                             float *feat, int ld_feat) {
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  int nb = plan->n_bins;
  if (ld_pow < nb || ld_feat < DX_FCOL_COUNT || n_frames < 0) return DX_ERR_INVALID;
  for (int b = 0; b < pv->bands.n; b++)
    if (pv->bands.q[b] > MAX_Q) return DX_ERR_INVALID; /* n_fft too large for the contrast kernel */
  if (!n_frames) return DX_OK;
  k_spectral<<<n_frames, FTPB, 0, pv->stream>>>(power, ld_pow, nb, pv->freq, plan->p.rolloff_percent, pv->bands, feat,
                                                ld_feat);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

/* RMS over the zero-padded frame; zero crossings over the edge-padded one
 * (|x| <= 1e-10 counts as 0, 0 counts as positive), rate = count / n_fft. */
__global__ void k_signal(const float *y, long long y0, long long n, long long frame0, int nf, int hop, float *feat,
                         int ld_feat) {
  __shared__ double sm[FTPB];
  long long start = (frame0 + blockIdx.x) * hop - nf / 2;
  double ss = 0, zc = 0;
  for (int i = threadIdx.x; i < nf; i += blockDim.x) {
    long long idx = start + i;
    float v = (idx >= 0 && idx < n) ? y[idx - y0] : 0.0f;
    ss += (double)v * v;
    if (i > 0) {
      long long a = idx - 1 < 0 ? 0 : (idx - 1 >= n ? n - 1 : idx - 1);
      long long b = idx < 0 ? 0 : (idx >= n ? n - 1 : idx);
      float za = y[a - y0], zb = y[b - y0];
      int na = fabsf(za) <= 1e-10f ? 0 : signbit(za) != 0;
      int nb = fabsf(zb) <= 1e-10f ? 0 : signbit(zb) != 0;
      zc += na != nb;
    }
  }
  ss = block_sum(ss, sm);
  zc = block_sum(zc, sm);
  if (threadIdx.x == 0) {
    float *out = feat + (size_t)blockIdx.x * ld_feat;
    out[DX_FCOL_RMS] = (float)sqrt(ss / nf);
    out[DX_FCOL_ZCR] = (float)zc / nf;
  }
}

extern "C" dx_status dx_cuda_signal_frames(dx_feat_plan *plan, const float *y, size_t y0, size_t n, size_t frame0,
                                           int n_frames, float *feat, int ld_feat) {
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  size_t lo, hi;
  dx_feat_frames_span(n, plan->p.n_fft, plan->p.hop, frame0, n_frames, &lo, &hi);
  if (ld_feat < DX_FCOL_COUNT || n_frames < 0 || n == 0 || y0 > lo) return DX_ERR_INVALID;
  if (!n_frames) return DX_OK;
  k_signal<<<n_frames, FTPB, 0, pv->stream>>>(y, (long long)y0, (long long)n, (long long)frame0, plan->p.n_fft,
                                              plan->p.hop, feat, ld_feat);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

/* chroma_power: one warp per frame, CHROMA_WARPS frames per block. Lane l
 * sums bins l, l + 32, ... in float, separately below key_bin0 (low) and
 * from key_bin0 on (the key's chroma); the lanes' sums are combined by
 * shuffles and chroma = low + key, as on the CPU. n_chroma is the same for
 * the whole warp, so every lane takes part in every shuffle. */
#define CHROMA_WARPS 8
#define CHROMA_MAX 16

__global__ void k_chroma_power(const float *power, int ld_pow, int n_frames, int nb, const float *fb, int nc,
                               int key_bin0, float *chroma, float *key, int ld_out) {
  int lane = threadIdx.x & 31;
  int t = blockIdx.x * CHROMA_WARPS + (threadIdx.x >> 5);
  if (t >= n_frames) return; /* whole warps only (t is the same across a warp) */
  const float *P = power + (size_t)t * ld_pow;
  float lo[CHROMA_MAX], hi[CHROMA_MAX];
#pragma unroll
  for (int c = 0; c < CHROMA_MAX; c++) lo[c] = hi[c] = 0.0f;
  for (int k = lane; k < key_bin0; k += 32) {
    float p = P[k];
#pragma unroll
    for (int c = 0; c < CHROMA_MAX; c++)
      if (c < nc) lo[c] += p * fb[(size_t)c * nb + k];
  }
  for (int k = key_bin0 + lane; k < nb; k += 32) {
    float p = P[k];
#pragma unroll
    for (int c = 0; c < CHROMA_MAX; c++)
      if (c < nc) hi[c] += p * fb[(size_t)c * nb + k];
  }
#pragma unroll
  for (int c = 0; c < CHROMA_MAX; c++)
    if (c < nc)
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
        lo[c] += __shfl_down_sync(0xffffffffu, lo[c], off);
        hi[c] += __shfl_down_sync(0xffffffffu, hi[c], off);
      }
  if (lane == 0) {
    float *co = chroma + (size_t)t * ld_out;
#pragma unroll
    for (int c = 0; c < CHROMA_MAX; c++)
      if (c < nc) co[c] = lo[c] + hi[c];
    if (key) {
      float *ko = key + (size_t)t * ld_out;
#pragma unroll
      for (int c = 0; c < CHROMA_MAX; c++)
        if (c < nc) ko[c] = hi[c];
    }
  }
}

extern "C" dx_status dx_cuda_chroma_power(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames,
                                          int key_bin0, float *chroma, float *key, int ld_out) {
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  int nb = plan->n_bins, nc = plan->p.n_chroma;
  if (nc > CHROMA_MAX || ld_pow < nb || ld_out < nc || n_frames < 0 || key_bin0 < 0) return DX_ERR_INVALID;
  if (key_bin0 > nb) key_bin0 = nb;
  if (!n_frames) return DX_OK;
  unsigned blocks = (unsigned)((n_frames + CHROMA_WARPS - 1) / CHROMA_WARPS);
  k_chroma_power<<<blocks, 32 * CHROMA_WARPS, 0, pv->stream>>>(power, ld_pow, n_frames, nb, plan->chroma_fb, nc,
                                                               key_bin0, chroma, key, ld_out);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}
