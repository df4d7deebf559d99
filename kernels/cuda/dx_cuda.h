/* dx_cuda.h: shared by the CUDA backend's files: the error-check macros and
 * the backend context. C++ (nvcc) only; everything exported is extern "C". */
#ifndef DX_CUDA_H
#define DX_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cufft.h>

extern "C" {
#include "dx_backend.h"
}

typedef struct {
  int device;
  cudaStream_t stream;
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
} dx_cuda_ctx;

/* Record the failing statement, file and line into the log and return an
 * error instead of aborting: in a daemon a bad job fails, the service lives. */
extern "C" dx_status dx_cuda_report(dx_status st, const char *what, const char *detail, const char *file, int line);

#define DX_CUDA_CHECK(x)                                                                  \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) return dx_cuda_report(DX_ERR_CUDA, #x, cudaGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)
#define DX_CUFFT_CHECK(x)                                                                 \
  do {                                                                                    \
    cufftResult e_ = (x);                                                                 \
    if (e_ != CUFFT_SUCCESS) return dx_cuda_report(DX_ERR_CUFFT, #x, "cufft failure", __FILE__, __LINE__); \
  } while (0)
#define DX_CUDNN_CHECK(x)                                                                 \
  do {                                                                                    \
    cudnnStatus_t e_ = (x);                                                               \
    if (e_ != CUDNN_STATUS_SUCCESS) return dx_cuda_report(DX_ERR_CUDNN, #x, cudnnGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)
#define DX_CUBLAS_CHECK(x)                                                                \
  do {                                                                                    \
    cublasStatus_t e_ = (x);                                                              \
    if (e_ != CUBLAS_STATUS_SUCCESS) return dx_cuda_report(DX_ERR_CUBLAS, #x, cublasGetStatusString(e_), __FILE__, __LINE__); \
  } while (0)

static inline dx_cuda_ctx *dx_cuda_ctx_of(dx_backend *be) { return (dx_cuda_ctx *)be->ctx; }

#endif
