/* pickle.c: the non-executing pickle interpreter (see dx_pickle.h).
 *
 * A stack machine over dx_pyval values allocated from one arena. Every read
 * is bounds-checked, the stack, memo, strings and containers are limited,
 * and globals come from a fixed allow-list; REDUCE/NEWOBJ are interpreted
 * for the few allowed callables and refused for everything else.
 * Threading: no shared state. */
#include "dx_pickle.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  max_align_t data[];
} chunk;

struct dx_pyarena {
  chunk *head;
};

static void *arena_alloc(dx_pyarena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->cap - a->head->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->used = 0;
    c->cap = cap;
    if (a->head && n > 65536) { /* big block: keep the current chunk in front */
      c->next = a->head->next;
      a->head->next = c;
    } else {
      c->next = a->head;
      a->head = c;
    }
    c->used = n;
    return (char *)c->data;
  }
  void *p = (char *)a->head->data + a->head->used;
  a->head->used += n;
  return p;
}

void dx_pyarena_free(dx_pyarena *a) {
  if (!a) return;
  for (chunk *c = a->head, *nx; c; c = nx) {
    nx = c->next;
    free(c);
  }
  free(a);
}

/* Values carry a capacity for the growable containers. */
typedef struct {
  dx_pyval v;
  size_t cap;
} pyobj;

/* ---- interpreter state ---- */

typedef struct {
  const uint8_t *p, *end;
  dx_pyarena *a;
  const dx_pickle_limits *lim;
  dx_pyval **stack;
  size_t sp, stack_cap;
  size_t *marks;
  size_t nmarks, marks_cap;
  dx_pyval **memo;
  size_t memo_cap, memo_len; /* memo_len: entries written (MEMOIZE's next index) */
  dx_errbuf *err;
  dx_status st;
} vm;

#define FAIL(code, ...) vm_fail(m, code, __VA_ARGS__)
static dx_status vm_fail(vm *m, dx_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static dx_status vm_fail(vm *m, dx_status code, const char *fmt, ...) {
  if (m->st) return m->st;
  m->st = code;
  if (m->err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err->msg, sizeof m->err->msg, fmt, ap);
    va_end(ap);
  }
  return m->st;
}

static dx_pyval *newval(vm *m, dx_py_type t) {
  pyobj *o = arena_alloc(m->a, sizeof *o);
  if (!o) { FAIL(DX_ERR_NOMEM, "out of memory reading the pickle"); return NULL; }
  memset(o, 0, sizeof *o);
  o->v.type = t;
  return &o->v;
}

static int need(vm *m, size_t n) {
  if ((size_t)(m->end - m->p) < n) { FAIL(DX_ERR_MODEL, "pickle is truncated"); return 0; }
  return 1;
}

static dx_status push(vm *m, dx_pyval *v) {
  if (!v) return m->st ? m->st : DX_ERR_NOMEM;
  if (m->sp + m->nmarks >= m->lim->max_stack) return FAIL(DX_ERR_TOO_LARGE, "pickle stack deeper than %zu", m->lim->max_stack);
  if (m->sp == m->stack_cap) {
    size_t nc = m->stack_cap ? m->stack_cap * 2 : 64;
    dx_pyval **ns = realloc(m->stack, nc * sizeof *ns);
    if (!ns) return FAIL(DX_ERR_NOMEM, "out of memory reading the pickle");
    m->stack = ns;
    m->stack_cap = nc;
  }
  m->stack[m->sp++] = v;
  return DX_OK;
}

static dx_pyval *pop(vm *m) {
  size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
  if (m->sp <= floor) { FAIL(DX_ERR_MODEL, "pickle stack underflow"); return NULL; }
  return m->stack[--m->sp];
}

static dx_pyval *top(vm *m) {
  size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
  if (m->sp <= floor) { FAIL(DX_ERR_MODEL, "pickle stack underflow"); return NULL; }
  return m->stack[m->sp - 1];
}

/* Pop to the last mark; *base = index of the first item, *cnt = item count. */
static dx_status pop_mark(vm *m, size_t *base, size_t *cnt) {
  if (!m->nmarks) return FAIL(DX_ERR_MODEL, "pickle: no MARK on the stack");
  *base = m->marks[--m->nmarks];
  *cnt = m->sp - *base;
  m->sp = *base;
  return DX_OK;
}

static dx_pyval **items_alloc(vm *m, size_t n) {
  if (n > m->lim->max_container) { FAIL(DX_ERR_TOO_LARGE, "pickle container of %zu items", n); return NULL; }
  dx_pyval **it = arena_alloc(m->a, (n ? n : 1) * sizeof *it);
  if (!it) FAIL(DX_ERR_NOMEM, "out of memory reading the pickle");
  return it;
}

static dx_pyval *make_seq(vm *m, dx_py_type t, dx_pyval **src, size_t n) {
  dx_pyval *v = newval(m, t);
  if (!v) return NULL;
  v->items = items_alloc(m, n);
  if (!v->items) return NULL;
  if (n) memcpy(v->items, src, n * sizeof *src);
  v->n = n;
  ((pyobj *)v)->cap = n ? n : 1;
  return v;
}

/* Grow a list or dict to hold `more` additional items. */
static dx_status grow(vm *m, dx_pyval *v, size_t more) {
  pyobj *o = (pyobj *)v;
  if (v->n + more > m->lim->max_container) return FAIL(DX_ERR_TOO_LARGE, "pickle container over %zu items", m->lim->max_container);
  if (v->n + more <= o->cap && v->items) return DX_OK;
  size_t nc = o->cap ? o->cap : 4;
  while (nc < v->n + more) nc *= 2;
  dx_pyval **ni = items_alloc(m, nc);
  if (!ni) return m->st;
  if (v->n) memcpy(ni, v->items, v->n * sizeof *ni);
  if (v->type == DX_PY_DICT) {
    dx_pyval **nk = items_alloc(m, nc);
    if (!nk) return m->st;
    if (v->n) memcpy(nk, v->keys, v->n * sizeof *nk);
    v->keys = nk;
  }
  v->items = ni;
  o->cap = nc;
  return DX_OK;
}

static dx_status list_extend(vm *m, dx_pyval *l, dx_pyval **src, size_t n) {
  if (!l || l->type != DX_PY_LIST) return FAIL(DX_ERR_MODEL, "pickle: APPEND to a non-list");
  dx_status st = grow(m, l, n);
  if (st) return st;
  memcpy(l->items + l->n, src, n * sizeof *src);
  l->n += n;
  return DX_OK;
}

static dx_status dict_set(vm *m, dx_pyval *d, dx_pyval *k, dx_pyval *v) {
  if (!d || d->type != DX_PY_DICT) return FAIL(DX_ERR_MODEL, "pickle: SETITEM on a non-dict");
  dx_status st = grow(m, d, 1);
  if (st) return st;
  d->keys[d->n] = k;
  d->items[d->n] = v;
  d->n++;
  return DX_OK;
}

static dx_pyval *make_str(vm *m, dx_py_type t, const uint8_t *s, uint64_t n) {
  if (n > m->lim->max_string) { FAIL(DX_ERR_TOO_LARGE, "pickle string of %llu bytes", (unsigned long long)n); return NULL; }
  if (!need(m, (size_t)n)) return NULL;
  dx_pyval *v = newval(m, t);
  if (!v) return NULL;
  char *c = arena_alloc(m->a, (size_t)n + 1);
  if (!c) { FAIL(DX_ERR_NOMEM, "out of memory reading the pickle"); return NULL; }
  memcpy(c, s, (size_t)n);
  c[n] = 0;
  v->s = c;
  v->n = (size_t)n;
  return v;
}

/* A text line (protocol 0 argument) without its newline. */
static int read_line(vm *m, const uint8_t **s, size_t *n) {
  const uint8_t *nl = memchr(m->p, '\n', (size_t)(m->end - m->p));
  if (!nl) { FAIL(DX_ERR_MODEL, "pickle is truncated (text argument)"); return 0; }
  if ((size_t)(nl - m->p) > m->lim->max_string) { FAIL(DX_ERR_TOO_LARGE, "pickle text argument too long"); return 0; }
  *s = m->p;
  *n = (size_t)(nl - m->p);
  m->p = nl + 1;
  return 1;
}

static dx_status memo_put(vm *m, uint64_t idx, dx_pyval *v) {
  if (!v) return m->st ? m->st : FAIL(DX_ERR_MODEL, "pickle: memo of an empty stack");
  if (idx >= m->lim->max_memo) return FAIL(DX_ERR_TOO_LARGE, "pickle memo index %llu over the limit", (unsigned long long)idx);
  if (idx >= m->memo_cap) {
    size_t nc = m->memo_cap ? m->memo_cap : 64;
    while (nc <= idx) nc *= 2;
    if (nc > m->lim->max_memo) nc = m->lim->max_memo;
    dx_pyval **nm = realloc(m->memo, nc * sizeof *nm);
    if (!nm) return FAIL(DX_ERR_NOMEM, "out of memory reading the pickle");
    memset(nm + m->memo_cap, 0, (nc - m->memo_cap) * sizeof *nm);
    m->memo = nm;
    m->memo_cap = nc;
  }
  if (!m->memo[idx]) m->memo_len++;
  m->memo[idx] = v;
  return DX_OK;
}

static dx_status memo_get(vm *m, uint64_t idx) {
  if (idx >= m->memo_cap || !m->memo[idx]) return FAIL(DX_ERR_MODEL, "pickle: memo %llu read before written", (unsigned long long)idx);
  return push(m, m->memo[idx]);
}

/* ---- globals ---- */

typedef enum {
  G_CLASS, G_ORDEREDDICT, G_FRACTION, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE
} gkind;

static const struct {
  const char *module, *name;
  gkind kind;
  dx_storage_dtype dtype;
  int elsize;
} allowed[] = {
    {"demucs.htdemucs", "HTDemucs", G_CLASS, 0, 0},
    {"demucs.hdemucs", "HDemucs", G_CLASS, 0, 0},
    {"demucs.demucs", "Demucs", G_CLASS, 0, 0},
    {"collections", "OrderedDict", G_ORDEREDDICT, 0, 0},
    {"fractions", "Fraction", G_FRACTION, 0, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, 0, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, 0, 0},
    {"torch", "HalfStorage", G_STORAGE, DX_DT_F16, 2},
    {"torch", "FloatStorage", G_STORAGE, DX_DT_F32, 4},
    {"torch", "DoubleStorage", G_STORAGE, DX_DT_F64, 8},
    {"torch", "BFloat16Storage", G_STORAGE, DX_DT_BF16, 2},
};
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])

static int global_index(const dx_pyval *g) {
  if (!g || g->type != DX_PY_GLOBAL) return -1;
  for (size_t i = 0; i < N_ALLOWED; i++)
    if (!strcmp(g->s, allowed[i].module) && !strcmp(g->name, allowed[i].name)) return (int)i;
  return -1;
}

static dx_status push_global(vm *m, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl) {
  char mb[128], nb[128];
  snprintf(mb, sizeof mb, "%.*s", (int)(ml < 120 ? ml : 120), (const char *)mod);
  snprintf(nb, sizeof nb, "%.*s", (int)(nl < 120 ? nl : 120), (const char *)name);
  for (size_t i = 0; i < N_ALLOWED; i++) {
    if (strlen(allowed[i].module) == ml && !memcmp(allowed[i].module, mod, ml) && strlen(allowed[i].name) == nl &&
        !memcmp(allowed[i].name, name, nl)) {
      dx_pyval *v = newval(m, DX_PY_GLOBAL);
      if (!v) return m->st;
      v->s = allowed[i].module;
      v->name = allowed[i].name;
      return push(m, v);
    }
  }
  for (char *c = mb; *c; c++) if ((unsigned char)*c < 32 || (unsigned char)*c > 126) *c = '?';
  for (char *c = nb; *c; c++) if ((unsigned char)*c < 32 || (unsigned char)*c > 126) *c = '?';
  return FAIL(DX_ERR_PICKLE_GLOBAL, "the pickle names the global '%s.%s', which a model file may not use", mb, nb);
}

static int as_int(const dx_pyval *v, int64_t *out) {
  if (!v || (v->type != DX_PY_INT && v->type != DX_PY_BOOL)) return 0;
  *out = v->i;
  return 1;
}

static int64_t gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b) { int64_t t = a % b; a = b; b = t; }
  return a;
}

static dx_status reduce_fraction(vm *m, const dx_pyval *args, dx_pyval **out) {
  int64_t num, den = 1;
  if (args->n == 1 && args->items[0]->type == DX_PY_STR) {
    const char *s = args->items[0]->s;
    char *e;
    errno = 0;
    long long a = strtoll(s, &e, 10);
    if (e == s || errno) return FAIL(DX_ERR_MODEL, "pickle: bad Fraction string");
    num = a;
    if (*e == '/') {
      const char *s2 = e + 1;
      long long b = strtoll(s2, &e, 10);
      if (e == s2 || errno) return FAIL(DX_ERR_MODEL, "pickle: bad Fraction string");
      den = b;
    }
    if (*e) return FAIL(DX_ERR_MODEL, "pickle: bad Fraction string");
  } else if (args->n >= 1 && args->n <= 2 && as_int(args->items[0], &num) && (args->n == 1 || as_int(args->items[1], &den))) {
  } else {
    return FAIL(DX_ERR_MODEL, "pickle: Fraction with unexpected arguments");
  }
  if (den == 0 || num == INT64_MIN || den == INT64_MIN) return FAIL(DX_ERR_MODEL, "pickle: Fraction with a zero or extreme denominator");
  if (den < 0) { num = -num; den = -den; }
  int64_t g = gcd64(num, den);
  if (g > 1) { num /= g; den /= g; }
  dx_pyval *v = newval(m, DX_PY_FRACTION);
  if (!v) return m->st;
  v->num = num;
  v->den = den;
  *out = v;
  return DX_OK;
}

static dx_status reduce_tensor(vm *m, const dx_pyval *args, dx_pyval **out) {
  /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
  if (args->n < 4 || args->n > 7) return FAIL(DX_ERR_MODEL, "pickle: _rebuild_tensor_v2 with %zu arguments", args->n);
  const dx_pyval *s = args->items[0], *sz = args->items[2], *strd = args->items[3];
  int64_t off;
  if (s->type != DX_PY_STORAGE || !as_int(args->items[1], &off) || off < 0 ||
      (sz->type != DX_PY_TUPLE && sz->type != DX_PY_LIST) || (strd->type != DX_PY_TUPLE && strd->type != DX_PY_LIST) ||
      sz->n != strd->n)
    return FAIL(DX_ERR_MODEL, "pickle: malformed tensor record");
  if (sz->n > DX_CKPT_MAX_DIMS) return FAIL(DX_ERR_MODEL, "pickle: tensor with %zu dimensions", sz->n);
  dx_py_tensor *t = arena_alloc(m->a, sizeof *t);
  if (!t) return FAIL(DX_ERR_NOMEM, "out of memory reading the pickle");
  memset(t, 0, sizeof *t);
  t->storage = s->ext;
  t->offset = off;
  t->ndim = (int)sz->n;
  for (size_t i = 0; i < sz->n; i++) {
    if (!as_int(sz->items[i], &t->size[i]) || !as_int(strd->items[i], &t->stride[i]) || t->size[i] < 0 ||
        t->stride[i] < 0)
      return FAIL(DX_ERR_MODEL, "pickle: tensor with a bad size or stride");
  }
  dx_pyval *v = newval(m, DX_PY_TENSOR);
  if (!v) return m->st;
  v->ext = t;
  *out = v;
  return DX_OK;
}

/* callable(*args) for the allowed callables. */
static dx_status do_reduce(vm *m, dx_pyval *fn, dx_pyval *args) {
  if (!args || args->type != DX_PY_TUPLE) return FAIL(DX_ERR_MODEL, "pickle: REDUCE arguments are not a tuple");
  int gi = global_index(fn);
  if (gi < 0) return FAIL(DX_ERR_MODEL, "pickle: REDUCE on a value that is not a callable");
  dx_pyval *res = NULL;
  dx_status st;
  switch (allowed[gi].kind) {
  case G_ORDEREDDICT:
    res = newval(m, DX_PY_DICT);
    if (!res) return m->st;
    if (args->n == 1 && (args->items[0]->type == DX_PY_LIST || args->items[0]->type == DX_PY_TUPLE)) {
      const dx_pyval *pairs = args->items[0];
      for (size_t i = 0; i < pairs->n; i++) {
        const dx_pyval *p = pairs->items[i];
        if ((p->type != DX_PY_TUPLE && p->type != DX_PY_LIST) || p->n != 2) return FAIL(DX_ERR_MODEL, "pickle: bad OrderedDict item");
        if ((st = dict_set(m, res, p->items[0], p->items[1]))) return st;
      }
    } else if (args->n != 0) {
      return FAIL(DX_ERR_MODEL, "pickle: OrderedDict with unexpected arguments");
    }
    break;
  case G_FRACTION:
    if ((st = reduce_fraction(m, args, &res))) return st;
    break;
  case G_REBUILD_V2:
    if ((st = reduce_tensor(m, args, &res))) return st;
    break;
  case G_REBUILD_PARAM:
    if (args->n < 1 || args->items[0]->type != DX_PY_TENSOR) return FAIL(DX_ERR_MODEL, "pickle: bad _rebuild_parameter");
    res = args->items[0];
    break;
  default:
    return FAIL(DX_ERR_PICKLE_GLOBAL, "the pickle calls '%s.%s', which a model file may not do", fn->s, fn->name);
  }
  return push(m, res);
}

static dx_status do_persid(vm *m, dx_pyval *pid) {
  /* ('storage', storage_type, key, location, numel) */
  if (!pid || pid->type != DX_PY_TUPLE || pid->n < 5 || pid->items[0]->type != DX_PY_STR ||
      strcmp(pid->items[0]->s, "storage"))
    return FAIL(DX_ERR_MODEL, "pickle: unknown persistent id");
  int gi = global_index(pid->items[1]);
  const dx_pyval *key = pid->items[2];
  int64_t numel;
  if (gi < 0 || allowed[gi].kind != G_STORAGE) return FAIL(DX_ERR_MODEL, "pickle: persistent id without a storage type");
  if ((key->type != DX_PY_STR && key->type != DX_PY_INT) || !as_int(pid->items[4], &numel) || numel < 0)
    return FAIL(DX_ERR_MODEL, "pickle: malformed storage record");
  dx_py_storage *s = arena_alloc(m->a, sizeof *s);
  if (!s) return FAIL(DX_ERR_NOMEM, "out of memory reading the pickle");
  memset(s, 0, sizeof *s);
  if (key->type == DX_PY_STR) {
    if (key->n == 0 || key->n >= sizeof s->key || strchr(key->s, '/') || strstr(key->s, ".."))
      return FAIL(DX_ERR_MODEL, "pickle: bad storage key");
    memcpy(s->key, key->s, key->n + 1);
  } else {
    snprintf(s->key, sizeof s->key, "%lld", (long long)key->i);
  }
  s->dtype = allowed[gi].dtype;
  s->elsize = allowed[gi].elsize;
  s->numel = numel;
  dx_pyval *v = newval(m, DX_PY_STORAGE);
  if (!v) return m->st;
  v->ext = s;
  return push(m, v);
}

static dx_status do_build(vm *m, dx_pyval *obj, dx_pyval *state) {
  if (!obj || !state) return m->st;
  if (obj->type == DX_PY_DICT && state->type == DX_PY_DICT) {
    for (size_t i = 0; i < state->n; i++) {
      dx_status st = dict_set(m, obj, state->keys[i], state->items[i]);
      if (st) return st;
    }
    return push(m, obj);
  }
  if ((obj->type == DX_PY_DICT || obj->type == DX_PY_TENSOR) &&
      (state->type == DX_PY_NONE || state->type == DX_PY_DICT || state->type == DX_PY_TUPLE))
    return push(m, obj); /* attributes of an OrderedDict or tensor: not needed */
  return FAIL(DX_ERR_MODEL, "pickle: BUILD on an unsupported object");
}

static int parse_int_text(const uint8_t *s, size_t n, int64_t *out) {
  char buf[40];
  if (n == 0 || n >= sizeof buf) return 0;
  memcpy(buf, s, n);
  buf[n] = 0;
  if (n > 1 && buf[n - 1] == 'L') buf[n - 1] = 0;
  char *e;
  errno = 0;
  long long v = strtoll(buf, &e, 10);
  if (e == buf || *e || errno) return 0;
  *out = v;
  return 1;
}

static dx_pyval *make_int(vm *m, int64_t i) {
  dx_pyval *v = newval(m, DX_PY_INT);
  if (v) v->i = i;
  return v;
}

/* Little-endian two's complement of n bytes (n <= 8). */
static dx_status push_long(vm *m, uint64_t n) {
  if (n > 8) return FAIL(DX_ERR_MODEL, "pickle: integer of %llu bytes is too large", (unsigned long long)n);
  if (!need(m, (size_t)n)) return m->st;
  uint64_t u = 0;
  for (size_t i = 0; i < n; i++) u |= (uint64_t)m->p[i] << (8 * i);
  if (n && n < 8 && (m->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
  m->p += n;
  int64_t v;
  memcpy(&v, &u, sizeof v);
  return push(m, make_int(m, v));
}

static uint64_t le(const uint8_t *p, int n) {
  uint64_t u = 0;
  for (int i = 0; i < n; i++) u |= (uint64_t)p[i] << (8 * i);
  return u;
}

static dx_status step(vm *m, int *stop) {
  if (!need(m, 1)) return m->st;
  uint8_t op = *m->p++;
  dx_status st;
  size_t base = 0, cnt = 0;
  const uint8_t *s;
  size_t sl;
  switch (op) {
  case 0x80: /* PROTO */
    if (!need(m, 1)) return m->st;
    if (*m->p > 5) return FAIL(DX_ERR_MODEL, "pickle protocol %u is not supported", *m->p);
    m->p++;
    return DX_OK;
  case 0x95: /* FRAME */
    if (!need(m, 8)) return m->st;
    m->p += 8;
    return DX_OK;
  case '.': *stop = 1; return DX_OK; /* STOP */
  case 'N': return push(m, newval(m, DX_PY_NONE));
  case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
    dx_pyval *v = newval(m, DX_PY_BOOL);
    if (v) v->i = op == 0x88;
    return push(m, v);
  }
  case 'J': if (!need(m, 4)) return m->st; { int32_t v = (int32_t)(uint32_t)le(m->p, 4); m->p += 4; return push(m, make_int(m, v)); }
  case 'K': if (!need(m, 1)) return m->st; { int v = *m->p++; return push(m, make_int(m, v)); }
  case 'M': if (!need(m, 2)) return m->st; { int v = (int)le(m->p, 2); m->p += 2; return push(m, make_int(m, v)); }
  case 0x8a: if (!need(m, 1)) return m->st; { uint64_t n = *m->p++; return push_long(m, n); } /* LONG1 */
  case 0x8b: if (!need(m, 4)) return m->st; { uint64_t n = le(m->p, 4); m->p += 4; return push_long(m, n); } /* LONG4 */
  case 'I': case 'L': { /* INT, LONG (text) */
    int64_t v;
    if (!read_line(m, &s, &sl)) return m->st;
    if (op == 'I' && sl == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
      dx_pyval *b = newval(m, DX_PY_BOOL);
      if (b) b->i = s[1] == '1';
      return push(m, b);
    }
    if (!parse_int_text(s, sl, &v)) return FAIL(DX_ERR_MODEL, "pickle: bad integer text");
    return push(m, make_int(m, v));
  }
  case 'G': { /* BINFLOAT, big-endian double */
    if (!need(m, 8)) return m->st;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = (u << 8) | m->p[i];
    m->p += 8;
    dx_pyval *v = newval(m, DX_PY_FLOAT);
    if (v) memcpy(&v->f, &u, 8);
    return push(m, v);
  }
  case 'F': { /* FLOAT (text) */
    char buf[64];
    if (!read_line(m, &s, &sl)) return m->st;
    if (sl == 0 || sl >= sizeof buf) return FAIL(DX_ERR_MODEL, "pickle: bad float text");
    memcpy(buf, s, sl);
    buf[sl] = 0;
    char *e;
    double d = strtod(buf, &e);
    if (*e) return FAIL(DX_ERR_MODEL, "pickle: bad float text");
    dx_pyval *v = newval(m, DX_PY_FLOAT);
    if (v) v->f = d;
    return push(m, v);
  }
  case 'X': case 'B': case 'T': { /* BINUNICODE, BINBYTES, BINSTRING: 4-byte length */
    if (!need(m, 4)) return m->st;
    uint64_t n = le(m->p, 4);
    m->p += 4;
    dx_pyval *v = make_str(m, op == 'X' || op == 'T' ? DX_PY_STR : DX_PY_BYTES, m->p, n);
    if (v) m->p += n;
    return push(m, v);
  }
  case 0x8c: case 'C': case 'U': { /* SHORT_BINUNICODE, SHORT_BINBYTES, SHORT_BINSTRING */
    if (!need(m, 1)) return m->st;
    uint64_t n = *m->p++;
    dx_pyval *v = make_str(m, op == 'C' ? DX_PY_BYTES : DX_PY_STR, m->p, n);
    if (v) m->p += n;
    return push(m, v);
  }
  case 0x8d: case 0x8e: { /* BINUNICODE8, BINBYTES8 */
    if (!need(m, 8)) return m->st;
    uint64_t n = le(m->p, 8);
    m->p += 8;
    dx_pyval *v = make_str(m, op == 0x8d ? DX_PY_STR : DX_PY_BYTES, m->p, n);
    if (v) m->p += n;
    return push(m, v);
  }
  case 'V': { /* UNICODE (raw text line; escapes kept as written) */
    if (!read_line(m, &s, &sl)) return m->st;
    const uint8_t *save = m->p;
    m->p = s;
    dx_pyval *v = make_str(m, DX_PY_STR, s, sl);
    m->p = save;
    return push(m, v);
  }
  case 'S': { /* STRING: quoted text line */
    if (!read_line(m, &s, &sl)) return m->st;
    if (sl < 2 || (s[0] != '\'' && s[0] != '"') || s[sl - 1] != s[0]) return FAIL(DX_ERR_MODEL, "pickle: bad STRING");
    const uint8_t *save = m->p;
    m->p = s + 1;
    dx_pyval *v = make_str(m, DX_PY_STR, s + 1, sl - 2);
    m->p = save;
    return push(m, v);
  }
  case '}': { dx_pyval *v = newval(m, DX_PY_DICT); return push(m, v); }
  case ']': { dx_pyval *v = newval(m, DX_PY_LIST); return push(m, v); }
  case ')': return push(m, make_seq(m, DX_PY_TUPLE, NULL, 0));
  case '(': /* MARK */
    if (m->sp + m->nmarks >= m->lim->max_stack) return FAIL(DX_ERR_TOO_LARGE, "pickle stack deeper than %zu", m->lim->max_stack);
    if (m->nmarks == m->marks_cap) {
      size_t nc = m->marks_cap ? m->marks_cap * 2 : 32;
      size_t *nm = realloc(m->marks, nc * sizeof *nm);
      if (!nm) return FAIL(DX_ERR_NOMEM, "out of memory reading the pickle");
      m->marks = nm;
      m->marks_cap = nc;
    }
    m->marks[m->nmarks++] = m->sp;
    return DX_OK;
  case 't': /* TUPLE */
    if ((st = pop_mark(m, &base, &cnt))) return st;
    return push(m, make_seq(m, DX_PY_TUPLE, m->stack + base, cnt));
  case 'l': /* LIST */
    if ((st = pop_mark(m, &base, &cnt))) return st;
    return push(m, make_seq(m, DX_PY_LIST, m->stack + base, cnt));
  case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
    size_t n = (size_t)(op - 0x84);
    size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
    if (m->sp < floor + n) return FAIL(DX_ERR_MODEL, "pickle stack underflow");
    m->sp -= n;
    return push(m, make_seq(m, DX_PY_TUPLE, m->stack + m->sp, n));
  }
  case 'd': { /* DICT */
    if ((st = pop_mark(m, &base, &cnt))) return st;
    if (cnt % 2) return FAIL(DX_ERR_MODEL, "pickle: DICT with an odd number of items");
    dx_pyval *d = newval(m, DX_PY_DICT);
    if (!d) return m->st;
    for (size_t i = 0; i < cnt; i += 2)
      if ((st = dict_set(m, d, m->stack[base + i], m->stack[base + i + 1]))) return st;
    return push(m, d);
  }
  case 'a': { /* APPEND */
    dx_pyval *v = pop(m);
    if (!v) return m->st;
    return list_extend(m, top(m), &v, 1);
  }
  case 'e': { /* APPENDS */
    if ((st = pop_mark(m, &base, &cnt))) return st;
    return list_extend(m, top(m), m->stack + base, cnt);
  }
  case 's': { /* SETITEM */
    dx_pyval *v = pop(m), *k = v ? pop(m) : NULL;
    if (!k) return m->st;
    return dict_set(m, top(m), k, v);
  }
  case 'u': { /* SETITEMS */
    if ((st = pop_mark(m, &base, &cnt))) return st;
    if (cnt % 2) return FAIL(DX_ERR_MODEL, "pickle: SETITEMS with an odd number of items");
    dx_pyval *d = top(m);
    for (size_t i = 0; i < cnt; i += 2)
      if ((st = dict_set(m, d, m->stack[base + i], m->stack[base + i + 1]))) return st;
    return DX_OK;
  }
  case '0': return pop(m) ? DX_OK : m->st; /* POP */
  case '1': return pop_mark(m, &base, &cnt); /* POP_MARK */
  case '2': { dx_pyval *v = top(m); return v ? push(m, v) : m->st; } /* DUP */
  case 'q': if (!need(m, 1)) return m->st; { uint64_t i = *m->p++; return memo_put(m, i, top(m)); }
  case 'r': if (!need(m, 4)) return m->st; { uint64_t i = le(m->p, 4); m->p += 4; return memo_put(m, i, top(m)); }
  case 0x94: return memo_put(m, m->memo_len, top(m)); /* MEMOIZE */
  case 'p': { int64_t i; if (!read_line(m, &s, &sl)) return m->st; if (!parse_int_text(s, sl, &i) || i < 0) return FAIL(DX_ERR_MODEL, "pickle: bad PUT"); return memo_put(m, (uint64_t)i, top(m)); }
  case 'h': if (!need(m, 1)) return m->st; { uint64_t i = *m->p++; return memo_get(m, i); }
  case 'j': if (!need(m, 4)) return m->st; { uint64_t i = le(m->p, 4); m->p += 4; return memo_get(m, i); }
  case 'g': { int64_t i; if (!read_line(m, &s, &sl)) return m->st; if (!parse_int_text(s, sl, &i) || i < 0) return FAIL(DX_ERR_MODEL, "pickle: bad GET"); return memo_get(m, (uint64_t)i); }
  case 'c': { /* GLOBAL module\nname\n */
    const uint8_t *ms, *ns;
    size_t ml, nl;
    if (!read_line(m, &ms, &ml) || !read_line(m, &ns, &nl)) return m->st;
    return push_global(m, ms, ml, ns, nl);
  }
  case 0x93: { /* STACK_GLOBAL */
    dx_pyval *n = pop(m), *mod = n ? pop(m) : NULL;
    if (!mod) return m->st;
    if (mod->type != DX_PY_STR || n->type != DX_PY_STR) return FAIL(DX_ERR_MODEL, "pickle: STACK_GLOBAL of non-strings");
    return push_global(m, (const uint8_t *)mod->s, mod->n, (const uint8_t *)n->s, n->n);
  }
  case 'R': { /* REDUCE */
    dx_pyval *args = pop(m), *fn = args ? pop(m) : NULL;
    if (!fn) return m->st;
    return do_reduce(m, fn, args);
  }
  case 0x81: { /* NEWOBJ cls args: only OrderedDict() */
    dx_pyval *args = pop(m), *cls = args ? pop(m) : NULL;
    if (!cls) return m->st;
    int gi = global_index(cls);
    if (gi >= 0 && allowed[gi].kind == G_ORDEREDDICT) return do_reduce(m, cls, args);
    if (gi >= 0) return FAIL(DX_ERR_PICKLE_GLOBAL, "the pickle instantiates '%s.%s', which a model file may not do", cls->s, cls->name);
    return FAIL(DX_ERR_MODEL, "pickle: NEWOBJ on a value that is not a class");
  }
  case 'b': { /* BUILD */
    dx_pyval *state = pop(m), *obj = state ? pop(m) : NULL;
    if (!obj) return m->st;
    return do_build(m, obj, state);
  }
  case 'Q': { /* BINPERSID */
    dx_pyval *pid = pop(m);
    if (!pid) return m->st;
    return do_persid(m, pid);
  }
  default:
    return FAIL(DX_ERR_MODEL, "pickle: opcode 0x%02x is not supported in a model file", op);
  }
}

dx_status dx_pickle_load(const uint8_t *data, size_t n, const dx_pickle_limits *lim, dx_pyarena **arena,
                         dx_pyval **out, dx_errbuf *err) {
  *out = NULL;
  *arena = calloc(1, sizeof **arena);
  if (!*arena) return DX_ERR_NOMEM;
  vm m = {.p = data, .end = data + n, .a = *arena, .lim = lim, .err = err};
  int stop = 0;
  dx_status st = DX_OK;
  while (!stop && st == DX_OK) st = step(&m, &stop);
  if (st == DX_OK && m.st) st = m.st;
  if (st == DX_OK) {
    if (m.nmarks || m.sp != 1) {
      vm *mp = &m;
      st = vm_fail(mp, DX_ERR_MODEL, "pickle does not end with exactly one value");
    }
    else *out = m.stack[0];
  }
  free(m.stack);
  free(m.marks);
  free(m.memo);
  return st;
}

const dx_pyval *dx_pydict_get(const dx_pyval *d, const char *key) {
  if (!d || d->type != DX_PY_DICT) return NULL;
  for (size_t i = d->n; i-- > 0;) /* the last write wins, as in Python */
    if (d->keys[i]->type == DX_PY_STR && !strcmp(d->keys[i]->s, key)) return d->items[i];
  return NULL;
}
