/* cuda_backend.cu: the CUDA backend's context (device, stream, cuBLAS and
 * cuDNN handles) and memory functions. One backend = one stream; open one
 * per worker thread. */
#include <stdio.h>
#include <stdlib.h>

#include "dx_cuda.h"

extern "C" {
#include "dx_util.h"
extern const dx_feature_ops dx_cuda_feature_ops; /* kernels/cuda/features*.cu */
extern const dx_nn_ops dx_cuda_nn_ops;           /* kernels/cuda/nn*.cu */
}

extern "C" dx_status dx_cuda_report(dx_status st, const char *what, const char *detail, const char *file, int line) {
  dx_log("error", "%s failed: %s (%s:%d)", what, detail, file, line);
  return st;
}

extern "C" int dx_cuda_device_count(char *desc, size_t desc_len) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  if (desc && desc_len) {
    desc[0] = 0;
    cudaDeviceProp prop;
    if (n > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) snprintf(desc, desc_len, "%s", prop.name);
  }
  return n;
}

static dx_status cu_alloc(dx_backend *be, size_t bytes, void **out) {
  (void)be;
  DX_CUDA_CHECK(cudaMalloc(out, bytes ? bytes : 1));
  return DX_OK;
}
static void cu_free(dx_backend *be, void *p) {
  (void)be;
  if (p) cudaFree(p);
}
static dx_status cu_upload(dx_backend *be, void *dst, const void *src, size_t n) {
  DX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, dx_cuda_ctx_of(be)->stream));
  return DX_OK;
}
static dx_status cu_download(dx_backend *be, void *dst, const void *src, size_t n) {
  cudaStream_t s = dx_cuda_ctx_of(be)->stream;
  DX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
  DX_CUDA_CHECK(cudaStreamSynchronize(s));
  return DX_OK;
}
static dx_status cu_copy(dx_backend *be, void *dst, const void *src, size_t n) {
  DX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, dx_cuda_ctx_of(be)->stream));
  return DX_OK;
}
static dx_status cu_memset0(dx_backend *be, void *dst, size_t n) {
  DX_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, dx_cuda_ctx_of(be)->stream));
  return DX_OK;
}
static dx_status cu_sync(dx_backend *be) {
  DX_CUDA_CHECK(cudaStreamSynchronize(dx_cuda_ctx_of(be)->stream));
  return DX_OK;
}
static void cu_destroy(dx_backend *be) {
  if (!be) return;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  if (c) {
    if (c->cudnn) cudnnDestroy(c->cudnn);
    if (c->cublas) cublasDestroy(c->cublas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
  }
  free(be);
}

static dx_status cuda_init_ctx(dx_cuda_ctx *c) {
  DX_CUDA_CHECK(cudaSetDevice(c->device));
  DX_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  DX_CUBLAS_CHECK(cublasCreate(&c->cublas));
  DX_CUBLAS_CHECK(cublasSetStream(c->cublas, c->stream));
  /* Exact float32 products: the CPU backend is the reference. */
  DX_CUBLAS_CHECK(cublasSetMathMode(c->cublas, CUBLAS_PEDANTIC_MATH));
  DX_CUDNN_CHECK(cudnnCreate(&c->cudnn));
  DX_CUDNN_CHECK(cudnnSetStream(c->cudnn, c->stream));
  return DX_OK;
}

extern "C" dx_status dx_backend_cuda_create(dx_backend **out, dx_errbuf *err) {
  *out = NULL;
  char desc[128];
  if (dx_cuda_device_count(desc, sizeof desc) <= 0) return dx_fail(err, DX_ERR_NO_DEVICE, "no CUDA device");
  dx_backend *be = (dx_backend *)calloc(1, sizeof *be);
  dx_cuda_ctx *c = (dx_cuda_ctx *)calloc(1, sizeof *c);
  if (!be || !c) {
    free(be);
    free(c);
    return DX_ERR_NOMEM;
  }
  be->ctx = c;
  be->destroy = cu_destroy;
  dx_status st = cuda_init_ctx(c);
  if (st != DX_OK) {
    cu_destroy(be);
    return dx_fail(err, st, "cannot initialise CUDA backend");
  }
  be->name = "cuda";
  be->kind = DX_DEVICE_CUDA;
  snprintf(be->device_desc, sizeof be->device_desc, "%s", desc);
  be->alloc = cu_alloc;
  be->free = cu_free;
  be->upload = cu_upload;
  be->download = cu_download;
  be->copy = cu_copy;
  be->memset0 = cu_memset0;
  be->sync = cu_sync;
  be->feat = &dx_cuda_feature_ops;
  be->nn = &dx_cuda_nn_ops;
  *out = be;
  return DX_OK;
}
