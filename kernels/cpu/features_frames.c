/* features_frames.c: the CPU backend's per-frame features: spectral centroid,
 * bandwidth, rolloff, flatness and contrast peak/valley from a power
 * spectrogram, and RMS and zero-crossing rate from the signal. Conventions
 * are librosa 0.11's defaults, written beside each computation. Sums over
 * bins run in float partial sums combined in double (the CUDA kernels sum
 * in double; both agree to about 1e-6).
 * Threading: uses the plan's scratch; one worker per plan. */
#include <float.h>
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "features_cpu.h"

/* Insert v into the ascending list a[0..*n) of at most q entries (kept:
 * the q smallest); the caller only calls when v belongs there. */
static inline void insert_lo(float v, float *a, int *n, int q) {
  int i = *n < q ? (*n)++ : q - 1;
  while (i > 0 && a[i - 1] > v) {
    a[i] = a[i - 1];
    i--;
  }
  a[i] = v;
}
static inline void insert_hi(float v, float *a, int *n, int q) {
  int i = *n < q ? (*n)++ : q - 1;
  while (i > 0 && a[i - 1] < v) {
    a[i] = a[i - 1];
    i--;
  }
  a[i] = v;
}

/* The q largest values of x[0..n) into hi (descending) and the q smallest
 * into lo (ascending), 1 <= q <= n, by insertion into a short sorted list.
 * A value changes a list only when it beats the list's last entry. The
 * largest are looked for from the start and the smallest from the end:
 * magnitude spectra mostly fall with frequency, so either list then fills
 * with its final values early and later values pass it by. */
static void select_hi(const float *x, int n, int q, float *hi) {
  int nh = 0, k = 0;
  for (; k < q; k++) insert_hi(x[k], hi, &nh, q);
  for (float th = hi[q - 1]; k < n; k++)
    if (x[k] > th) insert_hi(x[k], hi, &nh, q), th = hi[q - 1];
}
static void select_lo(const float *x, int n, int q, float *lo) {
  int nl = 0, k = n - 1;
  for (; k >= n - q; k--) insert_lo(x[k], lo, &nl, q);
  for (float tl = lo[q - 1]; k >= 0; k--)
    if (x[k] < tl) insert_lo(x[k], lo, &nl, q), tl = lo[q - 1];
}

#define EXT_BLK 8
#define EXT_MAX_BLOCKS 1024

/* Both lists for a contrast band. For long bands the maxima of blocks of
 * EXT_BLK values come first (vector code): the q-th largest block maximum
 * m is at most the q-th largest value (q blocks hold a value >= m), so
 * only values >= m can be among the q largest, and they lie in blocks
 * whose maximum is >= m: only those blocks are walked. Minima likewise.
 * The lists come out as the exact q smallest / largest values. */
static void band_extremes(const float *x, int n, int q, float *lo, float *hi) {
  if (q < 1 || q > n) return;
  int nblk = n / EXT_BLK;
  if (q > 64 || nblk < 4 * q || nblk > EXT_MAX_BLOCKS) {
    select_lo(x, n, q, lo);
    select_hi(x, n, q, hi);
    return;
  }
  float bmax[EXT_MAX_BLOCKS], bmin[EXT_MAX_BLOCKS], t[64];
  for (int b = 0; b < nblk; b++) {
    const float *v = x + b * EXT_BLK;
    float mx = v[0], mn = v[0];
    for (int j = 1; j < EXT_BLK; j++) {
      mx = v[j] > mx ? v[j] : mx;
      mn = v[j] < mn ? v[j] : mn;
    }
    bmax[b] = mx;
    bmin[b] = mn;
  }
  select_lo(bmin, nblk, q, t);
  float lo_bound = t[q - 1];
  select_hi(bmax, nblk, q, t);
  float hi_bound = t[q - 1];
  int nh = 0, nl = 0;
  for (int b = 0; b < nblk; b++) {
    if (bmax[b] < hi_bound) continue;
    const float *v = x + b * EXT_BLK;
    for (int j = 0; j < EXT_BLK; j++)
      if (v[j] >= hi_bound && (nh < q || v[j] > hi[q - 1])) insert_hi(v[j], hi, &nh, q);
  }
  for (int k = nblk * EXT_BLK; k < n; k++)
    if (nh < q || x[k] > hi[q - 1]) insert_hi(x[k], hi, &nh, q);
  for (int k = n - 1; k >= nblk * EXT_BLK; k--)
    if (nl < q || x[k] < lo[q - 1]) insert_lo(x[k], lo, &nl, q);
  for (int b = nblk - 1; b >= 0; b--) {
    if (bmin[b] > lo_bound) continue;
    const float *v = x + b * EXT_BLK;
    for (int j = EXT_BLK - 1; j >= 0; j--)
      if (v[j] <= lo_bound && (nl < q || v[j] < lo[q - 1])) insert_lo(v[j], lo, &nl, q);
  }
}

/* Sums over bins run in float with LANES independent partial sums (which
 * the compiler turns into vector registers; each lane adds about
 * n_bins / LANES terms, so the relative rounding stays near 1e-6) and are
 * combined in double. */
#define LANES 8

static inline double lanes_sum(const float *l) {
  double s = 0;
  for (int j = 0; j < LANES; j++) s += l[j];
  return s;
}

/* S[k] = sqrt(P[k]) (P >= 0); returns nothing, the sums come after. */
static inline void magnitudes(const float *P, float *S, int nb) {
  int k = 0;
#if defined(__SSE2__)
  for (; k + 4 <= nb; k += 4) _mm_storeu_ps(S + k, _mm_sqrt_ps(_mm_loadu_ps(P + k)));
#endif
  for (; k < nb; k++) S[k] = sqrtf(P[k]);
}

DX_HOT dx_status dx_cpu_spectral_frames(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *feat,
                                 int ld_feat) {
  dx_cpu_feat_priv *pv = plan->priv;
  int nb = plan->n_bins, nb8 = nb & ~(LANES - 1);
  if (ld_pow < nb || ld_feat < DX_FCOL_COUNT || n_frames < 0) return DX_ERR_INVALID;
  const double *freq = pv->freq;
  const float *ff = pv->freqf;
  float *lo = pv->scratch, *hi = pv->scratch + nb, *S = pv->scratch + 2 * nb;
  for (int f = 0; f < n_frames; f++) {
    const float *P = power + (size_t)f * ld_pow;
    float *out = feat + (size_t)f * ld_feat;

    /* Magnitude S = |X| for centroid, bandwidth, rolloff and contrast
     * (librosa's _spectrogram with power=1). */
    magnitudes(P, S, nb);
    float a1[LANES] = {0}, af[LANES] = {0};
    for (int k = 0; k < nb8; k += LANES)
      for (int j = 0; j < LANES; j++) {
        a1[j] += S[k + j];
        af[j] += S[k + j] * ff[k + j];
      }
    for (int k = nb8; k < nb; k++) {
      a1[0] += S[k];
      af[0] += S[k] * ff[k];
    }
    double l1 = lanes_sum(a1), wsum = lanes_sum(af);
    /* util.normalize(S, norm=1): a column whose L1 norm is below the
     * smallest normal float is not scaled. */
    double norm = l1 < FLT_MIN ? 1.0 : l1;
    double centroid = wsum / norm;
    /* spectral_bandwidth, p = 2: sqrt(sum_k S_norm[k] (f_k - centroid)^2) */
    float cf = (float)centroid, ab[LANES] = {0};
    for (int k = 0; k < nb8; k += LANES)
      for (int j = 0; j < LANES; j++) {
        float d = ff[k + j] - cf;
        ab[j] += S[k + j] * d * d;
      }
    for (int k = nb8; k < nb; k++) ab[0] += S[k] * (ff[k] - cf) * (ff[k] - cf);
    double bw = lanes_sum(ab) / norm;
    /* spectral_rolloff(roll_percent): the lowest bin whose cumulative
     * magnitude reaches roll_percent of the total: whole blocks of LANES
     * bins are skipped while the running sum stays below, then the block
     * that crosses is walked bin by bin. */
    double thr = plan->p.rolloff_percent * l1, cum = 0, roll = freq[nb - 1];
    for (int k0 = 0; k0 < nb; k0 += LANES) {
      int k1 = k0 + LANES < nb ? k0 + LANES : nb;
      float bs = 0;
      for (int k = k0; k < k1; k++) bs += S[k];
      if (cum + bs < thr && k1 < nb) {
        cum += bs;
        continue;
      }
      int k = k0;
      for (; k < k1; k++) {
        cum += S[k];
        if (cum >= thr) break;
      }
      if (k < k1) {
        roll = freq[k];
        break;
      }
    }
    /* spectral_flatness(power=2, amin=1e-10): geometric over arithmetic
     * mean of max(amin, |X|^2). The sum of logs is the log of LANES running
     * products in double, renormalised with frexp every 16 factors each
     * (the factors lie in [1e-10, ~1e7], so 16 of them stay far inside
     * double's range). */
    double lsum = 0, prod[LANES];
    float as[LANES] = {0};
    for (int j = 0; j < LANES; j++) prod[j] = 1;
    for (int k0 = 0; k0 < nb8; k0 += 16 * LANES) {
      int k1 = k0 + 16 * LANES < nb8 ? k0 + 16 * LANES : nb8;
      for (int k = k0; k < k1; k += LANES)
        for (int j = 0; j < LANES; j++) {
          float v = P[k + j] > 1e-10f ? P[k + j] : 1e-10f;
          prod[j] *= v;
          as[j] += v;
        }
      for (int j = 0; j < LANES; j++) {
        int e;
        prod[j] = frexp(prod[j], &e);
        lsum += e * M_LN2;
      }
    }
    for (int k = nb8; k < nb; k++) {
      float v = P[k] > 1e-10f ? P[k] : 1e-10f;
      prod[0] *= v;
      as[0] += v;
    }
    for (int j = 0; j < LANES; j++) lsum += log(prod[j]);
    double flat = exp(lsum / nb) / (lanes_sum(as) / nb);
    out[DX_FCOL_CENTROID] = (float)centroid;
    out[DX_FCOL_BANDWIDTH] = (float)sqrt(bw);
    out[DX_FCOL_ROLLOFF] = (float)roll;
    out[DX_FCOL_FLATNESS] = (float)flat;

    /* spectral_contrast: per octave band, the mean of the q smallest
     * (valley) and q largest (peak) magnitudes; dB conversion comes later. */
    for (int b = 0; b < pv->n_contrast; b++) {
      int q = pv->band_q[b];
      band_extremes(S + pv->band_lo[b], pv->band_cnt[b], q, lo, hi);
      double vs = 0, ps = 0;
      for (int i = 0; i < q; i++) {
        vs += lo[i];
        ps += hi[i];
      }
      out[DX_FCOL_PEAK0 + b] = (float)(ps / q);
      out[DX_FCOL_VALLEY0 + b] = (float)(vs / q);
    }
  }
  return DX_OK;
}

/* librosa.feature.rms(frame_length=n_fft, hop, center=True, pad_mode='constant'):
 * sqrt(mean(x^2)) over each zero-padded frame, no window.
 * librosa.feature.zero_crossing_rate(frame_length=n_fft, hop, center=True):
 * the signal is padded by repeating its edge samples (mode='edge'); values
 * with |x| <= 1e-10 count as 0; a crossing at i (1 <= i < n_fft) is a change
 * of sign bit between x[i-1] and x[i] (0 counts as positive); the rate is
 * crossings / n_fft. */
DX_HOT dx_status dx_cpu_signal_frames(dx_feat_plan *plan, const float *y, size_t n, size_t frame0, int n_frames,
                               float *feat, int ld_feat) {
  int nf = plan->p.n_fft, hop = plan->p.hop;
  if (ld_feat < DX_FCOL_COUNT || n_frames < 0 || n == 0) return DX_ERR_INVALID;
  for (int f = 0; f < n_frames; f++) {
    long long start = (long long)(frame0 + (size_t)f) * hop - nf / 2;
    double ss = 0;
    int zc = 0, prev_neg = 0;
    if (start >= 0 && start + nf <= (long long)n) { /* interior frame: no padding */
      /* float partial sums in LANES lanes (vector registers), combined in
       * double; a value is negative for the crossing count when below
       * -1e-10 (|x| <= 1e-10 counts as 0, and 0 as positive) */
      const float *x = y + start;
      float acc[LANES] = {0};
      int nf8 = nf & ~(LANES - 1);
      for (int i = 0; i < nf8; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[i + j] * x[i + j];
      for (int i = nf8; i < nf; i++) acc[0] += x[i] * x[i];
      ss = lanes_sum(acc);
      for (int i = 1; i < nf; i++) zc += (x[i] < -1e-10f) ^ (x[i - 1] < -1e-10f);
      float *out = feat + (size_t)f * ld_feat;
      out[DX_FCOL_RMS] = (float)sqrt(ss / nf);
      out[DX_FCOL_ZCR] = (float)zc / nf;
      continue;
    }
    for (int i = 0; i < nf; i++) {
      long long idx = start + i;
      float v = (idx >= 0 && idx < (long long)n) ? y[idx] : 0.0f;
      ss += (double)v * v;
      long long ci = idx < 0 ? 0 : idx >= (long long)n ? (long long)n - 1 : idx;
      float z = y[ci];
      int neg = fabsf(z) <= 1e-10f ? 0 : signbit(z) != 0;
      if (i > 0 && neg != prev_neg) zc++;
      prev_neg = neg;
    }
    float *out = feat + (size_t)f * ld_feat;
    out[DX_FCOL_RMS] = (float)sqrt(ss / nf);
    out[DX_FCOL_ZCR] = (float)zc / nf;
  }
  return DX_OK;
}
