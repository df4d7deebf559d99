/* checkpoint.c: an official Demucs `.th` file into class, kwargs and a
 * float32 state dict (see dx_checkpoint.h). zip.c opens the archive,
 * pickle.c runs data.pkl; this file checks the package layout and gathers
 * every tensor view out of its storage with bounds checks.
 * Threading: no shared state. */
#include "dx_checkpoint.h"
#include "dx_util.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_pickle.h"
#include "dx_zip.h"

struct dx_checkpoint {
  dx_pyarena *arena;
  const dx_pyval *kwargs, *training_args;
  dx_pyval empty_dict;
  const char *cls_module, *cls_name;
  dx_ckpt_tensor *tensors;
  size_t n;
  size_t params;
};

dx_checkpoint_limits dx_checkpoint_default_limits(void) {
  dx_checkpoint_limits l = {
      .max_file_bytes = (size_t)4 << 30,
      .max_pickle_bytes = (size_t)64 << 20,
      .max_stack = (size_t)1 << 20,
      .max_memo = (size_t)1 << 20,
      .max_string = (size_t)16 << 20,
      .max_container = (size_t)1 << 22,
      .max_tensors = (size_t)1 << 16,
      .max_total_floats = (size_t)1 << 31,
  };
  return l;
}

void dx_checkpoint_free(dx_checkpoint *ck) {
  if (!ck) return;
  for (size_t i = 0; i < ck->n; i++) free(ck->tensors[i].data);
  free(ck->tensors);
  dx_pyarena_free(ck->arena);
  free(ck);
}

/* ---- storages ---- */


static float load_elem(const uint8_t *base, int64_t i, dx_storage_dtype dt) {
  switch (dt) {
  case DX_DT_F16: { uint16_t h; memcpy(&h, base + 2 * i, 2); return dx_half_to_float(h); }
  case DX_DT_BF16: { uint16_t h; memcpy(&h, base + 2 * i, 2); uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }
  case DX_DT_F32: { float f; memcpy(&f, base + 4 * i, 4); return f; }
  case DX_DT_F64: { double d; memcpy(&d, base + 8 * i, 8); return (float)d; }
  }
  return 0.0f;
}

typedef struct {
  dx_zip zip;
  const dx_zip_entry **sorted; /* entries by name, for binary search */
  char prefix[256];
  const dx_checkpoint_limits *lim;
  uint64_t inflated;           /* bytes inflated so far (bounded) */
} pkg;

static int cmp_entry(const void *a, const void *b) {
  return strcmp((*(const dx_zip_entry *const *)a)->name, (*(const dx_zip_entry *const *)b)->name);
}

static const dx_zip_entry *pkg_find(const pkg *p, const char *name) {
  size_t lo = 0, hi = p->zip.n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(p->sorted[mid]->name, name);
    if (!c) return p->sorted[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* Gather one tensor view into a new float32 array. */
static dx_status gather(pkg *p, const char *tname, const dx_py_tensor *t, dx_ckpt_tensor *out, size_t *total,
                        dx_errbuf *err) {
  const dx_py_storage *s = t->storage;
  char path[512];
  snprintf(path, sizeof path, "%s/data/%s", p->prefix, s->key);
  const dx_zip_entry *e = pkg_find(p, path);
  if (!e) return dx_fail(err, DX_ERR_MODEL, "tensor %s: storage %s is missing from the archive", tname, s->key);
  if ((uint64_t)s->numel > e->size / (uint64_t)s->elsize)
    return dx_fail(err, DX_ERR_MODEL, "tensor %s: storage %s holds %llu bytes, less than %lld elements", tname, s->key,
                   (unsigned long long)e->size, (long long)s->numel);
  /* view bounds: numel and the last element reached */
  uint64_t numel = 1, last = (uint64_t)t->offset;
  for (int d = 0; d < t->ndim; d++) {
    uint64_t sz = (uint64_t)t->size[d];
    if (sz && numel > UINT64_MAX / sz) return dx_fail(err, DX_ERR_MODEL, "tensor %s: size overflow", tname);
    numel *= sz;
  }
  if (numel > p->lim->max_total_floats || *total + numel > p->lim->max_total_floats)
    return dx_fail(err, DX_ERR_TOO_LARGE, "tensor %s: more than %zu floats in the state dict", tname,
                   p->lim->max_total_floats);
  if (numel) {
    for (int d = 0; d < t->ndim; d++) {
      uint64_t span = (uint64_t)(t->size[d] - 1);
      if (t->stride[d] && span > (UINT64_MAX / 2) / (uint64_t)t->stride[d])
        return dx_fail(err, DX_ERR_MODEL, "tensor %s: stride overflow", tname);
      last += span * (uint64_t)t->stride[d];
      if (last > (uint64_t)INT64_MAX) return dx_fail(err, DX_ERR_MODEL, "tensor %s: stride overflow", tname);
    }
    if (last >= (uint64_t)s->numel)
      return dx_fail(err, DX_ERR_MODEL, "tensor %s: view (offset %lld) reaches element %llu of a %lld-element storage",
                     tname, (long long)t->offset, (unsigned long long)last, (long long)s->numel);
  }
  const uint8_t *bytes;
  size_t nbytes;
  int owned;
  if (e->method != 0) {
    p->inflated += e->size;
    if (p->inflated > (uint64_t)p->lim->max_total_floats * 8)
      return dx_fail(err, DX_ERR_TOO_LARGE, "archive inflates to more than the limit");
  }
  dx_status st = dx_zip_read(&p->zip, e, (size_t)-1, &bytes, &nbytes, &owned, err);
  if (st) return st;
  float *dst = malloc((numel ? numel : 1) * sizeof(float));
  if (!dst) {
    if (owned) free((void *)bytes);
    return DX_ERR_NOMEM;
  }
  /* n-dimensional walk over the view */
  int64_t idx[DX_CKPT_MAX_DIMS] = {0};
  int64_t src = t->offset;
  for (uint64_t k = 0; k < numel; k++) {
    dst[k] = load_elem(bytes, src, s->dtype);
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->size[d]) { src += t->stride[d]; break; }
      src -= (idx[d] - 1) * t->stride[d];
      idx[d] = 0;
    }
  }
  if (owned) free((void *)bytes);
  out->name = tname;
  out->ndim = t->ndim;
  for (int d = 0; d < t->ndim; d++) out->shape[d] = t->size[d];
  out->numel = (size_t)numel;
  out->data = dst;
  out->src_bits = s->elsize * 8;
  *total += numel;
  return DX_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp(((const dx_ckpt_tensor *)a)->name, ((const dx_ckpt_tensor *)b)->name);
}

static dx_status read_package(pkg *p, dx_checkpoint *ck, const dx_pyval *root, dx_errbuf *err) {
  if (root->type != DX_PY_DICT) return dx_fail(err, DX_ERR_MODEL, "the pickle is not a Demucs package (not a dict)");
  const dx_pyval *klass = dx_pydict_get(root, "klass"), *args = dx_pydict_get(root, "args"),
                 *kwargs = dx_pydict_get(root, "kwargs"), *state = dx_pydict_get(root, "state");
  if (!klass || klass->type != DX_PY_GLOBAL)
    return dx_fail(err, DX_ERR_MODEL, "the pickle is not a Demucs package (no klass)");
  if (strncmp(klass->s, "demucs.", 7))
    return dx_fail(err, DX_ERR_MODEL, "klass %s.%s is not a model class", klass->s, klass->name);
  if (args && !((args->type == DX_PY_TUPLE || args->type == DX_PY_LIST) && args->n == 0))
    return dx_fail(err, DX_ERR_UNSUPPORTED, "the package passes positional constructor arguments");
  if (kwargs && kwargs->type != DX_PY_DICT) return dx_fail(err, DX_ERR_MODEL, "kwargs is not a dict");
  if (!state || state->type != DX_PY_DICT) return dx_fail(err, DX_ERR_MODEL, "the package has no state dict");
  if (dx_pydict_get(state, "__quantized"))
    return dx_fail(err, DX_ERR_UNSUPPORTED, "DiffQ-quantized checkpoints are not supported");
  ck->cls_module = klass->s;
  ck->cls_name = klass->name;
  ck->kwargs = kwargs ? kwargs : &ck->empty_dict;
  const dx_pyval *ta = dx_pydict_get(root, "training_args");
  ck->training_args = ta ? ta : &ck->empty_dict;
  if (state->n > p->lim->max_tensors)
    return dx_fail(err, DX_ERR_TOO_LARGE, "state dict of %zu tensors (limit %zu)", state->n, p->lim->max_tensors);
  ck->tensors = calloc(state->n ? state->n : 1, sizeof *ck->tensors);
  if (!ck->tensors) return DX_ERR_NOMEM;
  size_t total = 0;
  for (size_t i = 0; i < state->n; i++) {
    const dx_pyval *k = state->keys[i], *v = state->items[i];
    if (k->type != DX_PY_STR) return dx_fail(err, DX_ERR_MODEL, "state dict key %zu is not a string", i);
    if (v->type != DX_PY_TENSOR) return dx_fail(err, DX_ERR_MODEL, "state dict entry %.200s is not a tensor", k->s);
    dx_status st = gather(p, k->s, v->ext, &ck->tensors[i], &total, err);
    ck->n = i + 1; /* so that dx_checkpoint_free releases what was gathered */
    if (st) return st;
  }
  ck->params = total;
  /* names must be unique: sort a copy of the order and compare neighbours */
  dx_ckpt_tensor *tmp = malloc((ck->n ? ck->n : 1) * sizeof *tmp);
  if (!tmp) return DX_ERR_NOMEM;
  memcpy(tmp, ck->tensors, ck->n * sizeof *tmp);
  qsort(tmp, ck->n, sizeof *tmp, cmp_tensor_name);
  for (size_t i = 1; i < ck->n; i++) {
    if (!strcmp(tmp[i - 1].name, tmp[i].name)) {
      dx_status st = dx_fail(err, DX_ERR_MODEL, "state dict names %.200s twice", tmp[i].name);
      free(tmp);
      return st;
    }
  }
  free(tmp);
  return DX_OK;
}

dx_status dx_checkpoint_load_buffer(const void *data, size_t size, const dx_checkpoint_limits *limits,
                                    dx_checkpoint **out, dx_errbuf *err) {
  *out = NULL;
  dx_checkpoint_limits lim = limits ? *limits : dx_checkpoint_default_limits();
  if (size > lim.max_file_bytes) return dx_fail(err, DX_ERR_TOO_LARGE, "checkpoint of %zu bytes", size);
  if (size >= 2 && ((const uint8_t *)data)[0] == 0x80)
    return dx_fail(err, DX_ERR_UNSUPPORTED, "legacy (non-zip) torch checkpoint format");
  pkg p;
  memset(&p, 0, sizeof p);
  p.lim = &lim;
  dx_status st = dx_zip_open(&p.zip, data, size, lim.max_tensors + 64, err);
  if (st) return st;
  dx_checkpoint *ck = calloc(1, sizeof *ck);
  const uint8_t *pk = NULL;
  size_t pkn = 0;
  int pk_owned = 0;
  p.sorted = malloc((p.zip.n ? p.zip.n : 1) * sizeof *p.sorted);
  if (!ck || !p.sorted) { st = DX_ERR_NOMEM; goto done; }
  ck->empty_dict.type = DX_PY_DICT;
  for (size_t i = 0; i < p.zip.n; i++) p.sorted[i] = &p.zip.entries[i];
  qsort(p.sorted, p.zip.n, sizeof *p.sorted, cmp_entry);
  /* the pickle: <prefix>/data.pkl with a prefix of one path component */
  const dx_zip_entry *pe = NULL;
  for (size_t i = 0; i < p.zip.n && !pe; i++) {
    const char *nm = p.zip.entries[i].name, *slash = strchr(nm, '/');
    if (slash && slash != nm && !strcmp(slash, "/data.pkl") && (size_t)(slash - nm) < sizeof p.prefix) {
      pe = &p.zip.entries[i];
      memcpy(p.prefix, nm, (size_t)(slash - nm));
      p.prefix[slash - nm] = 0;
    }
  }
  if (!pe) { st = dx_fail(err, DX_ERR_MODEL, "the archive has no <name>/data.pkl: not a torch checkpoint"); goto done; }
  char bo_path[300];
  snprintf(bo_path, sizeof bo_path, "%s/byteorder", p.prefix);
  const dx_zip_entry *bo = pkg_find(&p, bo_path);
  if (bo) {
    const uint8_t *b;
    size_t bn;
    int bown;
    if ((st = dx_zip_read(&p.zip, bo, 64, &b, &bn, &bown, err))) goto done;
    int little = bn == 6 && !memcmp(b, "little", 6);
    if (bown) free((void *)b);
    if (!little) { st = dx_fail(err, DX_ERR_UNSUPPORTED, "big-endian checkpoint"); goto done; }
  }
  if ((st = dx_zip_read(&p.zip, pe, lim.max_pickle_bytes, &pk, &pkn, &pk_owned, err))) goto done;
  dx_pickle_limits pl = {lim.max_stack, lim.max_memo, lim.max_string, lim.max_container};
  dx_pyval *root;
  if ((st = dx_pickle_load(pk, pkn, &pl, &ck->arena, &root, err))) goto done;
  st = read_package(&p, ck, root, err);
done:
  if (pk_owned) free((void *)pk);
  free(p.sorted);
  dx_zip_close(&p.zip);
  if (st) {
    dx_checkpoint_free(ck);
    return st;
  }
  *out = ck;
  return DX_OK;
}

dx_status dx_checkpoint_load(const char *path, dx_checkpoint **out, dx_errbuf *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return dx_fail(err, DX_ERR_IO, "cannot open %s", path);
  struct stat sb;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    close(fd);
    return dx_fail(err, DX_ERR_IO, "%s is not a regular file", path);
  }
  size_t size = (size_t)sb.st_size;
  if (size == 0) {
    close(fd);
    return dx_fail(err, DX_ERR_MODEL, "%s is empty", path);
  }
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return dx_fail(err, DX_ERR_IO, "cannot map %s", path);
  dx_status st = dx_checkpoint_load_buffer(map, size, NULL, out, err);
  munmap(map, size);
  return st;
}

/* ---- accessors ---- */

const char *dx_checkpoint_class_module(const dx_checkpoint *ck) { return ck->cls_module; }
const char *dx_checkpoint_class_name(const dx_checkpoint *ck) { return ck->cls_name; }
const dx_pyval *dx_checkpoint_kwargs(const dx_checkpoint *ck) { return ck->kwargs; }
const dx_pyval *dx_checkpoint_kwarg(const dx_checkpoint *ck, const char *name) { return dx_pydict_get(ck->kwargs, name); }
const dx_pyval *dx_checkpoint_training_args(const dx_checkpoint *ck) { return ck->training_args; }
size_t dx_checkpoint_n_tensors(const dx_checkpoint *ck) { return ck->n; }
const dx_ckpt_tensor *dx_checkpoint_tensor_at(const dx_checkpoint *ck, size_t i) { return i < ck->n ? &ck->tensors[i] : NULL; }
size_t dx_checkpoint_param_count(const dx_checkpoint *ck) { return ck->params; }

const dx_ckpt_tensor *dx_checkpoint_find(const dx_checkpoint *ck, const char *name) {
  for (size_t i = 0; i < ck->n; i++)
    if (!strcmp(ck->tensors[i].name, name)) return &ck->tensors[i];
  return NULL;
}

const dx_ckpt_tensor *dx_checkpoint_expect(const dx_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                                           dx_status *st, dx_errbuf *err) {
  const dx_ckpt_tensor *t = dx_checkpoint_find(ck, name);
  if (!t) {
    *st = dx_fail(err, DX_ERR_MODEL, "the checkpoint has no tensor %s", name);
    return NULL;
  }
  int ok = t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || shape[d] == t->shape[d];
  if (!ok) {
    char want[128] = "", got[128] = "";
    for (int d = 0; d < ndim; d++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)shape[d]);
    for (int d = 0; d < t->ndim; d++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)t->shape[d]);
    *st = dx_fail(err, DX_ERR_MODEL, "tensor %s has shape [%s], expected [%s]", name, got, want);
    return NULL;
  }
  *st = DX_OK;
  return t;
}

static dx_status kw_type_error(dx_errbuf *err, const char *name, const char *want) {
  return dx_fail(err, DX_ERR_MODEL, "kwarg %s is not %s", name, want);
}

dx_status dx_checkpoint_kwarg_int(const dx_checkpoint *ck, const char *name, long long def, long long *out,
                                  dx_errbuf *err) {
  const dx_pyval *v = dx_checkpoint_kwarg(ck, name);
  if (!v) { *out = def; return DX_OK; }
  if (v->type != DX_PY_INT && v->type != DX_PY_BOOL) return kw_type_error(err, name, "an integer");
  *out = v->i;
  return DX_OK;
}

dx_status dx_checkpoint_kwarg_double(const dx_checkpoint *ck, const char *name, double def, double *out,
                                     dx_errbuf *err) {
  const dx_pyval *v = dx_checkpoint_kwarg(ck, name);
  if (!v) { *out = def; return DX_OK; }
  switch (v->type) {
  case DX_PY_INT: case DX_PY_BOOL: *out = (double)v->i; return DX_OK;
  case DX_PY_FLOAT: *out = v->f; return DX_OK;
  case DX_PY_FRACTION: *out = (double)v->num / (double)v->den; return DX_OK;
  default: return kw_type_error(err, name, "a number");
  }
}

dx_status dx_checkpoint_kwarg_bool(const dx_checkpoint *ck, const char *name, int def, int *out, dx_errbuf *err) {
  const dx_pyval *v = dx_checkpoint_kwarg(ck, name);
  if (!v) { *out = def; return DX_OK; }
  if (v->type != DX_PY_INT && v->type != DX_PY_BOOL) return kw_type_error(err, name, "a boolean");
  *out = v->i != 0;
  return DX_OK;
}

dx_status dx_checkpoint_kwarg_str(const dx_checkpoint *ck, const char *name, const char *def, const char **out,
                                  dx_errbuf *err) {
  const dx_pyval *v = dx_checkpoint_kwarg(ck, name);
  if (!v) { *out = def; return DX_OK; }
  if (v->type == DX_PY_NONE) { *out = NULL; return DX_OK; }
  if (v->type != DX_PY_STR) return kw_type_error(err, name, "a string");
  *out = v->s;
  return DX_OK;
}
