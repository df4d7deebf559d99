/* model_params.c: graph weights (dx_params) and the per-call run context
 * (dx_run arena, observer) of dx_model_impl.h.
 *
 * Weights are host float arrays; binding gives a backend device pointers to
 * them: the host arrays themselves on the CPU, one uploaded block per device
 * kind otherwise (made once under the lock, then shared read-only).
 * Threading: dx_params_bind is locked; everything else is build-time or
 * per-call. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_model_impl.h"

typedef struct {
  float *host;
  size_t n;
} param;

typedef struct {
  int bound;
  dx_backend *owner; /* the backend whose alloc made block (non-CPU) */
  void *block;
  const float **dev;
} binding;

struct dx_params {
  param *p;
  size_t n, cap;
  pthread_mutex_t lock;
  binding bind[2]; /* by dx_device_kind */
};

dx_params *dx_params_new(void) {
  dx_params *ps = calloc(1, sizeof *ps);
  if (ps) pthread_mutex_init(&ps->lock, NULL);
  return ps;
}

void dx_params_free(dx_params *ps) {
  if (!ps) return;
  for (int k = 0; k < 2; k++) {
    if (ps->bind[k].block && ps->bind[k].owner) ps->bind[k].owner->free(ps->bind[k].owner, ps->bind[k].block);
    free(ps->bind[k].dev);
  }
  for (size_t i = 0; i < ps->n; i++) free(ps->p[i].host);
  free(ps->p);
  pthread_mutex_destroy(&ps->lock);
  free(ps);
}

dx_param_id dx_params_add(dx_params *ps, const float *data, size_t n, dx_status *st) {
  if (ps->n == ps->cap) {
    size_t nc = ps->cap ? ps->cap * 2 : 64;
    param *np = realloc(ps->p, nc * sizeof *np);
    if (!np) { *st = DX_ERR_NOMEM; return -1; }
    ps->p = np;
    ps->cap = nc;
  }
  float *h = malloc((n ? n : 1) * sizeof *h);
  if (!h) { *st = DX_ERR_NOMEM; return -1; }
  if (n) memcpy(h, data, n * sizeof *h);
  ps->p[ps->n].host = h;
  ps->p[ps->n].n = n;
  *st = DX_OK;
  return (dx_param_id)ps->n++;
}

dx_param_id dx_params_take(dx_params *ps, const dx_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                           dx_status *st, dx_errbuf *err) {
  const dx_ckpt_tensor *t = dx_checkpoint_expect(ck, name, ndim, shape, st, err);
  if (!t) return -1;
  return dx_params_add(ps, t->data, t->numel, st);
}

dx_param_id dx_params_take_opt(dx_params *ps, const dx_checkpoint *ck, const char *name, int ndim,
                               const int64_t *shape, dx_status *st, dx_errbuf *err) {
  if (!dx_checkpoint_find(ck, name)) { *st = DX_OK; return -1; }
  return dx_params_take(ps, ck, name, ndim, shape, st, err);
}

size_t dx_params_count_floats(const dx_params *ps) {
  size_t s = 0;
  for (size_t i = 0; i < ps->n; i++) s += ps->p[i].n;
  return s;
}

float *dx_params_host(dx_params *ps, dx_param_id id) {
  return id >= 0 && (size_t)id < ps->n ? ps->p[id].host : NULL;
}

/* Device pointers of every parameter on be's device (see dx_model_impl.h). */
dx_status dx_params_bind(dx_params *ps, dx_backend *be, const float *const **out, dx_errbuf *err) {
  int k = be->kind == DX_DEVICE_CUDA ? 1 : 0;
  pthread_mutex_lock(&ps->lock);
  binding *b = &ps->bind[k];
  dx_status st = DX_OK;
  if (!b->bound) {
    b->dev = calloc(ps->n ? ps->n : 1, sizeof *b->dev);
    if (!b->dev) { st = DX_ERR_NOMEM; goto out; }
    if (be->kind == DX_DEVICE_CPU) {
      for (size_t i = 0; i < ps->n; i++) b->dev[i] = ps->p[i].host;
    } else {
      size_t total = 0;
      for (size_t i = 0; i < ps->n; i++) total += (ps->p[i].n + 63) & ~(size_t)63; /* 256-byte alignment */
      if ((st = be->alloc(be, total * sizeof(float), &b->block))) {
        dx_fail(err, st, "cannot allocate %zu bytes of weights on %s", total * sizeof(float), be->device_desc);
        free(b->dev);
        b->dev = NULL;
        goto out;
      }
      b->owner = be;
      size_t off = 0;
      for (size_t i = 0; i < ps->n && !st; i++) {
        float *d = (float *)b->block + off;
        st = be->upload(be, d, ps->p[i].host, ps->p[i].n * sizeof(float));
        b->dev[i] = d;
        off += (ps->p[i].n + 63) & ~(size_t)63;
      }
      if (!st) st = be->sync(be);
      if (st) {
        dx_fail(err, st, "uploading weights to %s failed", be->device_desc);
        be->free(be, b->block);
        b->block = NULL;
        b->owner = NULL;
        free(b->dev);
        b->dev = NULL;
        goto out;
      }
    }
    b->bound = 1;
  }
  *out = b->dev;
out:
  pthread_mutex_unlock(&ps->lock);
  return st;
}

/* ---- run context ---- */

float *dx_run_alloc(dx_run *r, size_t nfloats) {
  size_t bytes = (nfloats * sizeof(float) + 255) & ~(size_t)255;
  if (r->dry) {
    float *fake = (float *)(uintptr_t)(4096 + r->used);
    r->used += bytes;
    if (r->used > r->peak) r->peak = r->used;
    return fake;
  }
  if (r->used + bytes > r->cap) return NULL;
  float *p = (float *)(r->base + r->used);
  r->used += bytes;
  if (r->used > r->peak) r->peak = r->used;
  return p;
}

dx_status dx_run_observe(dx_run *r, const char *name, const float *dev, const size_t *shape, int ndim) {
  if (r->dry || !r->obs) return DX_OK;
  size_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  float *h = malloc((n ? n : 1) * sizeof *h);
  if (!h) return DX_ERR_NOMEM;
  dx_status st = r->be->download(r->be, h, dev, n * sizeof *h);
  if (!st) st = r->be->sync(r->be);
  if (!st) r->obs(r->obs_user, name, h, n, shape, ndim);
  free(h);
  return st;
}
