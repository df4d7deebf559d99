/* cpu_backend.c: the CPU reference backend's memory functions and op tables.
 * Host memory; every "device" pointer is an ordinary pointer.
 *
 * Large blocks (1 MiB and more: the activations of a separation) are kept
 * for reuse when freed, as the CUDA backend's allocator does: malloc hands
 * blocks this large out as fresh mappings, so every layer of every segment
 * would otherwise fault in and zero its output pages again (a tenth of a
 * separation's time went to the kernel doing so). One cache for the whole
 * process, since a block may be freed through another backend than the one
 * that allocated it (model state shared by workers): sizes are rounded up
 * (at most 1/8 wasted) and a freed block is reused by an allocation of the
 * same rounded size or, when there is none, by one of more than half its
 * size (the smallest such block): the last chunk of a track runs a v3
 * model at a shorter length, and its smaller arena would otherwise be
 * mapped afresh beside the cached full-length one (HDemucs on 60 s: 4.1
 * GB peak before, 2.6 after). At most an eighth of the machine's memory
 * (4 GiB at most) is kept; a block beyond that is freed. The cache is
 * emptied by trim (when a demixd worker finds no job) and when the last
 * CPU backend closes. Every block carries a 64-byte header with its size, which keeps the
 * payload 64-byte aligned. Threading: the cache is locked; any thread. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_backend.h"
#include "dx_block_size.h"

#define BLOCK_HEADER 64
#define CACHE_MIN ((size_t)1 << 20)
#define CACHE_SLOTS 512

typedef struct {
  size_t size; /* payload bytes (rounded when cacheable) */
} block_header;

static struct {
  pthread_mutex_t lock;
  void *base[CACHE_SLOTS];
  size_t size[CACHE_SLOTS];
  int n;
  size_t bytes, cap;
  int backends; /* open CPU backends */
} g_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t round_size(size_t bytes) {
  if (bytes < CACHE_MIN) return bytes ? bytes : 1;
  return dx_block_round(bytes, 1);
}

/* Free every cached block. Called with the lock held. */
static void cache_release(void) {
  for (int i = 0; i < g_cache.n; i++) free(g_cache.base[i]);
  g_cache.n = 0;
  g_cache.bytes = 0;
}

static dx_status cpu_alloc(dx_backend *be, size_t bytes, void **out) {
  (void)be;
  *out = NULL;
  const size_t size = round_size(bytes);
  if (size > SIZE_MAX - BLOCK_HEADER) return DX_ERR_NOMEM;
  void *base = NULL;
  size_t got = size;
  if (size >= CACHE_MIN) {
    pthread_mutex_lock(&g_cache.lock);
    int best = -1; /* the same class, else the smallest block under twice the size */
    for (int i = g_cache.n; i-- > 0;) {
      size_t c = g_cache.size[i];
      if (c == size) {
        best = i;
        break;
      }
      if (c > size && c / 2 < size && (best < 0 || c < g_cache.size[best])) best = i;
    }
    if (best >= 0) {
      base = g_cache.base[best];
      got = g_cache.size[best];
      g_cache.bytes -= got;
      g_cache.n--;
      g_cache.base[best] = g_cache.base[g_cache.n];
      g_cache.size[best] = g_cache.size[g_cache.n];
    }
    pthread_mutex_unlock(&g_cache.lock);
  }
  if (!base && posix_memalign(&base, BLOCK_HEADER, BLOCK_HEADER + size) != 0) return DX_ERR_NOMEM;
  block_header *h = base;
  h->size = got; /* a larger cached block keeps its own class */
  *out = (char *)base + BLOCK_HEADER;
  return DX_OK;
}

static void cpu_free(dx_backend *be, void *p) {
  (void)be;
  if (!p) return;
  void *base = (char *)p - BLOCK_HEADER;
  block_header *h = base;
  const size_t size = h->size;
  if (size >= CACHE_MIN) {
    pthread_mutex_lock(&g_cache.lock);
    int kept = g_cache.n < CACHE_SLOTS && g_cache.bytes + size <= g_cache.cap;
    if (kept) {
      g_cache.base[g_cache.n] = base;
      g_cache.size[g_cache.n] = size;
      g_cache.n++;
      g_cache.bytes += size;
    }
    pthread_mutex_unlock(&g_cache.lock);
    if (kept) return;
  }
  free(base);
}

size_t dx_backend_cpu_cached_bytes(void) {
  pthread_mutex_lock(&g_cache.lock);
  size_t n = g_cache.bytes;
  pthread_mutex_unlock(&g_cache.lock);
  return n;
}

static void cpu_trim(dx_backend *be) {
  (void)be;
  pthread_mutex_lock(&g_cache.lock);
  cache_release();
  pthread_mutex_unlock(&g_cache.lock);
}

extern const dx_feature_ops dx_cpu_feature_ops; /* kernels/cpu/features*.c */
extern const dx_nn_ops dx_cpu_nn_ops;           /* kernels/cpu/nn*.c */

static dx_status cpu_copy(dx_backend *be, void *dst, const void *src, size_t n) {
  (void)be;
  memmove(dst, src, n);
  return DX_OK;
}
static dx_status cpu_memset0(dx_backend *be, void *dst, size_t n) {
  (void)be;
  memset(dst, 0, n);
  return DX_OK;
}
static dx_status cpu_sync(dx_backend *be) { (void)be; return DX_OK; }
static void cpu_destroy(dx_backend *be) {
  pthread_mutex_lock(&g_cache.lock);
  if (--g_cache.backends == 0) cache_release();
  pthread_mutex_unlock(&g_cache.lock);
  free(be);
}

dx_status dx_backend_cpu_create(dx_backend **out, dx_errbuf *err) {
  (void)err;
  dx_backend *be = calloc(1, sizeof *be);
  if (!be) return DX_ERR_NOMEM;
  pthread_mutex_lock(&g_cache.lock);
  if (!g_cache.cap) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t ram = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : (size_t)8 << 30;
    g_cache.cap = ram / 8 < ((size_t)4 << 30) ? ram / 8 : (size_t)4 << 30;
  }
  g_cache.backends++;
  pthread_mutex_unlock(&g_cache.lock);
  be->name = "cpu";
  be->kind = DX_DEVICE_CPU;
  snprintf(be->device_desc, sizeof be->device_desc, "cpu (%ld cores)", sysconf(_SC_NPROCESSORS_ONLN));
  be->alloc = cpu_alloc;
  be->free = cpu_free;
  be->upload = cpu_copy;
  be->download = cpu_copy;
  be->copy = cpu_copy;
  be->memset0 = cpu_memset0;
  be->sync = cpu_sync;
  be->destroy = cpu_destroy;
  be->trim = cpu_trim;
  be->feat = &dx_cpu_feature_ops;
  be->nn = &dx_cpu_nn_ops;
  *out = be;
  return DX_OK;
}
