/* nn_matmul.c: CPU matrix products, linear layers, softmax and multi-head
 * attention (dx_nn_ops.h), on OpenBLAS SGEMM. Attention runs head by head
 * in blocks of query rows so the score block stays under
 * DX_CPU_SCRATCH_FLOATS.
 * Threading: reentrant; scratch is per call. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "nn_cpu.h"

dx_status dx_cpu_gemm(dx_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, long long stride_a, const float *b, int ldb, long long stride_b, float beta, float *c,
                      int ldc, long long stride_c, int batch) {
  (void)be;
  if (m <= 0 || n <= 0 || k <= 0 || batch <= 0) return DX_ERR_INVALID;
  if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n) return DX_ERR_INVALID;
  for (int i = 0; i < batch; i++)
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
  return DX_OK;
}

dx_status dx_cpu_linear(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int rows, int in,
                        int out) {
  (void)be;
  if (rows <= 0 || in <= 0 || out <= 0) return DX_ERR_INVALID;
  if (bias) {
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < out; o++) y[(size_t)r * out + o] = bias[o];
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in, bias ? 1.0f : 0.0f, y, out);
  return DX_OK;
}

static void softmax_rows(float *x, long long rows, int cols) {
  for (long long r = 0; r < rows; r++) {
    float *p = x + r * cols, mx = p[0];
    for (int j = 1; j < cols; j++) mx = p[j] > mx ? p[j] : mx;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = 0;
    for (; j < cols; j++) p[j] = expf(p[j] - mx);
    for (j = 0; j + 4 <= cols; j += 4) {
      s0 += p[j];
      s1 += p[j + 1];
      s2 += p[j + 2];
      s3 += p[j + 3];
    }
    for (; j < cols; j++) s0 += p[j];
    float inv = 1.0f / ((s0 + s1) + (s2 + s3));
    for (j = 0; j < cols; j++) p[j] *= inv;
  }
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
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, lk, dh, scale, q + r0 * ldq + h * dh, ldq, k + h * dh,
                  ldk, 0.0f, s, lk);
      softmax_rows(s, nr, lk);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, dh, lk, 1.0f, s, lk, v + h * dh, ldv, 0.0f,
                  out + r0 * ldo + h * dh, ldo);
    }
  }
  free(s);
  return DX_OK;
}
