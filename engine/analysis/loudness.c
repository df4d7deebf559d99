/* loudness.c: EBU R 128 loudness of a track: integrated loudness (LUFS,
 * gated) and loudness range (LU) through libebur128, and true peak (dBTP,
 * the largest over channels) by 4x oversampling here, on the original
 * channels at the original rate. libebur128's default channel map applies
 * (L, R, C, LFE unused, Ls, Rs); a mono file is measured as one channel.
 *
 * True peak follows ITU-R BS.1770-4 Annex 2: 4x oversampling with a 48-tap
 * interpolator (12 taps per phase); ours is a Hann-windowed sinc with each
 * phase normalised to unit gain at DC, evaluated in float blocks so the
 * compiler vectorises it (libebur128's own true-peak mode costs several
 * times the whole feature analysis). The sample values themselves count.
 * Threading: one ebur128 state per call; thread-safe. */
#include <ebur128.h>
#include <math.h>
#include <stdlib.h>

#include "dx_analysis.h"

#define BLOCK 16384 /* frames interleaved and fed per call */
#define TP_HALF 6    /* taps each side of the interpolated point */
#define TP_BLOCK 4096

/* Largest |x| and |interpolated x| at i + p/4 (p = 1, 2, 3) over n samples. */
static float true_peak_channel(const float *x, size_t n) {
  float c[3][2 * TP_HALF];
  for (int p = 1; p <= 3; p++) {
    double sum = 0;
    for (int d = -TP_HALF + 1; d <= TP_HALF; d++) {
      double u = p / 4.0 - d; /* distance from tap x[i + d] to t = i + p/4 */
      double sinc = sin(M_PI * u) / (M_PI * u), w = 0.5 + 0.5 * cos(M_PI * u / TP_HALF);
      c[p - 1][d + TP_HALF - 1] = (float)(sinc * w);
      sum += sinc * w;
    }
    for (int k = 0; k < 2 * TP_HALF; k++) c[p - 1][k] = (float)(c[p - 1][k] / sum);
  }
  float buf[TP_BLOCK + 2 * TP_HALF], acc[TP_BLOCK], peak = 0;
  for (size_t i0 = 0; i0 < n; i0 += TP_BLOCK) {
    size_t nb = n - i0 < TP_BLOCK ? n - i0 : TP_BLOCK;
    /* buf[j] = x[i0 + j - (TP_HALF - 1)], zero outside the signal */
    for (size_t j = 0; j < nb + 2 * TP_HALF - 1; j++) {
      long long idx = (long long)(i0 + j) - (TP_HALF - 1);
      buf[j] = idx >= 0 && idx < (long long)n ? x[idx] : 0.0f;
    }
    for (size_t j = 0; j < nb; j++) peak = fmaxf(peak, fabsf(x[i0 + j]));
    for (int p = 0; p < 3; p++) {
      for (size_t j = 0; j < nb; j++) acc[j] = 0;
      for (int k = 0; k < 2 * TP_HALF; k++) {
        float ck = c[p][k];
        const float *src = buf + k;
        for (size_t j = 0; j < nb; j++) acc[j] += ck * src[j];
      }
      for (size_t j = 0; j < nb; j++) peak = fmaxf(peak, fabsf(acc[j]));
    }
  }
  return peak;
}

dx_status dx_loudness_measure(const dx_audio *a, double *lufs, double *lra, double *true_peak_db, dx_errbuf *err) {
  *lufs = *lra = *true_peak_db = -INFINITY;
  if (!a || a->channels < 1 || a->samplerate < 1) return dx_fail(err, DX_ERR_INVALID, "no audio to measure");
  if (a->frames == 0) return dx_fail(err, DX_ERR_EMPTY, "audio has no samples");
  ebur128_state *s =
      ebur128_init((unsigned)a->channels, (unsigned long)a->samplerate,
                   EBUR128_MODE_I | EBUR128_MODE_LRA);
  if (!s) return dx_fail(err, DX_ERR_NOMEM, "cannot start the loudness meter");
  size_t ch = (size_t)a->channels;
  float *buf = malloc(BLOCK * ch * sizeof *buf);
  if (!buf) {
    ebur128_destroy(&s);
    return DX_ERR_NOMEM;
  }
  dx_status st = DX_OK;
  for (size_t off = 0; off < a->frames; off += BLOCK) {
    size_t n = a->frames - off < BLOCK ? a->frames - off : BLOCK;
    for (size_t c = 0; c < ch; c++) {
      const float *src = a->data + c * a->frames + off;
      for (size_t i = 0; i < n; i++) buf[i * ch + c] = src[i];
    }
    if (ebur128_add_frames_float(s, buf, n) != EBUR128_SUCCESS) {
      st = dx_fail(err, DX_ERR_INTERNAL, "loudness meter refused the samples");
      break;
    }
  }
  if (st == DX_OK) {
    double v;
    if (ebur128_loudness_global(s, &v) == EBUR128_SUCCESS) *lufs = v;
    if (ebur128_loudness_range(s, &v) == EBUR128_SUCCESS) *lra = v;
    double peak = 0;
    for (size_t c = 0; c < ch; c++) peak = fmax(peak, true_peak_channel(a->data + c * a->frames, a->frames));
    *true_peak_db = peak > 0 ? 20.0 * log10(peak) : -INFINITY;
  }
  free(buf);
  ebur128_destroy(&s);
  return st;
}
