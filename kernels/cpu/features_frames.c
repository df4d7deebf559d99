/* features_frames.c: the CPU backend's per-frame features: spectral centroid,
 * bandwidth, rolloff, flatness and contrast peak/valley from a power
 * spectrogram, and RMS and zero-crossing rate from the signal. Conventions
 * are librosa 0.11's defaults, written beside each computation. Sums run in
 * double (the CUDA kernels do the same, so both backends agree closely).
 * Threading: uses the plan's scratch; one worker per plan. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "features_cpu.h"

/* Keep the q smallest values seen so far in lo[0..*nlo) ascending and the q
 * largest in hi[0..*nhi) descending. */
static inline void keep_extremes(float v, float *lo, int *nlo, float *hi, int *nhi, int q) {
  if (*nlo < q || v < lo[*nlo - 1]) {
    int i = *nlo < q ? (*nlo)++ : q - 1;
    while (i > 0 && lo[i - 1] > v) {
      lo[i] = lo[i - 1];
      i--;
    }
    lo[i] = v;
  }
  if (*nhi < q || v > hi[*nhi - 1]) {
    int i = *nhi < q ? (*nhi)++ : q - 1;
    while (i > 0 && hi[i - 1] < v) {
      hi[i] = hi[i - 1];
      i--;
    }
    hi[i] = v;
  }
}

dx_status dx_cpu_spectral_frames(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *feat,
                                 int ld_feat) {
  dx_cpu_feat_priv *pv = plan->priv;
  int nb = plan->n_bins;
  if (ld_pow < nb || ld_feat < DX_FCOL_COUNT || n_frames < 0) return DX_ERR_INVALID;
  const double *freq = pv->freq;
  float *lo = pv->scratch, *hi = pv->scratch + nb, *S = pv->scratch + 2 * nb;
  for (int f = 0; f < n_frames; f++) {
    const float *P = power + (size_t)f * ld_pow;
    float *out = feat + (size_t)f * ld_feat;

    /* Magnitude S = |X| for centroid, bandwidth, rolloff and contrast
     * (librosa's _spectrogram with power=1). */
    double l1 = 0, wsum = 0;
    for (int k = 0; k < nb; k++) {
      float s = sqrtf(P[k]);
      S[k] = s;
      l1 += s;
      wsum += freq[k] * s;
    }
    /* util.normalize(S, norm=1): a column whose L1 norm is below the
     * smallest normal float is not scaled. */
    double norm = l1 < FLT_MIN ? 1.0 : l1;
    double centroid = wsum / norm;
    /* spectral_bandwidth, p = 2: sqrt(sum_k S_norm[k] (f_k - centroid)^2) */
    double bw = 0;
    for (int k = 0; k < nb; k++) {
      double d = freq[k] - centroid;
      bw += S[k] / norm * d * d;
    }
    /* spectral_rolloff(roll_percent): the lowest bin whose cumulative
     * magnitude reaches roll_percent of the total. */
    double thr = plan->p.rolloff_percent * l1, cum = 0, roll = freq[nb - 1];
    for (int k = 0; k < nb; k++) {
      cum += S[k];
      if (cum >= thr) {
        roll = freq[k];
        break;
      }
    }
    /* spectral_flatness(power=2, amin=1e-10): geometric over arithmetic
     * mean of max(amin, |X|^2). The sum of logs is taken as the log of a
     * running product, renormalised with frexp every 16 factors (the
     * factors lie in [1e-10, ~1e7], so 16 of them stay far inside double's
     * range): one log per 16 bins instead of one per bin. */
    double lsum = 0, asum = 0, prod = 1;
    for (int k = 0; k < nb; k++) {
      double v = P[k] > 1e-10f ? P[k] : 1e-10;
      prod *= v;
      asum += v;
      if ((k & 15) == 15) {
        int e;
        prod = frexp(prod, &e);
        lsum += e * M_LN2;
      }
    }
    lsum += log(prod);
    double flat = exp(lsum / nb) / (asum / nb);
    out[DX_FCOL_CENTROID] = (float)centroid;
    out[DX_FCOL_BANDWIDTH] = (float)sqrt(bw);
    out[DX_FCOL_ROLLOFF] = (float)roll;
    out[DX_FCOL_FLATNESS] = (float)flat;

    /* spectral_contrast: per octave band, the mean of the q smallest
     * (valley) and q largest (peak) magnitudes; dB conversion comes later. */
    for (int b = 0; b < pv->n_contrast; b++) {
      int nlo = 0, nhi = 0, q = pv->band_q[b];
      const float *band = S + pv->band_lo[b];
      for (int k = 0; k < pv->band_cnt[b]; k++) keep_extremes(band[k], lo, &nlo, hi, &nhi, q);
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
dx_status dx_cpu_signal_frames(dx_feat_plan *plan, const float *y, size_t n, size_t frame0, int n_frames,
                               float *feat, int ld_feat) {
  int nf = plan->p.n_fft, hop = plan->p.hop;
  if (ld_feat < DX_FCOL_COUNT || n_frames < 0 || n == 0) return DX_ERR_INVALID;
  for (int f = 0; f < n_frames; f++) {
    long long start = (long long)(frame0 + (size_t)f) * hop - nf / 2;
    double ss = 0;
    int zc = 0, prev_neg = 0;
    if (start >= 0 && start + nf <= (long long)n) { /* interior frame: no padding */
      const float *x = y + start;
      for (int i = 0; i < nf; i++) ss += (double)x[i] * x[i];
      prev_neg = fabsf(x[0]) <= 1e-10f ? 0 : signbit(x[0]) != 0;
      for (int i = 1; i < nf; i++) {
        int neg = fabsf(x[i]) <= 1e-10f ? 0 : signbit(x[i]) != 0;
        zc += neg != prev_neg;
        prev_neg = neg;
      }
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
