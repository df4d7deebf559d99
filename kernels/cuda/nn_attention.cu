/* nn_attention.cu: multi-head scaled dot-product attention (two batched
 * GEMMs over the heads around a row softmax) and the softmax op.
 *
 * Queries are taken in blocks so the score scratch (heads x block x lk
 * floats, from the backend's caching allocator) stays under ATTN_SCRATCH
 * bytes whatever the sequence lengths.
 *
 * Threading: one backend per thread. */
#include "nn_cuda.h"

#define ATTN_SCRATCH ((size_t)256 << 20)

/* In-place softmax of each row of x[rows][cols]: one block per row. */
__global__ void softmax_rows_kernel(float *x, int cols) {
  __shared__ float sh[32];
  float *row = x + (long long)blockIdx.x * cols;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, row[j]);
  dx_block_softmax(row, cols, m, sh);
}

static dx_status softmax_rows(dx_backend *be, float *x, long long rows, int cols) {
  const int threads = cols >= 1024 ? 256 : cols >= 128 ? 128 : 32;
  for (long long r0 = 0; r0 < rows; r0 += 0x7fffffffLL) { /* grid.x limit */
    const long long nr = rows - r0 < 0x7fffffffLL ? rows - r0 : 0x7fffffffLL;
    softmax_rows_kernel<<<(unsigned)nr, threads, 0, dx_cuda_stream(be)>>>(x + r0 * cols, cols);
    DX_CUDA_LAUNCH_CHECK();
  }
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_softmax(dx_backend *be, float *x, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return DX_ERR_INVALID;
  return softmax_rows(be, x, rows, cols);
}

extern "C" dx_status dx_cuda_nn_attention(dx_backend *be, const float *q, int ldq, const float *k, int ldk,
                                          const float *v, int ldv, float *out, int ldo, int lq, int lk, int heads,
                                          int dh, float scale) {
  if (lq <= 0 || lk <= 0 || heads <= 0 || dh <= 0) return DX_ERR_INVALID;
  const long long width = (long long)heads * dh;
  if (ldq < width || ldk < width || ldv < width || ldo < width) return DX_ERR_INVALID;
  long long qb = (long long)(ATTN_SCRATCH / ((size_t)heads * lk * sizeof(float)));
  if (qb < 1) qb = 1;
  if (qb > lq) qb = lq;
  float *s = NULL;
  DX_CU_TRY(dx_cuda_alloc(be, (size_t)heads * qb * lk * sizeof(float), (void **)&s));
  dx_status st = DX_OK;
  for (long long q0 = 0; q0 < lq && st == DX_OK; q0 += qb) {
    const int ns = (int)(lq - q0 < qb ? lq - q0 : qb);
    const long long sstride = (long long)ns * lk;
    /* s_h[i][j] = scale * q_h[q0+i] . k_h[j] */
    st = dx_cuda_nn_gemm(be, 0, 1, ns, lk, dh, scale, q + q0 * ldq, ldq, dh, k, ldk, dh, 0.0f, s, lk, sstride, heads);
    if (st == DX_OK) st = softmax_rows(be, s, (long long)heads * ns, lk);
    /* out_h[q0+i] = s_h[i] v_h */
    if (st == DX_OK)
      st = dx_cuda_nn_gemm(be, 0, 0, ns, dh, lk, 1.0f, s, lk, sstride, v, ldv, dh, 0.0f, out + q0 * ldo, ldo, dh,
                           heads);
  }
  dx_cuda_free(be, s);
  return st;
}
