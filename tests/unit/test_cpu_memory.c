/* test_cpu_memory.c: the CPU backend's memory functions: alignment, reuse of
 * large freed blocks within one rounded size class (also across backends),
 * and by a smaller request of more than half a cached block's size,
 * small blocks never cached, trim and the last close emptying the cache, and
 * blocks passed between threads keeping their contents. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_backend.h"
#include "dx_test.h"

#define MIB ((size_t)1 << 20)

static dx_backend *open_cpu(void) {
  dx_backend *be = NULL;
  dx_errbuf err = {{0}};
  if (dx_backend_open("cpu", &be, &err) != DX_OK) return NULL;
  return be;
}

DX_TEST(aligned_and_writable) {
  dx_backend *be = open_cpu();
  CHECK(be != NULL);
  size_t sizes[] = {0, 1, 63, 4096, MIB - 1, MIB, 3 * MIB + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    unsigned char *p = NULL;
    CHECK(be->alloc(be, sizes[i], (void **)&p) == DX_OK && p);
    CHECK(((uintptr_t)p & 63) == 0);
    memset(p, 0xab, sizes[i]);
    CHECK(sizes[i] == 0 || (p[0] == 0xab && p[sizes[i] - 1] == 0xab));
    be->free(be, p);
  }
  be->free(be, NULL);
  dx_backend_close(be);
  CHECK(dx_backend_cpu_cached_bytes() == 0);
}

DX_TEST(large_blocks_reused_by_size_class) {
  dx_backend *a = open_cpu(), *b = open_cpu();
  CHECK(a && b);
  size_t base = dx_backend_cpu_cached_bytes();
  void *p = NULL, *q = NULL, *r = NULL;
  CHECK(a->alloc(a, 3 * MIB, &p) == DX_OK);
  a->free(a, p);
  CHECK(dx_backend_cpu_cached_bytes() == base + 3 * MIB); /* 3 MiB is its own class */
  CHECK(a->alloc(a, 3 * MIB - 100, &q) == DX_OK);          /* rounds up to the same class */
  CHECK(q == p);
  CHECK(dx_backend_cpu_cached_bytes() == base);
  CHECK(a->alloc(a, 5 * MIB, &r) == DX_OK); /* another class: a new block */
  CHECK(r != q);
  b->free(b, q); /* freed through the other backend: the one process-wide cache */
  CHECK(b->alloc(b, 3 * MIB, &p) == DX_OK && p == q);
  b->free(b, p);
  a->free(a, r);
  CHECK(dx_backend_cpu_cached_bytes() >= 8 * MIB);
  /* small blocks go straight back to malloc */
  size_t before = dx_backend_cpu_cached_bytes();
  CHECK(a->alloc(a, MIB / 2, &p) == DX_OK);
  a->free(a, p);
  CHECK(dx_backend_cpu_cached_bytes() == before);
  CHECK(a->trim != NULL);
  a->trim(a);
  CHECK(dx_backend_cpu_cached_bytes() == 0);
  CHECK(a->alloc(a, 2 * MIB, &p) == DX_OK);
  a->free(a, p);
  CHECK(dx_backend_cpu_cached_bytes() == 2 * MIB);
  dx_backend_close(a);
  CHECK(dx_backend_cpu_cached_bytes() == 2 * MIB); /* b is still open */
  dx_backend_close(b);
  CHECK(dx_backend_cpu_cached_bytes() == 0); /* the last close empties it */
}

DX_TEST(smaller_request_takes_a_cached_block_under_twice_its_size) {
  dx_backend *a = open_cpu();
  CHECK(a != NULL);
  if (!a) return;
  a->trim(a);
  void *p8 = NULL, *p5 = NULL, *q = NULL, *r = NULL;
  CHECK(a->alloc(a, 8 * MIB, &p8) == DX_OK && a->alloc(a, 5 * MIB, &p5) == DX_OK);
  a->free(a, p8);
  a->free(a, p5);
  CHECK(dx_backend_cpu_cached_bytes() == 13 * MIB);
  CHECK(a->alloc(a, 5 * MIB, &q) == DX_OK && q == p5); /* its own class first */
  a->free(a, q);
  CHECK(a->alloc(a, 7 * MIB, &q) == DX_OK && q == p8); /* no 7 MiB block: the 8 MiB one */
  CHECK(dx_backend_cpu_cached_bytes() == 5 * MIB);
  memset(q, 0x5a, 7 * MIB);
  a->free(a, q);
  CHECK(dx_backend_cpu_cached_bytes() == 13 * MIB); /* back as an 8 MiB block */
  CHECK(a->alloc(a, 3 * MIB, &r) == DX_OK && r == p5); /* 5 MiB < 2 x 3 MiB */
  CHECK(a->alloc(a, 2 * MIB, &q) == DX_OK && q != p8); /* 8 MiB is over twice 2 MiB: a new block */
  CHECK(dx_backend_cpu_cached_bytes() == 8 * MIB);
  a->free(a, q);
  a->free(a, r);
  a->trim(a);
  CHECK(dx_backend_cpu_cached_bytes() == 0);
  dx_backend_close(a);
}

typedef struct {
  dx_backend *be;
  int id, ok;
} worker_arg;

static void *churn(void *p) {
  worker_arg *w = p;
  w->ok = 1;
  for (int it = 0; it < 200; it++) {
    size_t n = (size_t)(1 + (it + w->id) % 4) * MIB / sizeof(uint32_t);
    uint32_t *x = NULL;
    if (w->be->alloc(w->be, n * sizeof *x, (void **)&x) != DX_OK) {
      w->ok = 0;
      return NULL;
    }
    uint32_t tag = (uint32_t)(w->id * 1000003 + it);
    for (size_t i = 0; i < n; i += 1024) x[i] = tag + (uint32_t)i;
    for (size_t i = 0; i < n; i += 1024)
      if (x[i] != tag + (uint32_t)i) w->ok = 0;
    w->be->free(w->be, x);
  }
  return NULL;
}

DX_TEST(threads_share_the_cache) {
  dx_backend *be = open_cpu();
  CHECK(be != NULL);
  pthread_t t[4];
  worker_arg w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker_arg){be, i, 0};
    CHECK(pthread_create(&t[i], NULL, churn, &w[i]) == 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    CHECK(w[i].ok);
  }
  /* a block is made only when none of its class is cached, so a class has
   * at most as many blocks as threads using it at once: 4 x (1+2+3+4) MiB */
  size_t cached = dx_backend_cpu_cached_bytes();
  CHECK(cached >= 4 * MIB && cached <= 40 * MIB);
  dx_backend_close(be);
  CHECK(dx_backend_cpu_cached_bytes() == 0);
}

DX_TEST_MAIN(DX_T(aligned_and_writable), DX_T(large_blocks_reused_by_size_class),
             DX_T(smaller_request_takes_a_cached_block_under_twice_its_size), DX_T(threads_share_the_cache))
