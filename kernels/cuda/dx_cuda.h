/* dx_cuda.h: shared by the CUDA backend's files: the error-check macros,
 * the backend context (stream, library handles, caching allocator, cuDNN
 * workspace, per-shape descriptor, FFT plan and resampling filter caches)
 * and small launch helpers. C++ (nvcc) only; everything exported is
 * extern "C".
 *
 * Threading: a dx_cuda_ctx belongs to one dx_backend, used by one thread at
 * a time; nothing here is shared between backends. */
#ifndef DX_CUDA_H
#define DX_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cufft.h>
#include <pthread.h>

extern "C" {
#include "dx_backend.h"
}

/* One device block of the caching allocator: size is the rounded size. */
typedef struct {
  void *p;
  size_t size;
} dx_cuda_block;

typedef struct dx_cuda_conv_cache dx_cuda_conv_cache; /* nn_conv.cu */
typedef struct dx_cuda_fft_cache dx_cuda_fft_cache;   /* nn_spectral.cu */
typedef struct dx_cuda_resample_cache dx_cuda_resample_cache; /* nn_resample.cu */

typedef struct dx_cuda_ctx_ {
  int device;
  cudaStream_t stream;
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
  int tf32;      /* cuDNN convolutions may use TF32 tensor cores (DEMIX_CUDA_TF32=1 or conv; not exact float32) */
  int tf32_gemm; /* cuBLAS products too (DEMIX_CUDA_TF32=1) */

  /* Caching allocator: blocks handed out (live) and blocks kept for reuse
   * (cached). Reuse happens only on this backend's stream, so a block freed
   * right after queuing work on it is safe to hand out again (stream order). */
  dx_cuda_block *live, *cached;
  size_t n_live, cap_live, n_cached, cap_cached;
  size_t cached_bytes; /* this backend's share of the process-wide cache (see cuda_backend.cu) */
  pthread_mutex_t mem_lock; /* guards the two lists above, the byte counts and closed */
  int mem_lock_ready;
  /* Closed while blocks were still live (weights of cached models, which
   * outlive a worker's backend when it is reopened after an error): the
   * stream and handles are gone, the lists and the backend stay until the
   * last live block is freed (see cu_destroy). */
  int closed;

  /* cuDNN workspace, grown rarely (never shrinks until destroy). */
  void *ws;
  size_t ws_size;

  dx_cuda_conv_cache *conv_cache;
  dx_cuda_fft_cache *fft_cache;
  dx_cuda_resample_cache *resample_cache;

  /* The process's open backends, for trimming each other's caches when
   * the device is full (guarded by a lock in cuda_backend.cu). */
  struct dx_cuda_ctx_ *reg_next;
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
/* After a kernel launch: launch-configuration errors surface here. */
#define DX_CUDA_LAUNCH_CHECK() DX_CUDA_CHECK(cudaGetLastError())
/* Propagate a dx_status. */
#define DX_CU_TRY(expr)                                                                   \
  do {                                                                                    \
    dx_status st_ = (expr);                                                               \
    if (st_ != DX_OK) return st_;                                                         \
  } while (0)

static inline dx_cuda_ctx *dx_cuda_ctx_of(dx_backend *be) { return (dx_cuda_ctx *)be->ctx; }
static inline cudaStream_t dx_cuda_stream(dx_backend *be) { return dx_cuda_ctx_of(be)->stream; }

/* Temporary device memory from the backend's caching allocator (the same
 * one be->alloc uses). Free it with dx_cuda_free as soon as the work using
 * it is queued: the block is reused only by later work on the same stream.
 * Returns DX_ERR_NOMEM when the device is full even after the cache is
 * released. */
extern "C" dx_status dx_cuda_alloc(dx_backend *be, size_t bytes, void **out);
extern "C" void dx_cuda_free(dx_backend *be, void *p);
/* Release the allocator's cached blocks, this backend's and then the other
 * backends' of the process (each after its stream's queued work): for an
 * allocation outside the allocator (cuFFT plan, cuDNN workspace, ...) that
 * failed for lack of memory. */
extern "C" void dx_cuda_cache_trim(dx_backend *be);
/* The cuDNN workspace, at least `bytes` long (grown when needed; *out stays
 * valid until the next call). */
extern "C" dx_status dx_cuda_workspace(dx_backend *be, size_t bytes, void **out);

/* Cache teardown hooks (nn_conv.cu, nn_spectral.cu, nn_resample.cu), called at destroy. */
extern "C" void dx_cuda_conv_cache_free(dx_cuda_ctx *c);
extern "C" void dx_cuda_fft_cache_free(dx_cuda_ctx *c);
extern "C" void dx_cuda_resample_cache_free(dx_cuda_ctx *c);

/* Grid for a grid-stride loop over n items with `threads` per block. */
static inline unsigned dx_cuda_grid(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65536) b = 65536;
  return (unsigned)b;
}

#endif
