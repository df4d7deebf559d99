/* nn_norm.c: CPU normalisation ops (dx_nn_ops.h): group norm, layer norm,
 * and the mean/std standardisation the Demucs graphs wrap around their
 * branches. Statistics are accumulated in double, two passes.
 * Threading: reentrant. */
#include <math.h>
#include <stdlib.h>

#include "nn_cpu.h"

dx_status dx_cpu_group_norm(dx_backend *be, const float *x, float *y, int batch, int channels, int len, int groups,
                            const float *gamma, const float *beta, float eps, int channels_last) {
  (void)be;
  if (batch <= 0 || channels <= 0 || len <= 0 || groups <= 0 || channels % groups) return DX_ERR_INVALID;
  int cpg = channels / groups;
  size_t per = (size_t)channels * len;
  for (int b = 0; b < batch; b++) {
    const float *xb = x + b * per;
    float *yb = y + b * per;
    for (int g = 0; g < groups; g++) {
      double s = 0, ss = 0;
      size_t n = (size_t)cpg * len;
      if (!channels_last) {
        const float *xg = xb + (size_t)g * cpg * len;
        for (size_t i = 0; i < n; i++) s += xg[i];
        double mean = s / n;
        for (size_t i = 0; i < n; i++) { double d = xg[i] - mean; ss += d * d; }
        float mf = (float)mean, inv = (float)(1.0 / sqrt(ss / n + eps));
        for (int c = g * cpg; c < (g + 1) * cpg; c++) {
          float ga = gamma ? gamma[c] : 1.0f, be_ = beta ? beta[c] : 0.0f, a = inv * ga;
          const float *xc = xb + (size_t)c * len;
          float *yc = yb + (size_t)c * len;
          for (int l = 0; l < len; l++) yc[l] = (xc[l] - mf) * a + be_;
        }
      } else {
        for (int l = 0; l < len; l++)
          for (int c = g * cpg; c < (g + 1) * cpg; c++) s += xb[(size_t)l * channels + c];
        double mean = s / n;
        for (int l = 0; l < len; l++)
          for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            double d = xb[(size_t)l * channels + c] - mean;
            ss += d * d;
          }
        float mf = (float)mean, inv = (float)(1.0 / sqrt(ss / n + eps));
        for (int l = 0; l < len; l++)
          for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            size_t i = (size_t)l * channels + c;
            yb[i] = (xb[i] - mf) * inv * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
          }
      }
    }
  }
  return DX_OK;
}

dx_status dx_cpu_layer_norm(dx_backend *be, const float *x, float *y, int rows, int dim, const float *gamma,
                            const float *beta, float eps) {
  (void)be;
  if (rows <= 0 || dim <= 0) return DX_ERR_INVALID;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * dim;
    float *yr = y + (size_t)r * dim;
    double s = 0, ss = 0;
    for (int i = 0; i < dim; i++) s += xr[i];
    double mean = s / dim;
    for (int i = 0; i < dim; i++) { double d = xr[i] - mean; ss += d * d; }
    float mf = (float)mean, inv = (float)(1.0 / sqrt(ss / dim + eps));
    for (int i = 0; i < dim; i++) yr[i] = (xr[i] - mf) * inv * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
  }
  return DX_OK;
}

dx_status dx_cpu_mean_std(dx_backend *be, const float *x, float *stats, int batch, long long n) {
  (void)be;
  if (batch <= 0 || n <= 1) return DX_ERR_INVALID;
  for (int b = 0; b < batch; b++) {
    const float *xb = x + (size_t)b * n;
    double s = 0, ss = 0;
    for (long long i = 0; i < n; i++) s += xb[i];
    double mean = s / n;
    for (long long i = 0; i < n; i++) { double d = xb[i] - mean; ss += d * d; }
    stats[2 * b] = (float)mean;
    stats[2 * b + 1] = (float)sqrt(ss / (n - 1));
  }
  return DX_OK;
}

dx_status dx_cpu_standardize(dx_backend *be, const float *x, float *y, const float *stats, int batch, long long n,
                             float eps) {
  (void)be;
  if (batch <= 0 || n <= 0) return DX_ERR_INVALID;
  for (int b = 0; b < batch; b++) {
    float m = stats[2 * b], d = eps + stats[2 * b + 1];
    for (long long i = 0; i < n; i++) y[(size_t)b * n + i] = (x[(size_t)b * n + i] - m) / d;
  }
  return DX_OK;
}

dx_status dx_cpu_destandardize(dx_backend *be, const float *x, float *y, const float *stats, int batch, long long n) {
  (void)be;
  if (batch <= 0 || n <= 0) return DX_ERR_INVALID;
  for (int b = 0; b < batch; b++) {
    float m = stats[2 * b], s = stats[2 * b + 1];
    for (long long i = 0; i < n; i++) y[(size_t)b * n + i] = x[(size_t)b * n + i] * s + m;
  }
  return DX_OK;
}
