/* features_filters.c: host-side constants of the analysis features, shared by
 * the CPU and CUDA backends: default parameters, the periodic Hann window,
 * the Slaney mel filterbank, the chroma filterbank, the orthonormal DCT-II
 * matrix and the spectral-contrast band table. Each follows librosa 0.11
 * (computed in double as librosa does, stored as float32). Thread-safe:
 * pure functions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_feature_ops.h"

void dx_feat_default_params(dx_feat_params *p) {
  memset(p, 0, sizeof *p);
  p->sample_rate = 22050; /* librosa.load default */
  p->n_fft = 2048;
  p->hop = 512;
  p->n_mels = 128;
  p->n_mfcc = 20;
  p->n_chroma = 12;
  p->top_db = 80.0f;
  p->rolloff_percent = 0.85f;
  p->tuning = 0.0f;
  p->contrast_bands = 6;
  p->contrast_fmin = 200.0f;
  p->contrast_quantile = 0.02f;
}

/* Centred framing pads n_fft/2 on both sides: 1 + (n + 2*(n_fft/2) - n_fft) / hop
 * = 1 + n / hop frames (librosa.stft with center=True). */
size_t dx_feat_frame_count(size_t n_samples, int hop) { return 1 + n_samples / (size_t)hop; }

/* scipy.signal.get_window('hann', n, fftbins=True): the periodic window,
 * 0.5 - 0.5 cos(2 pi i / n). */
void dx_feat_hann(int n, float *out) {
  for (int i = 0; i < n; i++) out[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
}

/* Slaney's auditory-toolbox mel scale (librosa htk=False): linear below
 * 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4). */
static double hz_to_mel(double f) {
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}
static double mel_to_hz(double m) {
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

/* librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False,
 * norm='slaney'): triangles between n_mels+2 points evenly spaced in mel,
 * each scaled by 2 / (upper - lower edge in Hz) so every band has equal area. */
void dx_feat_mel_filterbank(const dx_feat_params *p, float *out) {
  int nb = p->n_fft / 2 + 1, nm = p->n_mels;
  double f_nyq = p->sample_rate / 2.0;
  double *mel_f = malloc((size_t)(nm + 2) * sizeof *mel_f);
  double *fft_f = malloc((size_t)nb * sizeof *fft_f);
  if (!mel_f || !fft_f) { /* callers size-check; keep the output defined */
    memset(out, 0, (size_t)nm * nb * sizeof *out);
    free(mel_f);
    free(fft_f);
    return;
  }
  double lo = hz_to_mel(0.0), hi = hz_to_mel(f_nyq);
  for (int i = 0; i < nm + 2; i++) mel_f[i] = mel_to_hz(lo + (hi - lo) * i / (nm + 1));
  for (int k = 0; k < nb; k++) fft_f[k] = (double)p->sample_rate / 2.0 * k / (nb - 1);
  for (int i = 0; i < nm; i++) {
    double d0 = mel_f[i + 1] - mel_f[i], d1 = mel_f[i + 2] - mel_f[i + 1];
    double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
    for (int k = 0; k < nb; k++) {
      double lower = (fft_f[k] - mel_f[i]) / d0, upper = (mel_f[i + 2] - fft_f[k]) / d1;
      double w = fmax(0.0, fmin(lower, upper));
      out[(size_t)i * nb + k] = (float)((float)w * enorm);
    }
  }
  free(mel_f);
  free(fft_f);
}

/* librosa.filters.chroma(sr, n_fft, n_chroma=12, tuning, ctroct=5, octwidth=2,
 * norm=2, base_c=True): for every FFT bin a Gaussian bump around its pitch
 * class (width 1/2 of the bin's spacing in chroma bins, at least one), each
 * bin's column L2-normalised over the chroma rows, weighted by a Gaussian
 * over octaves centred on octave 5 (880 Hz) with a 2-octave deviation, then
 * rolled so row 0 is C. The DC bin is placed 1.5 octaves below bin 1. */
void dx_feat_chroma_filterbank(const dx_feat_params *p, float *out) {
  int nc = p->n_chroma, nf = p->n_fft, nb = nf / 2 + 1;
  double *frq = calloc((size_t)nf, sizeof *frq), *bw = calloc((size_t)nf, sizeof *bw);
  double *w = malloc((size_t)nc * nf * sizeof *w);
  if (!frq || !bw || !w) {
    memset(out, 0, (size_t)nc * nb * sizeof *out);
    free(frq);
    free(bw);
    free(w);
    return;
  }
  double a440 = 440.0 * pow(2.0, p->tuning / nc);
  for (int k = 1; k < nf; k++) {
    double f = (double)p->sample_rate * k / nf;
    frq[k] = nc * log2(f / (a440 / 16.0));
  }
  frq[0] = frq[1] - 1.5 * nc;
  for (int k = 0; k < nf - 1; k++) bw[k] = fmax(frq[k + 1] - frq[k], 1.0);
  bw[nf - 1] = 1.0;
  double half = round(nc / 2.0);
  for (int c = 0; c < nc; c++)
    for (int k = 0; k < nf; k++) {
      double d = fmod(frq[k] - c + half + 10.0 * nc, (double)nc);
      if (d < 0) d += nc; /* numpy.remainder takes the divisor's sign */
      d -= half;
      double z = 2.0 * d / bw[k];
      w[(size_t)c * nf + k] = exp(-0.5 * z * z);
    }
  for (int k = 0; k < nf; k++) {
    double n2 = 0;
    for (int c = 0; c < nc; c++) n2 += w[(size_t)c * nf + k] * w[(size_t)c * nf + k];
    n2 = sqrt(n2);
    double oct = (frq[k] / nc - 5.0) / 2.0;
    double g = exp(-0.5 * oct * oct);
    for (int c = 0; c < nc; c++) {
      double v = n2 > 0 ? w[(size_t)c * nf + k] / n2 : w[(size_t)c * nf + k];
      w[(size_t)c * nf + k] = v * g;
    }
  }
  int shift = 3 * (nc / 12); /* np.roll(wts, -3): row c takes row c + 3 (A -> C) */
  for (int c = 0; c < nc; c++)
    for (int k = 0; k < nb; k++) out[(size_t)c * nb + k] = (float)w[(size_t)((c + shift) % nc) * nf + k];
  free(frq);
  free(bw);
  free(w);
}

/* scipy.fft.dct(type=2, norm='ortho') as a matrix over the mel axis:
 * D[k][n] = s_k cos(pi k (2n + 1) / (2N)), s_0 = sqrt(1/N), s_k = sqrt(2/N). */
void dx_feat_dct_matrix(const dx_feat_params *p, float *out) {
  int N = p->n_mels;
  for (int k = 0; k < p->n_mfcc; k++) {
    double s = k == 0 ? sqrt(1.0 / N) : sqrt(2.0 / N);
    for (int n = 0; n < N; n++) out[(size_t)k * N + n] = (float)(s * cos(M_PI * k * (2.0 * n + 1.0) / (2.0 * N)));
  }
}

/* librosa.feature.spectral_contrast bands: edges 0, fmin, 2 fmin, ...,
 * fmin 2^n_bands. Band k holds the bins with lo_edge <= f <= hi_edge, plus
 * the bin just below for k > 0, plus every bin above for the last band; all
 * but the top band then drop their last bin before sorting. The quantile
 * count is rint(quantile * bins in the band before the drop), at least 1. */
int dx_feat_contrast_bands(const dx_feat_params *p, int *lo, int *cnt, int *q) {
  int nb = p->n_fft / 2 + 1, n_bands = p->contrast_bands;
  for (int k = 0; k <= n_bands; k++) {
    double f_lo = k == 0 ? 0.0 : p->contrast_fmin * pow(2.0, k - 1);
    double f_hi = p->contrast_fmin * pow(2.0, k);
    int first = -1, last = -1;
    for (int b = 0; b < nb; b++) {
      double f = (double)p->sample_rate / 2.0 * b / (nb - 1);
      if (f >= f_lo && f <= f_hi) {
        if (first < 0) first = b;
        last = b;
      }
    }
    if (first < 0) first = last = nb - 1; /* not reached for valid params */
    if (k > 0 && first > 0) first--;
    if (k == n_bands) last = nb - 1;
    int total = last - first + 1;
    lo[k] = first;
    cnt[k] = k < n_bands ? total - 1 : total;
    int qq = (int)nearbyint(p->contrast_quantile * total);
    q[k] = qq < 1 ? 1 : qq;
    if (q[k] > cnt[k]) q[k] = cnt[k];
  }
  return n_bands + 1;
}
