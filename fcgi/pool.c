/* pool.c: per-request arena with cleanups (see dx_pool.h). One thread. */
#include "dx_pool.h"

#include <json-c/json.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct block {
  struct block *next;
  size_t size, used;
  max_align_t data[];
} block;

typedef struct cleanup {
  struct cleanup *next;
  dx_pool_cleanup_fn fn;
  void *data;
} cleanup;

struct dx_pool {
  block *first, *cur;
  size_t block_size;
  cleanup *cleanups;
};

#define ALIGN (sizeof(max_align_t))

static block *block_new(size_t size) {
  block *b = malloc(sizeof *b + size);
  if (!b) return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  return b;
}

dx_pool *dx_pool_create(size_t block_size) {
  dx_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->block_size = block_size ? block_size : 16384;
  p->first = p->cur = block_new(p->block_size);
  if (!p->first) { free(p); return NULL; }
  return p;
}

static void run_cleanups(dx_pool *p) {
  while (p->cleanups) {
    cleanup *c = p->cleanups;
    p->cleanups = c->next; /* unlinked first: a cleanup may not run twice */
    if (c->fn) c->fn(c->data);
  }
}

void dx_pool_reset(dx_pool *p) {
  if (!p) return;
  run_cleanups(p);
  block *b = p->first->next;
  while (b) { block *n = b->next; free(b); b = n; }
  p->first->next = NULL;
  p->first->used = 0;
  p->cur = p->first;
}

void dx_pool_destroy(dx_pool *p) {
  if (!p) return;
  dx_pool_reset(p);
  free(p->first);
  free(p);
}

void *dx_pool_alloc(dx_pool *p, size_t n) {
  if (n > SIZE_MAX - 2 * ALIGN) return NULL;
  size_t need = (n + ALIGN - 1) / ALIGN * ALIGN;
  if (need == 0) need = ALIGN;
  block *b = p->cur;
  if (b->size - b->used < need) {
    size_t size = need > p->block_size ? need : p->block_size;
    block *nb = block_new(size);
    if (!nb) return NULL;
    if (need > p->block_size) { /* a large piece: keep cur for small ones */
      nb->next = b->next;
      b->next = nb;
      nb->used = need;
      return nb->data;
    }
    nb->next = b->next;
    b->next = nb;
    p->cur = b = nb;
  }
  void *r = (char *)b->data + b->used;
  b->used += need;
  return r;
}

void *dx_pool_calloc(dx_pool *p, size_t n) {
  void *r = dx_pool_alloc(p, n);
  if (r) memset(r, 0, n);
  return r;
}

char *dx_pool_strndup(dx_pool *p, const char *s, size_t n) {
  if (!s) return NULL;
  char *r = dx_pool_alloc(p, n + 1);
  if (!r) return NULL;
  memcpy(r, s, n);
  r[n] = 0;
  return r;
}

char *dx_pool_strdup(dx_pool *p, const char *s) { return s ? dx_pool_strndup(p, s, strlen(s)) : NULL; }

char *dx_pool_printf(dx_pool *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *r = dx_pool_alloc(p, (size_t)n + 1);
  if (!r) return NULL;
  va_start(ap, fmt);
  vsnprintf(r, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return r;
}

int dx_pool_cleanup_add(dx_pool *p, dx_pool_cleanup_fn fn, void *data) {
  cleanup *c = dx_pool_alloc(p, sizeof *c);
  if (!c) return -1;
  c->fn = fn;
  c->data = data;
  c->next = p->cleanups;
  p->cleanups = c;
  return 0;
}

static void unlink_fn(void *path) { unlink((const char *)path); }
static void json_fn(void *j) { json_object_put((json_object *)j); }
static void result_fn(void *r) { mysql_free_result((MYSQL_RES *)r); }

int dx_pool_unlink_on_cleanup(dx_pool *p, const char *path) {
  char *copy = dx_pool_strdup(p, path);
  return copy ? dx_pool_cleanup_add(p, unlink_fn, copy) : -1;
}
int dx_pool_json_on_cleanup(dx_pool *p, void *j) { return j ? dx_pool_cleanup_add(p, json_fn, j) : 0; }
int dx_pool_result_on_cleanup(dx_pool *p, void *r) { return r ? dx_pool_cleanup_add(p, result_fn, r) : 0; }

void dx_pool_unlink_cancel(dx_pool *p, const char *path) {
  for (cleanup *c = p->cleanups; c; c = c->next)
    if (c->fn == unlink_fn && !strcmp((const char *)c->data, path)) c->fn = NULL;
}
