/* nn_gemm.cu: batched row-major SGEMM on cuBLAS and nn.Linear (GEMM plus a
 * bias kernel).
 *
 * Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a
 * row-major matrix with row stride ld read as column-major is its transpose
 * with leading dimension ld, so the call swaps the operands and keeps each
 * one's transpose flag. The handle's math mode (pedantic float32, or TF32
 * when DEMIX_CUDA_TF32=1) is set once in cuda_backend.cu.
 *
 * Threading: one backend per thread (its cuBLAS handle and stream). */
#include "nn_cuda.h"

extern "C" dx_status dx_cuda_nn_gemm(dx_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha,
                                     const float *a, int lda, long long stride_a, const float *b, int ldb,
                                     long long stride_b, float beta, float *c, int ldc, long long stride_c,
                                     int batch) {
  if (m <= 0 || n <= 0 || k <= 0 || batch <= 0 || lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n ||
      stride_a < 0 || stride_b < 0 || stride_c < 0)
    return DX_ERR_INVALID;
  dx_cuda_ctx *cx = dx_cuda_ctx_of(be);
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1)
    DX_CUBLAS_CHECK(cublasSgemm(cx->cublas, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
  else
    DX_CUBLAS_CHECK(cublasSgemmStridedBatched(cx->cublas, op_b, op_a, n, m, k, &alpha, b, ldb, stride_b, a, lda,
                                              stride_a, &beta, c, ldc, stride_c, batch));
  return DX_OK;
}

__global__ void bias_rows_kernel(float *y, const float *bias, long long rows, int cols, long long ld) {
  const long long total = rows * cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / cols;
    const int j = (int)(i % cols);
    y[r * ld + j] += bias[j];
  }
}

extern "C" dx_status dx_cuda_bias_rows(dx_backend *be, float *y, const float *bias, long long rows, int cols,
                                       long long ld) {
  if (!bias || rows <= 0 || cols <= 0) return DX_OK;
  bias_rows_kernel<<<dx_cuda_grid(rows * cols, 256), 256, 0, dx_cuda_stream(be)>>>(y, bias, rows, cols, ld);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_linear(dx_backend *be, const float *x, const float *w, const float *bias, float *y,
                                       int rows, int in, int out) {
  if (rows <= 0 || in <= 0 || out <= 0) return DX_ERR_INVALID;
  DX_CU_TRY(dx_cuda_nn_gemm(be, 0, 1, rows, out, in, 1.0f, x, in, 0, w, in, 0, 0.0f, y, out, 0, 1));
  return dx_cuda_bias_rows(be, y, bias, rows, out, out);
}
