/* nn_matmul.c: CPU matrix products, linear layers, softmax and multi-head
 * attention (dx_nn_ops.h), on OpenBLAS SGEMM. Attention runs head by head
 * in blocks of query rows so the score block stays under
 * DX_CPU_SCRATCH_FLOATS; the softmax of a block is split by rows over the
 * ops' pool, with exp DX_VF_LANES at a time (nn_vmath.h).
 * Threading: reentrant; scratch is per call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_cpu.h"
#include "nn_vmath.h"

#pragma GCC diagnostic ignored "-Wpsabi" /* dx_vf helpers are always inlined */

dx_status dx_cpu_gemm(dx_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, long long stride_a, const float *b, int ldb, long long stride_b, float beta, float *c,
                      int ldc, long long stride_c, int batch) {
  (void)be;
  if (m <= 0 || n <= 0 || k <= 0 || batch <= 0) return DX_ERR_INVALID;
  if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n) return DX_ERR_INVALID;
  for (int i = 0; i < batch; i++)
    dx_cpu_sgemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c,
                 ldc);
  return DX_OK;
}

typedef struct {
  float *y;
  const float *bias;
  int out;
} bias_ctx;

static void bias_rows(void *p, long long r0, long long r1) {
  const bias_ctx *c = p;
  for (long long r = r0; r < r1; r++) memcpy(c->y + (size_t)r * c->out, c->bias, (size_t)c->out * sizeof(float));
}

dx_status dx_cpu_linear(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int rows, int in,
                        int out) {
  (void)be;
  if (rows <= 0 || in <= 0 || out <= 0) return DX_ERR_INVALID;
  if (bias) {
    bias_ctx c = {y, bias, out};
    dx_cpu_parallel(rows, out >= 65536 ? 1 : 65536 / out, bias_rows, &c);
  }
  dx_cpu_sgemm(0, 1, rows, out, in, 1.0f, x, in, w, in, bias ? 1.0f : 0.0f, y, out);
  return DX_OK;
}

/* Row by row: max, exp (DX_VF_LANES at a time, nn_vmath.h; a shorter tail
 * through a padded vector whose padding is not summed), lane sums combined
 * pairwise, scale. AVX2 + FMA where the CPU has them (DX_HOT). */
DX_VF_INLINE void softmax_row(float *p, int cols) {
  dx_vf m8 = dx_vf_set(p[0]);
  int j = 0;
  for (; j + DX_VF_LANES <= cols; j += DX_VF_LANES) m8 = dx_vf_max(m8, dx_vf_load(p + j));
  float mx = m8[0];
  for (int l = 1; l < DX_VF_LANES; l++) mx = m8[l] > mx ? m8[l] : mx;
  for (; j < cols; j++) mx = p[j] > mx ? p[j] : mx;
  dx_vf mv = dx_vf_set(mx), acc = dx_vf_set(0.0f);
  for (j = 0; j + DX_VF_LANES <= cols; j += DX_VF_LANES) {
    dx_vf e = dx_vf_exp(dx_vf_load(p + j) - mv);
    acc += e;
    dx_vf_store(p + j, e);
  }
  if (j < cols) {
    float t[DX_VF_LANES];
    for (int l = 0; l < DX_VF_LANES; l++) t[l] = mx;
    memcpy(t, p + j, (size_t)(cols - j) * sizeof(float));
    dx_vf e = dx_vf_exp(dx_vf_load(t) - mv);
    dx_vf_store(t, e);
    memcpy(p + j, t, (size_t)(cols - j) * sizeof(float));
    for (int k = 0; k < cols - j; k++) acc[k] += t[k];
  }
  float inv = 1.0f / (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
  dx_vf iv = dx_vf_set(inv);
  for (j = 0; j + DX_VF_LANES <= cols; j += DX_VF_LANES) dx_vf_store(p + j, dx_vf_load(p + j) * iv);
  for (; j < cols; j++) p[j] *= inv;
}

typedef struct {
  float *x;
  int cols;
} softmax_ctx;

DX_HOT static void softmax_range(void *c, long long r0, long long r1) {
  const softmax_ctx *e = c;
  for (long long r = r0; r < r1; r++) softmax_row(e->x + r * e->cols, e->cols);
}

static void softmax_rows(float *x, long long rows, int cols) {
  softmax_ctx c = {x, cols};
  dx_cpu_parallel(rows, cols >= 16384 ? 1 : 16384 / cols, softmax_range, &c);
}

dx_status dx_cpu_softmax(dx_backend *be, float *x, int rows, int cols) {
  (void)be;
  if (rows <= 0 || cols <= 0) return DX_ERR_INVALID;
  softmax_rows(x, rows, cols);
  return DX_OK;
}

dx_status dx_cpu_attention(dx_backend *be, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                           float *out, int ldo, int lq, int lk, int heads, int dh, float scale) {
  (void)be;
  if (lq <= 0 || lk <= 0 || heads <= 0 || dh <= 0) return DX_ERR_INVALID;
  if (ldq < heads * dh || ldk < heads * dh || ldv < heads * dh || ldo < heads * dh) return DX_ERR_INVALID;
  long long block = (long long)(DX_CPU_SCRATCH_FLOATS / (size_t)lk);
  if (block < 1) block = 1;
  if (block > lq) block = lq;
  float *s = malloc((size_t)block * (size_t)lk * sizeof *s);
  if (!s) return DX_ERR_NOMEM;
  for (int h = 0; h < heads; h++) {
    for (long long r0 = 0; r0 < lq; r0 += block) {
      int nr = (int)(r0 + block < lq ? block : lq - r0);
      dx_cpu_sgemm(0, 1, nr, lk, dh, scale, q + r0 * ldq + h * dh, ldq, k + h * dh, ldk, 0.0f, s, lk);
      softmax_rows(s, nr, lk);
      dx_cpu_sgemm(0, 0, nr, dh, lk, 1.0f, s, lk, v + h * dh, ldv, 0.0f, out + r0 * ldo + h * dh, ldo);
    }
  }
  free(s);
  return DX_OK;
}
