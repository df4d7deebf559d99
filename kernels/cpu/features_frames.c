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

#include "features_cpu.h"
#include "nn_vmath.h"

#pragma GCC diagnostic ignored "-Wpsabi" /* dx_vf helpers are always inlined */

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

/* Contrast's band extremes work on eight floats at a time (dx_vf,
 * nn_vmath.h: AVX in the x86-64-v3 build, two SSE halves in the baseline). */
_Static_assert(DX_VF_LANES == 8, "the list shuffles below assume eight lanes");

#define EXT_QMAX 16 /* longest list kept in two vectors */

/* Insert v into the descending list L = (a, b) of 16, dropping the last,
 * without branches: new[i] = max(L[i], min(L[i-1], v)) with L[-1] = +inf
 * keeps L[i] where L[i] >= v, puts v at the first place it beats, and
 * shifts the rest down one. Each new[i] depends on L[i-1] and L[i] alone,
 * so the first q entries stay the q largest values inserted even when the
 * entries past q are left stale (values at most the q-th are skipped).
 * The ascending list of the smallest is the mirror image. */
static inline __attribute__((always_inline)) void top_insert(dx_vf *a, dx_vf *b, float v) {
  dx_vf vv = dx_vf_set(v), edge = dx_vf_set(INFINITY);
  dx_vf sa = __builtin_shufflevector(*a, edge, 8, 0, 1, 2, 3, 4, 5, 6);
  dx_vf sb = __builtin_shufflevector(*a, *b, 7, 8, 9, 10, 11, 12, 13, 14);
  *a = dx_vf_max(*a, dx_vf_min(sa, vv));
  *b = dx_vf_max(*b, dx_vf_min(sb, vv));
}
static inline __attribute__((always_inline)) void bottom_insert(dx_vf *a, dx_vf *b, float v) {
  dx_vf vv = dx_vf_set(v), edge = dx_vf_set(-INFINITY);
  dx_vf sa = __builtin_shufflevector(*a, edge, 8, 0, 1, 2, 3, 4, 5, 6);
  dx_vf sb = __builtin_shufflevector(*a, *b, 7, 8, 9, 10, 11, 12, 13, 14);
  *a = dx_vf_min(*a, dx_vf_max(sa, vv));
  *b = dx_vf_min(*b, dx_vf_max(sb, vv));
}
static inline __attribute__((always_inline)) float list_at(dx_vf a, dx_vf b, int i) {
  float l[EXT_QMAX];
  memcpy(l, &a, sizeof a);
  memcpy(l + 8, &b, sizeof b);
  return l[i];
}

/* The q largest values of x[0..n) into hi (descending) and the q smallest
 * into lo (ascending), 1 <= q <= min(n, EXT_QMAX). A chunk of eight is
 * inserted only when one of its values beats the list's q-th entry; the
 * lists hold exactly the q extreme values whatever the order they are met
 * in. The largest are looked for from the start and the smallest from the
 * end: magnitude spectra mostly fall with frequency, so either list fills
 * with its final values early and the later chunks pass it by in one
 * comparison. Inlined into the caller so that it is compiled with the
 * caller's instruction set. */
static inline __attribute__((always_inline)) void select_hi(const float *x, int n, int q, float *hi) {
  dx_vf a = dx_vf_set(-INFINITY), b = a;
  int k = 0;
  for (; k < q; k++) top_insert(&a, &b, x[k]);
  float th = list_at(a, b, q - 1);
  for (; k + 8 <= n; k += 8) {
    dx_vf v;
    memcpy(&v, x + k, sizeof v);
    if (!dx_vf_any(v > dx_vf_set(th))) continue;
    for (int j = k; j < k + 8; j++) top_insert(&a, &b, x[j]);
    th = list_at(a, b, q - 1);
  }
  for (; k < n; k++) top_insert(&a, &b, x[k]);
  for (int i = 0; i < q; i++) hi[i] = list_at(a, b, i);
}
static inline __attribute__((always_inline)) void select_lo(const float *x, int n, int q, float *lo) {
  dx_vf a = dx_vf_set(INFINITY), b = a;
  int k = n - 1;
  for (; k >= n - q; k--) bottom_insert(&a, &b, x[k]);
  float tl = list_at(a, b, q - 1);
  for (; k - 8 >= -1; k -= 8) { /* the chunk x[k - 7 .. k] */
    dx_vf v;
    memcpy(&v, x + k - 7, sizeof v);
    if (!dx_vf_any(v < dx_vf_set(tl))) continue;
    for (int j = k; j > k - 8; j--) bottom_insert(&a, &b, x[j]);
    tl = list_at(a, b, q - 1);
  }
  for (; k >= 0; k--) bottom_insert(&a, &b, x[k]);
  for (int i = 0; i < q; i++) lo[i] = list_at(a, b, i);
}

/* Lists longer than EXT_QMAX (a contrast quantile far above librosa's
 * 0.02): insertion into a plain sorted array. */
static void select_long(const float *x, int n, int q, float *lo, float *hi) {
  int nh = 0, nl = 0;
  for (int k = 0; k < n; k++) {
    if (nh < q || x[k] > hi[q - 1]) insert_hi(x[k], hi, &nh, q);
    if (nl < q || x[k] < lo[q - 1]) insert_lo(x[k], lo, &nl, q);
  }
}

/* Both lists for a contrast band (valleys and peaks). Long bands take two
 * passes. The first keeps the maximum and minimum of 16 interleaved groups
 * (group g holds x[g], x[g + 16], ...; two vectors each). The q-th largest
 * group maximum m is at most the q-th largest value, since q groups hold a
 * value >= m, so no value below m is among the q largest; the second pass
 * inserts only values >= m (a chunk of eight without one costs one
 * comparison). The smallest likewise. On noise-like spectra the bound
 * leaves a dozen candidates of hundreds. */
static inline __attribute__((always_inline)) void band_extremes(const float *x, int n, int q, float *lo, float *hi) {
  if (q < 1 || q > n) return;
  if (q > EXT_QMAX) {
    select_long(x, n, q, lo, hi);
    return;
  }
  int rows = n / EXT_QMAX;
  if (rows < 4) {
    select_hi(x, n, q, hi);
    select_lo(x, n, q, lo);
    return;
  }
  dx_vf mx0, mx1, mn0, mn1;
  memcpy(&mx0, x, sizeof mx0);
  memcpy(&mx1, x + 8, sizeof mx1);
  mn0 = mx0, mn1 = mx1;
  for (int r = 1; r < rows; r++) {
    dx_vf v0, v1;
    memcpy(&v0, x + r * EXT_QMAX, sizeof v0);
    memcpy(&v1, x + r * EXT_QMAX + 8, sizeof v1);
    mx0 = dx_vf_max(mx0, v0), mx1 = dx_vf_max(mx1, v1);
    mn0 = dx_vf_min(mn0, v0), mn1 = dx_vf_min(mn1, v1);
  }
  dx_vf ha = dx_vf_set(-INFINITY), hb = ha, la = dx_vf_set(INFINITY), lb = la;
  for (int g = 0; g < EXT_QMAX; g++) {
    top_insert(&ha, &hb, list_at(mx0, mx1, g));
    bottom_insert(&la, &lb, list_at(mn0, mn1, g));
  }
  float th = list_at(ha, hb, q - 1), tl = list_at(la, lb, q - 1);
  ha = hb = dx_vf_set(-INFINITY);
  la = lb = dx_vf_set(INFINITY);
  int k = 0, end = rows * EXT_QMAX;
  dx_vf vth = dx_vf_set(th), vtl = dx_vf_set(tl);
  for (; k < end; k += 8) {
    dx_vf v;
    memcpy(&v, x + k, sizeof v);
    dx_vfi up = v >= vth, down = v <= vtl;
    if (dx_vf_any(up))
      for (int j = k; j < k + 8; j++)
        if (x[j] >= th) top_insert(&ha, &hb, x[j]);
    if (dx_vf_any(down))
      for (int j = k; j < k + 8; j++)
        if (x[j] <= tl) bottom_insert(&la, &lb, x[j]);
  }
  for (; k < n; k++) {
    top_insert(&ha, &hb, x[k]);
    bottom_insert(&la, &lb, x[k]);
  }
  for (int i = 0; i < q; i++) {
    hi[i] = list_at(ha, hb, i);
    lo[i] = list_at(la, lb, i);
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

/* S[k] = sqrt(P[k]) (P >= 0; vectorised: the kernels build without errno
 * from math functions) */
static inline void magnitudes(const float *P, float *S, int nb) {
  for (int k = 0; k < nb; k++) S[k] = sqrtf(P[k]);
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
      dx_feat_contrast_store(lo, hi, q, b, out);
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
DX_HOT dx_status dx_cpu_signal_frames(dx_feat_plan *plan, const float *y, size_t y0, size_t n, size_t frame0,
                                      int n_frames, float *feat, int ld_feat) {
  int nf = plan->p.n_fft, hop = plan->p.hop;
  size_t lo, hi;
  dx_feat_frames_span(n, nf, hop, frame0, n_frames, &lo, &hi);
  if (ld_feat < DX_FCOL_COUNT || n_frames < 0 || n == 0 || y0 > lo) return DX_ERR_INVALID;
  for (int f = 0; f < n_frames; f++) {
    long long start = (long long)(frame0 + (size_t)f) * hop - nf / 2;
    double ss = 0;
    int zc = 0, prev_neg = 0;
    if (start >= 0 && start + nf <= (long long)n) { /* interior frame: no padding */
      /* float partial sums in LANES lanes (vector registers), combined in
       * double; a value is negative for the crossing count when below
       * -1e-10 (|x| <= 1e-10 counts as 0, and 0 as positive) */
      const float *x = y + (start - (long long)y0);
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
      float v = (idx >= 0 && idx < (long long)n) ? y[idx - (long long)y0] : 0.0f;
      ss += (double)v * v;
      long long ci = idx < 0 ? 0 : idx >= (long long)n ? (long long)n - 1 : idx;
      float z = y[ci - (long long)y0];
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
