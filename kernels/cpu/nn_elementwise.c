/* nn_elementwise.c: CPU elementwise and data-movement ops (dx_nn_ops.h):
 * GELU, sigmoid, GLU, add, scalar and per-channel affine, LayerScale
 * residuals, permute, 1-D padding and strided copies.
 * GELU, sigmoid and GLU evaluate erf and exp DX_VF_LANES at a time
 * (nn_vmath.h; AVX2 + FMA where the CPU has them, DX_HOT), every element
 * through the same vector code (a range's tail is padded), so a result does
 * not depend on how the range was split.
 * Threading: reentrant; large loops are split over the ops' pool (nn_pool.c). */
#include <math.h>
#include <string.h>

#include "nn_cpu.h"
#include "nn_vmath.h"

/* items per pool part: below this an op runs in the caller alone */
#define GRAIN 16384

typedef struct {
  const float *a, *b;
  float *y;
  long long half; /* GLU: elements per half */
  float alpha, beta;
} ew_ctx;

/* y[i0:i1] = f(x[i0:i1]) DX_VF_LANES at a time, the tail through a padded vector */
#define EW_MAP(X, Y, I0, I1, EXPR)                                                                                 \
  do {                                                                                                             \
    long long i_ = (I0);                                                                                           \
    for (; i_ + DX_VF_LANES <= (I1); i_ += DX_VF_LANES) {                                                          \
      dx_vf v = dx_vf_load((X) + i_);                                                                              \
      dx_vf_store((Y) + i_, (EXPR));                                                                               \
    }                                                                                                              \
    if (i_ < (I1)) {                                                                                               \
      float t_[DX_VF_LANES] = {0};                                                                                 \
      memcpy(t_, (X) + i_, (size_t)((I1) - i_) * sizeof(float));                                                  \
      dx_vf v = dx_vf_load(t_);                                                                                    \
      dx_vf_store(t_, (EXPR));                                                                                     \
      memcpy((Y) + i_, t_, (size_t)((I1) - i_) * sizeof(float));                                                   \
    }                                                                                                              \
  } while (0)

#pragma GCC diagnostic ignored "-Wpsabi" /* dx_vf helpers are always inlined */

DX_VF_INLINE dx_vf v_gelu(dx_vf v) {
  return dx_vf_set(0.5f) * v * (dx_vf_set(1.0f) + dx_vf_erf(v * dx_vf_set(0.70710678118654752f)));
}

DX_VF_INLINE dx_vf v_sigmoid(dx_vf v) { return dx_vf_set(1.0f) / (dx_vf_set(1.0f) + dx_vf_exp(-v)); }

DX_HOT static void gelu_range(void *c, long long i0, long long i1) {
  const ew_ctx *e = c;
  EW_MAP(e->a, e->y, i0, i1, v_gelu(v));
}

dx_status dx_cpu_gelu(dx_backend *be, const float *x, float *y, long long n) {
  (void)be;
  ew_ctx c = {.a = x, .y = y};
  dx_cpu_parallel(n, GRAIN, gelu_range, &c);
  return DX_OK;
}

DX_HOT static void sigmoid_range(void *c, long long i0, long long i1) {
  const ew_ctx *e = c;
  EW_MAP(e->a, e->y, i0, i1, v_sigmoid(v));
}

dx_status dx_cpu_sigmoid(dx_backend *be, const float *x, float *y, long long n) {
  (void)be;
  ew_ctx c = {.a = x, .y = y};
  dx_cpu_parallel(n, GRAIN, sigmoid_range, &c);
  return DX_OK;
}

/* GLU over flat output indices: item i of block o reads a = x[o][0][i], b = x[o][1][i]. */
DX_HOT static void glu_range(void *c, long long i0, long long i1) {
  const ew_ctx *e = c;
  long long h = e->half;
  while (i0 < i1) {
    long long o = i0 / h, j0 = i0 % h, j1 = h < j0 + (i1 - i0) ? h : j0 + (i1 - i0);
    const float *a = e->a + (size_t)o * 2 * h, *b = a + h;
    float *y = e->y + (size_t)o * h;
    long long j = j0;
    for (; j + DX_VF_LANES <= j1; j += DX_VF_LANES)
      dx_vf_store(y + j, dx_vf_load(a + j) * v_sigmoid(dx_vf_load(b + j)));
    if (j < j1) {
      float ta[DX_VF_LANES] = {0}, tb[DX_VF_LANES] = {0};
      memcpy(ta, a + j, (size_t)(j1 - j) * sizeof(float));
      memcpy(tb, b + j, (size_t)(j1 - j) * sizeof(float));
      dx_vf_store(ta, dx_vf_load(ta) * v_sigmoid(dx_vf_load(tb)));
      memcpy(y + j, ta, (size_t)(j1 - j) * sizeof(float));
    }
    i0 += j1 - j0;
  }
}

dx_status dx_cpu_glu(dx_backend *be, const float *x, float *y, int outer, int c, long long inner) {
  (void)be;
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  ew_ctx e = {.a = x, .y = y, .half = (long long)c * inner};
  dx_cpu_parallel((long long)outer * e.half, GRAIN, glu_range, &e);
  return DX_OK;
}

static void add_range(void *c, long long i0, long long i1) {
  const ew_ctx *e = c;
  for (long long i = i0; i < i1; i++) e->y[i] = e->a[i] + e->b[i];
}

dx_status dx_cpu_add(dx_backend *be, const float *a, const float *b, float *y, long long n) {
  (void)be;
  ew_ctx c = {.a = a, .b = b, .y = y};
  dx_cpu_parallel(n, 4 * GRAIN, add_range, &c);
  return DX_OK;
}

static void scale_shift_range(void *c, long long i0, long long i1) {
  const ew_ctx *e = c;
  for (long long i = i0; i < i1; i++) e->y[i] = e->alpha * e->a[i] + e->beta;
}

dx_status dx_cpu_scale_shift(dx_backend *be, const float *x, float *y, long long n, float alpha, float beta) {
  (void)be;
  ew_ctx c = {.a = x, .y = y, .alpha = alpha, .beta = beta};
  dx_cpu_parallel(n, 4 * GRAIN, scale_shift_range, &c);
  return DX_OK;
}

/* Per-channel ops over rows r = o * c + ch of `inner` elements. */
typedef struct {
  const float *x;
  float *y;
  int c;
  long long inner;
  const float *scale, *bias;
} ch_ctx;

static void channel_affine_range(void *p, long long r0, long long r1) {
  const ch_ctx *e = p;
  for (long long r = r0; r < r1; r++) {
    int ch = (int)(r % e->c);
    size_t off = (size_t)r * e->inner;
    float s = e->scale ? e->scale[ch] : 1.0f, b = e->bias ? e->bias[ch] : 0.0f;
    for (long long i = 0; i < e->inner; i++) e->y[off + i] = e->x[off + i] * s + b;
  }
}

static long long row_grain(long long inner) { return inner >= 4 * GRAIN ? 1 : 4 * GRAIN / inner; }

dx_status dx_cpu_channel_affine(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                                const float *scale, const float *bias) {
  (void)be;
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  ch_ctx e = {x, y, c, inner, scale, bias};
  dx_cpu_parallel((long long)outer * c, row_grain(inner), channel_affine_range, &e);
  return DX_OK;
}

static void add_scaled_range(void *p, long long r0, long long r1) {
  const ch_ctx *e = p;
  for (long long r = r0; r < r1; r++) {
    int ch = (int)(r % e->c);
    size_t off = (size_t)r * e->inner;
    float s = e->scale ? e->scale[ch] : 1.0f;
    for (long long i = 0; i < e->inner; i++) e->y[off + i] += s * e->x[off + i];
  }
}

/* inner 1 ([rows][c] with a per-column scale): rows of c instead */
static void add_scaled_cols_range(void *p, long long r0, long long r1) {
  const ch_ctx *e = p;
  for (long long r = r0; r < r1; r++) {
    const float *x = e->x + (size_t)r * e->c;
    float *y = e->y + (size_t)r * e->c;
    for (int ch = 0; ch < e->c; ch++) y[ch] += (e->scale ? e->scale[ch] : 1.0f) * x[ch];
  }
}

dx_status dx_cpu_add_scaled(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                            const float *scale) {
  (void)be;
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  ch_ctx e = {x, y, c, inner, scale, NULL};
  if (inner == 1)
    dx_cpu_parallel(outer, row_grain(c), add_scaled_cols_range, &e);
  else
    dx_cpu_parallel((long long)outer * c, row_grain(inner), add_scaled_range, &e);
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
