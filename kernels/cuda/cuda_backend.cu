/* cuda_backend.cu: the CUDA backend's context (device, stream, cuBLAS and
 * cuDNN handles), its caching device allocator, the cuDNN workspace and the
 * memory functions. One backend = one stream; open one per worker thread.
 *
 * The allocator rounds sizes up (at most 1/8 of the size wasted) and keeps
 * freed blocks in a per-backend list for reuse by later allocations of the
 * same rounded size or, when there is none, of more than half the block's. All backends of the process together keep at most a
 * quarter of the device's memory cached (one budget, however many workers
 * are open); a block that would go over it is released instead. Because
 * every user of a backend queues work on its one stream, a block freed
 * while work on it is still queued can be handed out again at once: the
 * next user's work runs after it. A pointer this backend did not hand out
 * (a weight uploaded through another backend of the same device) is
 * released with cudaFree. When an allocation fails, this backend's cached
 * blocks are released and then those of the other backends (each after its
 * own stream's queued work), and the allocation is retried; everything
 * cached goes when the worker finds no job (be->trim) and at destroy.
 *
 * Threading: the backend is one worker's, but model weights shared by every
 * worker are released through the backend that uploaded them by whichever
 * thread frees the model last, so the allocator's lists are locked.
 *
 * TF32: DEMIX_CUDA_TF32=1 in the environment lets cuBLAS and cuDNN use TF32
 * tensor cores (faster, about 1e-3 relative error), DEMIX_CUDA_TF32=conv
 * the convolutions only (PyTorch's default on these GPUs); by default
 * products are exact float32 so results match the CPU reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_block_size.h"
#include "dx_cuda.h"

extern "C" {
#include "dx_util.h" /* dx_log, from dx_core below the kernels */
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

/* ---- caching allocator ---- */

/* Process-wide: the open backends (a list through reg_next), the bytes all
 * their caches hold and the cap on that sum (a quarter of the device's
 * memory, read when the first backend opens). Lock order: a backend's
 * mem_lock, then g_reg_lock, then other backends' mem_locks by trylock
 * only, so two backends trimming at once cannot deadlock. */
static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static dx_cuda_ctx *g_reg;
static size_t g_cached_total; /* __atomic */
static size_t g_cache_cap;

static size_t cached_total(void) { return __atomic_load_n(&g_cached_total, __ATOMIC_RELAXED); }
static void cached_add(dx_cuda_ctx *c, size_t bytes) {
  c->cached_bytes += bytes;
  __atomic_add_fetch(&g_cached_total, bytes, __ATOMIC_RELAXED);
}
static void cached_sub(dx_cuda_ctx *c, size_t bytes) {
  c->cached_bytes -= bytes;
  __atomic_sub_fetch(&g_cached_total, bytes, __ATOMIC_RELAXED);
}

static void registry_add(dx_cuda_ctx *c, size_t device_total) {
  pthread_mutex_lock(&g_reg_lock);
  if (!g_cache_cap) g_cache_cap = device_total / 4;
  c->reg_next = g_reg;
  g_reg = c;
  pthread_mutex_unlock(&g_reg_lock);
}
static void registry_remove(dx_cuda_ctx *c) {
  pthread_mutex_lock(&g_reg_lock);
  for (dx_cuda_ctx **pp = &g_reg; *pp; pp = &(*pp)->reg_next)
    if (*pp == c) {
      *pp = c->reg_next;
      break;
    }
  c->reg_next = NULL;
  pthread_mutex_unlock(&g_reg_lock);
}

static size_t round_size(size_t bytes) { return bytes < 512 ? 512 : dx_block_round(bytes, 512); }

static int block_push(dx_cuda_block **arr, size_t *n, size_t *cap, void *p, size_t size) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    dx_cuda_block *na = (dx_cuda_block *)realloc(*arr, nc * sizeof *na);
    if (!na) return -1;
    *arr = na;
    *cap = nc;
  }
  (*arr)[*n].p = p;
  (*arr)[*n].size = size;
  (*n)++;
  return 0;
}

/* Release every cached block (after the stream's queued work is done).
 * Called with mem_lock held. */
static void cache_release(dx_cuda_ctx *c) {
  if (!c->n_cached) return;
  cudaStreamSynchronize(c->stream);
  for (size_t i = 0; i < c->n_cached; i++) cudaFree(c->cached[i].p);
  c->n_cached = 0;
  cached_sub(c, c->cached_bytes);
}

/* The device is full: release the other backends' caches too (those whose
 * lists are free right now; one busy in its own allocator is skipped).
 * Returns whether anything was released. Called with self's mem_lock held. */
static int trim_other_caches(dx_cuda_ctx *self) {
  int released = 0;
  pthread_mutex_lock(&g_reg_lock);
  for (dx_cuda_ctx *o = g_reg; o; o = o->reg_next) {
    if (o == self || !o->mem_lock_ready || pthread_mutex_trylock(&o->mem_lock) != 0) continue;
    released |= o->n_cached > 0;
    cache_release(o);
    pthread_mutex_unlock(&o->mem_lock);
  }
  pthread_mutex_unlock(&g_reg_lock);
  return released;
}

static void lock_mem(dx_cuda_ctx *c) {
  if (c->mem_lock_ready) pthread_mutex_lock(&c->mem_lock);
}
static void unlock_mem(dx_cuda_ctx *c) {
  if (c->mem_lock_ready) pthread_mutex_unlock(&c->mem_lock);
}

static dx_status alloc_locked(dx_cuda_ctx *c, size_t bytes, void **out) {
  const size_t size = round_size(bytes);
  /* The same class, else the smallest cached block under twice the size
   * (as the CPU backend does): a long track's shapes shift from segment to
   * segment, and the few classes each tensor takes stay in use. */
  size_t best = c->n_cached;
  for (size_t i = c->n_cached; i-- > 0;) {
    const size_t got = c->cached[i].size;
    if (got == size) {
      best = i;
      break;
    }
    if (got > size && got / 2 < size && (best == c->n_cached || got < c->cached[best].size)) best = i;
  }
  if (best < c->n_cached) {
    void *p = c->cached[best].p;
    const size_t got = c->cached[best].size;
    if (block_push(&c->live, &c->n_live, &c->cap_live, p, got)) return DX_ERR_NOMEM;
    c->cached[best] = c->cached[--c->n_cached];
    cached_sub(c, got);
    *out = p;
    return DX_OK;
  }
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation && c->n_cached) {
    cudaGetLastError(); /* clear the error before retrying */
    cache_release(c);
    e = cudaMalloc(&p, size);
  }
  if (e == cudaErrorMemoryAllocation && trim_other_caches(c)) {
    cudaGetLastError();
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    const dx_status st = e == cudaErrorMemoryAllocation ? DX_ERR_NOMEM : DX_ERR_CUDA;
    return dx_cuda_report(st, "cudaMalloc", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  /* A block of ours released through another backend leaves a stale entry
   * whose address the driver may now hand out again: drop it. */
  for (size_t i = c->n_live; i-- > 0;)
    if (c->live[i].p == p) c->live[i] = c->live[--c->n_live];
  if (block_push(&c->live, &c->n_live, &c->cap_live, p, size)) {
    cudaFree(p);
    return DX_ERR_NOMEM;
  }
  *out = p;
  return DX_OK;
}

extern "C" dx_status dx_cuda_alloc(dx_backend *be, size_t bytes, void **out) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  *out = NULL;
  lock_mem(c);
  const dx_status st = alloc_locked(c, bytes, out);
  unlock_mem(c);
  return st;
}

static void ctx_free(dx_cuda_ctx *c);

extern "C" void dx_cuda_free(dx_backend *be, void *p) {
  if (!p) return;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  lock_mem(c);
  for (size_t i = c->n_live; i-- > 0;) {
    if (c->live[i].p != p) continue;
    const size_t size = c->live[i].size;
    c->live[i] = c->live[--c->n_live];
    if (c->closed) { /* the backend is gone: no stream, no cache; the last block takes the rest with it */
      const int last = c->n_live == 0;
      unlock_mem(c);
      cudaFree(p); /* waits for the device's work on it */
      if (last) {
        ctx_free(c);
        free(be);
      }
      return;
    }
    /* Keep the process's caches within their budget: drop this backend's
     * own first, and if the others still fill it, release the block. */
    if (cached_total() + size > g_cache_cap) cache_release(c);
    if (cached_total() + size > g_cache_cap || block_push(&c->cached, &c->n_cached, &c->cap_cached, p, size)) {
      cudaStreamSynchronize(c->stream);
      cudaFree(p);
    } else {
      cached_add(c, size);
    }
    unlock_mem(c);
    return;
  }
  unlock_mem(c);
  /* Not ours (allocated through another backend): plain release. */
  cudaStreamSynchronize(c->stream);
  cudaFree(p);
}

extern "C" void dx_cuda_cache_trim(dx_backend *be) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  lock_mem(c);
  cache_release(c);
  trim_other_caches(c);
  unlock_mem(c);
}

/* be->trim: a worker with no job gives its cached blocks back, so an idle
 * engine holds only what stays loaded (model weights, plans, the cuDNN
 * workspace) and other processes on the GPU get the rest. */
static void cu_trim(dx_backend *be) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  lock_mem(c);
  if (!c->closed) cache_release(c);
  unlock_mem(c);
}

extern "C" dx_status dx_cuda_workspace(dx_backend *be, size_t bytes, void **out) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  if (bytes <= c->ws_size && c->ws) {
    *out = c->ws;
    return DX_OK;
  }
  size_t want = round_size(bytes < ((size_t)16 << 20) ? ((size_t)16 << 20) : bytes);
  if (c->ws) {
    DX_CUDA_CHECK(cudaStreamSynchronize(c->stream)); /* queued work may still use the old one */
    cudaFree(c->ws);
    c->ws = NULL;
    c->ws_size = 0;
  }
  cudaError_t e = cudaMalloc(&c->ws, want);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    dx_cuda_cache_trim(be);
    e = cudaMalloc(&c->ws, want);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    c->ws = NULL;
    return dx_cuda_report(DX_ERR_NOMEM, "cudaMalloc(workspace)", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  c->ws_size = want;
  *out = c->ws;
  return DX_OK;
}

/* ---- backend functions ---- */

static dx_status cu_alloc(dx_backend *be, size_t bytes, void **out) { return dx_cuda_alloc(be, bytes, out); }
static void cu_free(dx_backend *be, void *p) { dx_cuda_free(be, p); }
static dx_status cu_upload(dx_backend *be, void *dst, const void *src, size_t n) {
  if (!n) return DX_OK;
  cudaStream_t s = dx_cuda_stream(be);
  DX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
  /* The caller may reuse or free src as soon as we return. */
  DX_CUDA_CHECK(cudaStreamSynchronize(s));
  return DX_OK;
}
static dx_status cu_download(dx_backend *be, void *dst, const void *src, size_t n) {
  if (!n) return DX_OK;
  cudaStream_t s = dx_cuda_stream(be);
  DX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
  DX_CUDA_CHECK(cudaStreamSynchronize(s));
  return DX_OK;
}
static dx_status cu_copy(dx_backend *be, void *dst, const void *src, size_t n) {
  if (!n) return DX_OK;
  DX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, dx_cuda_stream(be)));
  return DX_OK;
}
static dx_status cu_memset0(dx_backend *be, void *dst, size_t n) {
  if (!n) return DX_OK;
  DX_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, dx_cuda_stream(be)));
  return DX_OK;
}
static dx_status cu_sync(dx_backend *be) {
  DX_CUDA_CHECK(cudaStreamSynchronize(dx_cuda_stream(be)));
  return DX_OK;
}
/* The allocator's bookkeeping and the context itself. */
static void ctx_free(dx_cuda_ctx *c) {
  free(c->live);
  free(c->cached);
  if (c->mem_lock_ready) pthread_mutex_destroy(&c->mem_lock);
  free(c);
}

static void cu_destroy(dx_backend *be) {
  if (!be) return;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  if (!c) {
    free(be);
    return;
  }
  registry_remove(c); /* no other backend trims this one from here on */
  if (c->stream) cudaStreamSynchronize(c->stream);
  dx_cuda_conv_cache_free(c);
  dx_cuda_fft_cache_free(c);
  dx_cuda_resample_cache_free(c);
  lock_mem(c);
  cache_release(c);
  if (c->ws) cudaFree(c->ws);
  c->ws = NULL;
  if (c->cudnn) cudnnDestroy(c->cudnn);
  if (c->cublas) cublasDestroy(c->cublas);
  if (c->stream) cudaStreamDestroy(c->stream);
  c->cudnn = NULL;
  c->cublas = NULL;
  c->stream = NULL;
  /* Live blocks still belong to their users (weights of cached models that
   * other workers may be running): the lists and be stay, closed, until the
   * last of them is freed through be (dx_cuda_free). */
  const int live = c->n_live > 0;
  c->closed = live;
  unlock_mem(c);
  if (live) return;
  ctx_free(c);
  free(be);
}

static dx_status cuda_init_ctx(dx_cuda_ctx *c) {
  if (pthread_mutex_init(&c->mem_lock, NULL) != 0) return DX_ERR_NOMEM;
  c->mem_lock_ready = 1;
  const char *tf = getenv("DEMIX_CUDA_TF32");
  c->tf32_gemm = tf && !strcmp(tf, "1");
  c->tf32 = c->tf32_gemm || (tf && !strcmp(tf, "conv"));
  DX_CUDA_CHECK(cudaSetDevice(c->device));
  DX_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  DX_CUBLAS_CHECK(cublasCreate(&c->cublas));
  DX_CUBLAS_CHECK(cublasSetStream(c->cublas, c->stream));
  /* Float32 products unless TF32 was asked for: the CPU backend is the
   * reference. The default mode never lowers float32 inputs to TF32 (that
   * takes CUBLAS_TF32_TENSOR_OP_MATH) and keeps cuBLAS's fast kernels, which
   * the pedantic mode may give up; it is torch's setting with TF32 off. */
  DX_CUBLAS_CHECK(cublasSetMathMode(c->cublas, c->tf32_gemm ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  DX_CUDNN_CHECK(cudnnCreate(&c->cudnn));
  DX_CUDNN_CHECK(cudnnSetStream(c->cudnn, c->stream));
  /* All backends' cached free blocks together: up to a quarter of the device's memory. */
  size_t free_b = 0, total_b = 0;
  DX_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  registry_add(c, total_b);
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
  be->trim = cu_trim;
  be->feat = &dx_cuda_feature_ops;
  be->nn = &dx_cuda_nn_ops;
  *out = be;
  return DX_OK;
}
