/* nn_norm.c: CPU normalisation ops (dx_nn_ops.h): group norm, layer norm,
 * and the mean/std standardisation the Demucs graphs wrap around their
 * branches. Statistics are accumulated in double, two passes, each over
 * eight running partial sums (vector lanes) added pairwise at the end: a
 * fixed order, so the result depends on the shapes only.
 * Group norm over many (batch, group) items runs items in parallel; over few
 * large ones it sums fixed blocks of NORM_BLOCK elements in parallel and adds
 * the block sums in order, so the result depends on the shapes only, never on
 * the number of threads.
 * Threading: reentrant; large loops are split over the ops' pool (nn_pool.c). */
#include <math.h>
#include <stdlib.h>

#include "dx_hot.h"
#include "nn_cpu.h"

#define NORM_BLOCK 16384

typedef struct {
  const float *x;
  float *y;
  int channels, len, groups, cpg, channels_last;
  int c0; /* block path: first channel of the current item's group */
  const float *gamma, *beta;
  float eps;
  /* block reductions of one item: n elements at xg, partial sums out */
  const float *xg;
  long long n;
  double mean;
  double *part;
  float mf, inv;
} gn_ctx;

/* Sum of x[0..n), and of (x - mean)^2, in double over eight partial sums. */
DX_HOT static double sum_d(const float *x, size_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) a[l] += x[i + l];
  for (int l = 0; i < n; i++, l++) a[l] += x[i];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

DX_HOT static double sqdev_d(const float *x, size_t n, double mean) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      double d = x[i + l] - mean;
      a[l] += d * d;
    }
  for (int l = 0; i < n; i++, l++) {
    double d = x[i] - mean;
    a[l] += d * d;
  }
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Mean of x[0..n) and 1/sqrt(variance + eps), in double, two passes. */
static void mean_inv_std(const float *x, size_t n, float eps, float *mf, float *inv) {
  double mean = sum_d(x, n) / n;
  *mf = (float)mean;
  *inv = (float)(1.0 / sqrt(sqdev_d(x, n, mean) / n + eps));
}

/* One (batch, group) item, serially: the reference loop. */
static void gn_item(const gn_ctx *e, int b, int g) {
  size_t per = (size_t)e->channels * e->len;
  const float *xb = e->x + b * per;
  float *yb = e->y + b * per;
  int cpg = e->cpg, len = e->len, channels = e->channels;
  const float *gamma = e->gamma, *beta = e->beta;
  size_t n = (size_t)cpg * len;
  if (!e->channels_last) {
    const float *xg = xb + (size_t)g * cpg * len;
    float mf, inv;
    mean_inv_std(xg, n, e->eps, &mf, &inv);
    for (int c = g * cpg; c < (g + 1) * cpg; c++) {
      float ga = gamma ? gamma[c] : 1.0f, be_ = beta ? beta[c] : 0.0f, a = inv * ga;
      const float *xc = xb + (size_t)c * len;
      float *yc = yb + (size_t)c * len;
      for (int l = 0; l < len; l++) yc[l] = (xc[l] - mf) * a + be_;
    }
  } else {
    double s = 0, ss = 0;
    for (int l = 0; l < len; l++)
      for (int c = g * cpg; c < (g + 1) * cpg; c++) s += xb[(size_t)l * channels + c];
    double mean = s / n;
    for (int l = 0; l < len; l++)
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        double d = xb[(size_t)l * channels + c] - mean;
        ss += d * d;
      }
    float mf = (float)mean, inv = (float)(1.0 / sqrt(ss / n + e->eps));
    for (int l = 0; l < len; l++)
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        size_t i = (size_t)l * channels + c;
        yb[i] = (xb[i] - mf) * inv * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
      }
  }
}

static void gn_items_range(void *p, long long i0, long long i1) {
  const gn_ctx *e = p;
  for (long long i = i0; i < i1; i++) gn_item(e, (int)(i / e->groups), (int)(i % e->groups));
}

static void gn_sum_range(void *p, long long k0, long long k1) {
  gn_ctx *e = p;
  for (long long k = k0; k < k1; k++) {
    long long a = k * NORM_BLOCK, z = a + NORM_BLOCK < e->n ? a + NORM_BLOCK : e->n;
    e->part[k] = sum_d(e->xg + a, (size_t)(z - a));
  }
}

static void gn_sq_range(void *p, long long k0, long long k1) {
  gn_ctx *e = p;
  for (long long k = k0; k < k1; k++) {
    long long a = k * NORM_BLOCK, z = a + NORM_BLOCK < e->n ? a + NORM_BLOCK : e->n;
    e->part[k] = sqdev_d(e->xg + a, (size_t)(z - a), e->mean);
  }
}

/* Normalise elements [i0, i1) of the current item (channel-first rows of len,
 * or channels-last rows of `channels` for a single group). */
static void gn_apply_range(void *p, long long i0, long long i1) {
  const gn_ctx *e = p;
  const float *x = e->xg;
  float *y = e->y + (e->xg - e->x);
  const float mf = e->mf, inv = e->inv;
  if (!e->channels_last) { /* a channel's run of elements at a time */
    for (long long i = i0; i < i1;) {
      long long row = i / e->len, end = (row + 1) * e->len < i1 ? (row + 1) * e->len : i1;
      int c = e->c0 + (int)row;
      float ga = e->gamma ? e->gamma[c] : 1.0f, be_ = e->beta ? e->beta[c] : 0.0f;
      for (; i < end; i++) y[i] = (x[i] - mf) * inv * ga + be_;
    }
  } else {
    for (long long i = i0, c = i0 % e->channels; i < i1; i++) {
      y[i] = (x[i] - mf) * inv * (e->gamma ? e->gamma[c] : 1.0f) + (e->beta ? e->beta[c] : 0.0f);
      if (++c == e->channels) c = 0;
    }
  }
}

dx_status dx_cpu_group_norm(dx_backend *be, const float *x, float *y, int batch, int channels, int len, int groups,
                            const float *gamma, const float *beta, float eps, int channels_last) {
  (void)be;
  if (batch <= 0 || channels <= 0 || len <= 0 || groups <= 0 || channels % groups) return DX_ERR_INVALID;
  gn_ctx e = {x, y, channels, len, groups, channels / groups, channels_last, 0, gamma, beta, eps,
              NULL, 0, 0, NULL, 0, 0};
  long long items = (long long)batch * groups, n = (long long)e.cpg * len;
  if (items >= 4 || n < 4 * NORM_BLOCK || (channels_last && groups > 1)) {
    dx_cpu_parallel(items, n >= NORM_BLOCK ? 1 : NORM_BLOCK / n, gn_items_range, &e);
    return DX_OK;
  }
  /* few large items: blocks of one item in parallel */
  long long nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
  e.part = malloc((size_t)nb * sizeof *e.part);
  if (!e.part) return DX_ERR_NOMEM;
  for (long long it = 0; it < items; it++) {
    int b = (int)(it / groups), g = (int)(it % groups);
    e.xg = x + (size_t)b * channels * len + (size_t)g * e.cpg * len; /* groups == 1 when channels_last */
    e.c0 = g * e.cpg;
    e.n = n;
    dx_cpu_parallel(nb, 1, gn_sum_range, &e);
    double s = 0, ss = 0;
    for (long long k = 0; k < nb; k++) s += e.part[k];
    e.mean = s / n;
    dx_cpu_parallel(nb, 1, gn_sq_range, &e);
    for (long long k = 0; k < nb; k++) ss += e.part[k];
    e.mf = (float)e.mean;
    e.inv = (float)(1.0 / sqrt(ss / n + eps));
    dx_cpu_parallel(n, NORM_BLOCK, gn_apply_range, &e);
  }
  free(e.part);
  return DX_OK;
}

typedef struct {
  const float *x;
  float *y;
  int dim;
  const float *gamma, *beta;
  float eps;
} ln_ctx;

static void ln_range(void *p, long long r0, long long r1) {
  const ln_ctx *e = p;
  int dim = e->dim;
  for (long long r = r0; r < r1; r++) {
    const float *xr = e->x + (size_t)r * dim;
    float *yr = e->y + (size_t)r * dim;
    float mf, inv;
    mean_inv_std(xr, (size_t)dim, e->eps, &mf, &inv);
    for (int i = 0; i < dim; i++)
      yr[i] = (xr[i] - mf) * inv * (e->gamma ? e->gamma[i] : 1.0f) + (e->beta ? e->beta[i] : 0.0f);
  }
}

dx_status dx_cpu_layer_norm(dx_backend *be, const float *x, float *y, int rows, int dim, const float *gamma,
                            const float *beta, float eps) {
  (void)be;
  if (rows <= 0 || dim <= 0) return DX_ERR_INVALID;
  ln_ctx e = {x, y, dim, gamma, beta, eps};
  dx_cpu_parallel(rows, dim >= NORM_BLOCK ? 1 : NORM_BLOCK / dim, ln_range, &e);
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
