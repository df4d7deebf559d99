/* dx_backend.h: the compute backend interface.
 *
 * One struct of function pointers plus a context. The CPU backend
 * (kernels/cpu/) is the reference and always present; the CUDA backend
 * (kernels/cuda/) exists when built with DEMIX_HAVE_CUDA and a GPU is found.
 * Op families live in their own headers and are reached through the
 * sub-tables: `be->feat` (analysis features, dx_feature_ops.h) and `be->nn`
 * (neural-network ops for the Demucs graphs, dx_nn_ops.h).
 *
 * Memory: every pointer an op takes lives in the backend's memory space
 * (host memory for CPU, device memory for CUDA). Use be->alloc/free and
 * be->upload/download to move data; on CPU they are malloc and memcpy.
 *
 * Threading: a dx_backend is one worker's (it owns a CUDA stream and scratch
 * buffers); open one per thread. Read-only data (model weights) may be
 * shared between backends of the same device. */
#ifndef DX_BACKEND_H
#define DX_BACKEND_H

#include <stddef.h>

#include "dx_error.h"

typedef struct dx_backend dx_backend;
typedef struct dx_feature_ops dx_feature_ops; /* dx_feature_ops.h */
typedef struct dx_nn_ops dx_nn_ops;           /* dx_nn_ops.h */

typedef enum { DX_DEVICE_CPU = 0, DX_DEVICE_CUDA = 1 } dx_device_kind;

struct dx_backend {
  const char *name; /* "cpu" or "cuda" */
  dx_device_kind kind;
  void *ctx;        /* backend-private state (stream, handles, scratch) */
  char device_desc[128]; /* e.g. "NVIDIA H100 80GB HBM3" or "cpu (2 threads)" */

  dx_status (*alloc)(dx_backend *be, size_t bytes, void **out);
  void (*free)(dx_backend *be, void *p); /* NULL is a no-op */
  dx_status (*upload)(dx_backend *be, void *dst_dev, const void *src_host, size_t bytes);
  dx_status (*download)(dx_backend *be, void *dst_host, const void *src_dev, size_t bytes);
  dx_status (*memset0)(dx_backend *be, void *dst_dev, size_t bytes);
  dx_status (*copy)(dx_backend *be, void *dst_dev, const void *src_dev, size_t bytes);
  dx_status (*sync)(dx_backend *be); /* wait for queued work; reports async errors */
  void (*destroy)(dx_backend *be);
  /* Optional (NULL: nothing to do): give memory the backend keeps for reuse
   * back to the system, e.g. when a worker goes idle after a job. Any thread. */
  void (*trim)(dx_backend *be);

  const dx_feature_ops *feat;
  const dx_nn_ops *nn;

  /* Cache slot for a pipeline's reusable per-worker state made on this
   * backend (the analysis pipeline keeps its analyzer here: FFT plans,
   * filterbanks, buffers; on CUDA cuFFT plans and device memory), so a
   * worker makes it once and not per job. Contract: the state is owned by
   * the backend and used only by the thread that uses the backend. Whoever
   * stores a state sets both fields; dx_backend_close calls
   * feat_state_free(be, feat_state) before the backend's own destroy (the
   * backend still works then), so a reopened backend starts empty. To drop
   * or replace the state early, call feat_state_free yourself and set both
   * fields back to NULL. Backends start with both NULL (zeroed struct). */
  void *feat_state;
  void (*feat_state_free)(dx_backend *be, void *state);
};

/* Open a backend by name: "cpu", "cuda" or "auto" (CUDA when built and a GPU
 * is present, else CPU). "cuda" without a GPU returns DX_ERR_NO_DEVICE.
 * The caller owns *out and closes it with dx_backend_close. */
dx_status dx_backend_open(const char *device, dx_backend **out, dx_errbuf *err);
void dx_backend_close(dx_backend *be); /* NULL is a no-op */

/* 1 if this build has the CUDA backend and a GPU is visible; desc (if
 * non-NULL) receives the GPU's name. */
int dx_backend_cuda_available(char *desc, size_t desc_len);

/* Backend constructors (kernels/cpu/cpu_backend.c, kernels/cuda/cuda_backend.cu). */
dx_status dx_backend_cpu_create(dx_backend **out, dx_errbuf *err);
/* Bytes the CPU backends keep cached for reuse now (freed blocks of 1 MiB
 * and more; see cpu_backend.c), for tests and diagnostics. */
size_t dx_backend_cpu_cached_bytes(void);
#ifdef DEMIX_HAVE_CUDA
dx_status dx_backend_cuda_create(dx_backend **out, dx_errbuf *err);
int dx_cuda_device_count(char *desc, size_t desc_len);
#endif

#endif
