/* nn_elementwise.c: CPU elementwise and data-movement ops (dx_nn_ops.h):
 * GELU, sigmoid, GLU, add, scalar and per-channel affine, LayerScale
 * residuals, permute, 1-D padding and strided copies.
 * Threading: reentrant. */
#include <math.h>
#include <string.h>

#include "nn_cpu.h"

dx_status dx_cpu_gelu(dx_backend *be, const float *x, float *y, long long n) {
  (void)be;
  for (long long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
  return DX_OK;
}

static inline float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

dx_status dx_cpu_sigmoid(dx_backend *be, const float *x, float *y, long long n) {
  (void)be;
  for (long long i = 0; i < n; i++) y[i] = sigm(x[i]);
  return DX_OK;
}

dx_status dx_cpu_glu(dx_backend *be, const float *x, float *y, int outer, int c, long long inner) {
  (void)be;
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  size_t half = (size_t)c * inner;
  for (int o = 0; o < outer; o++) {
    const float *a = x + (size_t)o * 2 * half, *b = a + half;
    float *yo = y + (size_t)o * half;
    for (size_t i = 0; i < half; i++) yo[i] = a[i] * sigm(b[i]);
  }
  return DX_OK;
}

dx_status dx_cpu_add(dx_backend *be, const float *a, const float *b, float *y, long long n) {
  (void)be;
  for (long long i = 0; i < n; i++) y[i] = a[i] + b[i];
  return DX_OK;
}

dx_status dx_cpu_scale_shift(dx_backend *be, const float *x, float *y, long long n, float alpha, float beta) {
  (void)be;
  for (long long i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
  return DX_OK;
}

dx_status dx_cpu_channel_affine(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                                const float *scale, const float *bias) {
  (void)be;
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  for (int o = 0; o < outer; o++)
    for (int ch = 0; ch < c; ch++) {
      size_t off = ((size_t)o * c + ch) * inner;
      float s = scale ? scale[ch] : 1.0f, b = bias ? bias[ch] : 0.0f;
      for (long long i = 0; i < inner; i++) y[off + i] = x[off + i] * s + b;
    }
  return DX_OK;
}

dx_status dx_cpu_add_scaled(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                            const float *scale) {
  (void)be;
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  for (int o = 0; o < outer; o++)
    for (int ch = 0; ch < c; ch++) {
      size_t off = ((size_t)o * c + ch) * inner;
      float s = scale ? scale[ch] : 1.0f;
      for (long long i = 0; i < inner; i++) y[off + i] += s * x[off + i];
    }
  return DX_OK;
}

dx_status dx_cpu_permute(dx_backend *be, const float *x, float *y, int ndim, const int *shape, const int *perm) {
  (void)be;
  if (ndim <= 0 || ndim > 6) return DX_ERR_INVALID;
  long long xs[6], ys[6], n = 1;
  int seen[6] = {0};
  for (int d = ndim - 1; d >= 0; d--) {
    if (shape[d] <= 0) return DX_ERR_INVALID;
    xs[d] = n;
    n *= shape[d];
  }
  for (int d = 0; d < ndim; d++) {
    if (perm[d] < 0 || perm[d] >= ndim || seen[perm[d]]++) return DX_ERR_INVALID;
  }
  /* ys[d]: stride in x of y's dimension d */
  for (int d = 0; d < ndim; d++) ys[d] = xs[perm[d]];
  int oshape[6];
  for (int d = 0; d < ndim; d++) oshape[d] = shape[perm[d]];
  /* contiguous inner run when the last dimension stays last */
  long long inner = perm[ndim - 1] == ndim - 1 ? oshape[ndim - 1] : 1;
  int od = inner > 1 ? ndim - 1 : ndim; /* dimensions walked by the counter */
  long long idx[6] = {0}, src = 0;
  for (long long o = 0; o < n; o += inner) {
    if (inner > 1) memcpy(y + o, x + src, (size_t)inner * sizeof *y);
    else y[o] = x[src];
    for (int d = od - 1; d >= 0; d--) {
      if (++idx[d] < oshape[d]) { src += ys[d]; break; }
      src -= (idx[d] - 1) * ys[d];
      idx[d] = 0;
    }
  }
  return DX_OK;
}

dx_status dx_cpu_pad1d(dx_backend *be, const float *x, float *y, int rows, int lin, int left, int right,
                       dx_pad_mode mode) {
  (void)be;
  if (rows <= 0 || lin <= 0 || left < 0 || right < 0) return DX_ERR_INVALID;
  if (mode == DX_PAD_REFLECT && (left >= lin || right >= lin)) return DX_ERR_INVALID;
  size_t lout = (size_t)left + lin + right;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * lin;
    float *yr = y + (size_t)r * lout;
    memmove(yr + left, xr, (size_t)lin * sizeof *yr);
    if (mode == DX_PAD_ZERO) {
      memset(yr, 0, (size_t)left * sizeof *yr);
      memset(yr + left + lin, 0, (size_t)right * sizeof *yr);
    } else {
      for (int j = 0; j < left; j++) yr[j] = xr[left - j];
      for (int j = 0; j < right; j++) yr[left + lin + j] = xr[lin - 2 - j];
    }
  }
  return DX_OK;
}

dx_status dx_cpu_copy2d(dx_backend *be, const float *x, long long ldx, float *y, long long ldy, int rows,
                        long long cols) {
  (void)be;
  if (rows < 0 || cols < 0) return DX_ERR_INVALID;
  for (int r = 0; r < rows; r++) memmove(y + r * ldy, x + r * ldx, (size_t)cols * sizeof *y);
  return DX_OK;
}
