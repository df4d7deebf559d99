/* nn_resample.c: CPU reference of the 2x up/down resampler of the Demucs v3
 * time-only model (julius.resample_frac(x, 1, 2) at the input and (2, 1) at
 * the output), and the filter construction it shares with the CUDA op
 * (dx_resample.h).
 *
 * Threading: no shared state; the filter is built per call (a few hundred
 * taps). */
#include <math.h>
#include <stdlib.h>

#include "dx_nn_ops.h"
#include "dx_resample.h"
#include "nn_demucs3_cpu.h"

static int gcd_(int a, int b) {
  while (b) {
    int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int dx_resample_width(int old_sr, int new_sr) {
  if (old_sr <= 0 || new_sr <= 0) return -1;
  const int g = gcd_(old_sr, new_sr);
  old_sr /= g, new_sr /= g;
  const double sr = (old_sr < new_sr ? old_sr : new_sr) * DX_RESAMPLE_ROLLOFF;
  return (int)ceil(DX_RESAMPLE_ZEROS * old_sr / sr);
}

int dx_resample_taps(int old_sr, int new_sr, float *taps, int cap) {
  if (old_sr <= 0 || new_sr <= 0) return -1;
  const int g = gcd_(old_sr, new_sr);
  old_sr /= g, new_sr /= g;
  const double sr = (old_sr < new_sr ? old_sr : new_sr) * DX_RESAMPLE_ROLLOFF;
  const int width = dx_resample_width(old_sr, new_sr);
  const int n = 2 * width + old_sr;
  if ((long)n * new_sr > cap) return -1;
  const double zeros = DX_RESAMPLE_ZEROS;
  for (int i = 0; i < new_sr; i++) {
    float *row = taps + (size_t)i * n;
    double sum = 0.0;
    for (int k = 0; k < n; k++) {
      double t = (-(double)i / new_sr + (double)(k - width) / old_sr) * sr;
      if (t < -zeros) t = -zeros;
      if (t > zeros) t = zeros;
      t *= M_PI;
      const double win = cos(t / zeros / 2.0);
      const double v = (t == 0.0 ? 1.0 : sin(t) / t) * win * win;
      row[k] = (float)v;
      sum += (float)v;
    }
    for (int k = 0; k < n; k++) row[k] = (float)(row[k] / sum);
  }
  return n;
}

dx_status dx_cpu_nn_resample(dx_backend *be, const float *x, float *y, int rows, int length, int old_sr, int new_sr) {
  (void)be;
  if (rows <= 0 || length <= 0 || old_sr <= 0 || new_sr <= 0) return DX_ERR_INVALID;
  const int g = gcd_(old_sr, new_sr);
  old_sr /= g, new_sr /= g;
  const int width = dx_resample_width(old_sr, new_sr);
  const int n = 2 * width + old_sr;
  float *taps = malloc((size_t)n * new_sr * sizeof *taps);
  if (!taps) return DX_ERR_NOMEM;
  dx_resample_taps(old_sr, new_sr, taps, n * new_sr);
  const long out_len = (long)length * new_sr / old_sr;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * length;
    float *yr = y + (size_t)r * out_len;
    for (long o = 0; o < out_len; o++) {
      const long blk = o / new_sr;
      const int j = (int)(o % new_sr);
      const float *tj = taps + (size_t)j * n;
      float acc = 0.0f;
      for (int k = 0; k < n; k++) {
        long idx = blk * old_sr + k - width; /* index into x, replicate-padded */
        if (idx < 0) idx = 0;
        if (idx >= length) idx = length - 1;
        acc += tj[k] * xr[idx];
      }
      yr[o] = acc;
    }
  }
  free(taps);
  return DX_OK;
}
