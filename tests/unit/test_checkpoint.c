/* test_checkpoint.c: the .th loader (zip + pickle + state dict) on every
 * checkpoint of the reference kit (parameter counts against the manifests,
 * class, kwargs, tensor values against an independent fp16 read), and on
 * hostile archives built here as bytes: a pickle naming os.system, truncated
 * archives, storages too small for their views, CRC damage, limits. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dx_checkpoint.h"
#include "dx_model.h"
#include "dx_model_impl.h"
#include "dx_pickle.h"
#include "dx_test.h"

/* ---- a tiny zip writer (stored entries) for building test archives ---- */

typedef struct {
  uint8_t *buf;
  size_t n, cap;
  struct { char name[64]; uint32_t crc, size, off; } ent[16];
  int nent;
} zbuf;

static void zput(zbuf *z, const void *p, size_t n) {
  if (z->n + n > z->cap) {
    z->cap = (z->n + n) * 2 + 256;
    z->buf = realloc(z->buf, z->cap);
  }
  memcpy(z->buf + z->n, p, n);
  z->n += n;
}
static void zu16(zbuf *z, uint16_t v) { uint8_t b[2] = {v & 0xff, v >> 8}; zput(z, b, 2); }
static void zu32(zbuf *z, uint32_t v) { uint8_t b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24}; zput(z, b, 4); }

static void zadd(zbuf *z, const char *name, const void *data, size_t n) {
  int i = z->nent++;
  snprintf(z->ent[i].name, sizeof z->ent[i].name, "%s", name);
  z->ent[i].crc = (uint32_t)crc32(0L, data, (uInt)n);
  z->ent[i].size = (uint32_t)n;
  z->ent[i].off = (uint32_t)z->n;
  zu32(z, 0x04034b50); zu16(z, 20); zu16(z, 0); zu16(z, 0); zu16(z, 0); zu16(z, 0);
  zu32(z, z->ent[i].crc); zu32(z, (uint32_t)n); zu32(z, (uint32_t)n);
  zu16(z, (uint16_t)strlen(name)); zu16(z, 0);
  zput(z, name, strlen(name));
  zput(z, data, n);
}

static void zfinish(zbuf *z) {
  uint32_t cd = (uint32_t)z->n;
  for (int i = 0; i < z->nent; i++) {
    zu32(z, 0x02014b50); zu16(z, 20); zu16(z, 20); zu16(z, 0); zu16(z, 0); zu16(z, 0); zu16(z, 0);
    zu32(z, z->ent[i].crc); zu32(z, z->ent[i].size); zu32(z, z->ent[i].size);
    zu16(z, (uint16_t)strlen(z->ent[i].name)); zu16(z, 0); zu16(z, 0); zu16(z, 0); zu16(z, 0); zu32(z, 0);
    zu32(z, z->ent[i].off);
    zput(z, z->ent[i].name, strlen(z->ent[i].name));
  }
  uint32_t cds = (uint32_t)z->n - cd;
  zu32(z, 0x06054b50); zu16(z, 0); zu16(z, 0); zu16(z, (uint16_t)z->nent); zu16(z, (uint16_t)z->nent);
  zu32(z, cds); zu32(z, cd); zu16(z, 0);
}

/* ---- hand-assembled pickles ---- */

typedef struct {
  uint8_t b[4096];
  size_t n;
} pk;
static void pb(pk *p, const void *d, size_t n) { memcpy(p->b + p->n, d, n); p->n += n; }
static void pop_(pk *p, uint8_t op) { pb(p, &op, 1); }
static void pstr(pk *p, const char *s) { /* SHORT_BINUNICODE */
  uint8_t l = (uint8_t)strlen(s);
  pop_(p, 0x8c); pb(p, &l, 1); pb(p, s, l);
}
static void pint(pk *p, int v) { uint8_t b[5] = {'J', v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff}; pb(p, b, 5); }
static void pglobal(pk *p, const char *mod, const char *name) {
  pop_(p, 'c'); pb(p, mod, strlen(mod)); pop_(p, '\n'); pb(p, name, strlen(name)); pop_(p, '\n');
}

/* A complete package: {klass, args, kwargs{sources, segment}, state{w: tensor}}
 * with tensor w = _rebuild_tensor_v2(storage('0', HalfStorage, numel), offset, (n,), (stride,)). */
static void make_package(pk *p, int storage_numel, int offset, int size, int stride) {
  p->n = 0;
  pop_(p, 0x80); pop_(p, 2);
  pop_(p, '}');
  pop_(p, '(');
  pstr(p, "klass"); pglobal(p, "demucs.htdemucs", "HTDemucs");
  pstr(p, "args"); pop_(p, ')');
  pstr(p, "kwargs"); pop_(p, '}'); pop_(p, '(');
  pstr(p, "sources"); pop_(p, ']'); pop_(p, '('); pstr(p, "drums"); pstr(p, "bass"); pop_(p, 'e');
  pstr(p, "segment"); pglobal(p, "fractions", "Fraction"); pint(p, 39); pint(p, 5); pop_(p, 0x86); pop_(p, 'R');
  pstr(p, "flag"); pop_(p, 0x88);
  pstr(p, "ratio"); { uint8_t g[9] = {'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}; pb(p, g, 9); } /* 1.5 */
  pop_(p, 'u');
  pstr(p, "state"); pglobal(p, "collections", "OrderedDict"); pop_(p, ')'); pop_(p, 'R');
  pop_(p, '(');
  pstr(p, "w");
  pglobal(p, "torch._utils", "_rebuild_tensor_v2");
  pop_(p, '(');
  pop_(p, '(');
  pstr(p, "storage"); pglobal(p, "torch", "HalfStorage"); pstr(p, "0"); pstr(p, "cpu"); pint(p, storage_numel);
  pop_(p, 't'); pop_(p, 'Q');
  pint(p, offset);
  pint(p, size); pop_(p, 0x85);
  pint(p, stride); pop_(p, 0x85);
  pop_(p, 0x89);
  pglobal(p, "collections", "OrderedDict"); pop_(p, ')'); pop_(p, 'R');
  pop_(p, 't'); pop_(p, 'R');
  pop_(p, 'u');
  pop_(p, 'u');
  pop_(p, '.');
}

static void make_archive(zbuf *z, const pk *p, int storage_bytes) {
  memset(z, 0, sizeof *z);
  uint16_t halves[64];
  for (int i = 0; i < 64; i++) halves[i] = (uint16_t)(0x3c00 + i); /* 1.0, 1.0009765625, ... */
  zadd(z, "pkg/data.pkl", p->b, p->n);
  zadd(z, "pkg/data/0", halves, (size_t)storage_bytes);
  zfinish(z);
}

DX_TEST(synthetic_package_loads) {
  pk p;
  zbuf z;
  make_package(&p, 16, 2, 4, 3); /* elements 2, 5, 8, 11 */
  make_archive(&z, &p, 32);
  dx_checkpoint *ck = NULL;
  dx_errbuf err = {{0}};
  dx_status st = dx_checkpoint_load_buffer(z.buf, z.n, NULL, &ck, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
  if (ck) {
    CHECK(!strcmp(dx_checkpoint_class_name(ck), "HTDemucs"));
    CHECK(dx_checkpoint_n_tensors(ck) == 1);
    const dx_ckpt_tensor *t = dx_checkpoint_find(ck, "w");
    CHECK(t && t->ndim == 1 && t->shape[0] == 4 && t->src_bits == 16);
    if (t) {
      for (int i = 0; i < 4; i++) CHECK_NEAR(t->data[i], 1.0 + (2 + 3 * i) / 1024.0, 0);
    }
    double seg;
    long long n;
    int flag;
    CHECK(dx_checkpoint_kwarg_double(ck, "segment", 0, &seg, &err) == DX_OK);
    CHECK_NEAR(seg, 7.8, 1e-12);
    CHECK(dx_checkpoint_kwarg_double(ck, "ratio", 0, &seg, &err) == DX_OK);
    CHECK_NEAR(seg, 1.5, 0);
    CHECK(dx_checkpoint_kwarg_bool(ck, "flag", 0, &flag, &err) == DX_OK && flag == 1);
    CHECK(dx_checkpoint_kwarg_int(ck, "absent", 42, &n, &err) == DX_OK && n == 42);
    CHECK(dx_checkpoint_kwarg_int(ck, "ratio", 0, &n, &err) == DX_ERR_MODEL);
    const dx_pyval *src = dx_checkpoint_kwarg(ck, "sources");
    CHECK(src && src->type == DX_PY_LIST && src->n == 2 && !strcmp(src->items[1]->s, "bass"));
  }
  dx_checkpoint_free(ck);
  free(z.buf);
}

DX_TEST(refuses_os_system) {
  pk p = {.n = 0};
  pop_(&p, 0x80); pop_(&p, 2);
  pglobal(&p, "os", "system");
  pstr(&p, "echo owned");
  pop_(&p, 0x85); pop_(&p, 'R'); pop_(&p, '.');
  zbuf z;
  make_archive(&z, &p, 2);
  dx_checkpoint *ck = NULL;
  dx_errbuf err = {{0}};
  dx_status st = dx_checkpoint_load_buffer(z.buf, z.n, NULL, &ck, &err);
  CHECK(st == DX_ERR_PICKLE_GLOBAL);
  CHECK_MSG(strstr(err.msg, "os.system") != NULL, "message: %s", err.msg);
  CHECK(ck == NULL);
  /* the same through the model loader */
  dx_model *m = NULL;
  st = dx_model_load_buffer(z.buf, z.n, &m, &err);
  CHECK(st == DX_ERR_PICKLE_GLOBAL && m == NULL);
  /* builtins.eval through STACK_GLOBAL too */
  p.n = 0;
  pop_(&p, 0x80); pop_(&p, 4);
  pstr(&p, "builtins"); pstr(&p, "eval"); pop_(&p, 0x93); pop_(&p, '.');
  free(z.buf);
  make_archive(&z, &p, 2);
  st = dx_checkpoint_load_buffer(z.buf, z.n, NULL, &ck, &err);
  CHECK(st == DX_ERR_PICKLE_GLOBAL && strstr(err.msg, "builtins.eval"));
  free(z.buf);
}

DX_TEST(refuses_bad_storage_views) {
  struct { int numel, offset, size, stride, bytes; dx_status want; } cases[] = {
      {16, 2, 4, 3, 32, DX_OK},
      {16, 6, 4, 3, 32, DX_OK},          /* last element 15 of 16 */
      {16, 7, 4, 3, 32, DX_ERR_MODEL},   /* reaches element 16 */
      {16, 0, 4, 1, 16, DX_ERR_MODEL},   /* storage file shorter than its numel */
      {16, -1, 4, 1, 32, DX_ERR_MODEL},  /* negative offset */
      {16, 0, 4, -1, 32, DX_ERR_MODEL},  /* negative stride */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pk p;
    zbuf z;
    make_package(&p, cases[i].numel, cases[i].offset, cases[i].size, cases[i].stride);
    make_archive(&z, &p, cases[i].bytes);
    dx_checkpoint *ck = NULL;
    dx_errbuf err = {{0}};
    dx_status st = dx_checkpoint_load_buffer(z.buf, z.n, NULL, &ck, &err);
    CHECK_MSG(st == cases[i].want, "case %zu: %s (%s)", i, dx_strerror(st), err.msg);
    dx_checkpoint_free(ck);
    free(z.buf);
  }
}

DX_TEST(refuses_damaged_archives) {
  pk p;
  zbuf z;
  make_package(&p, 16, 0, 4, 1);
  make_archive(&z, &p, 32);
  dx_errbuf err;
  dx_checkpoint *ck = NULL;
  /* every truncation fails cleanly */
  for (size_t cut = 0; cut < z.n; cut += (cut < 64 ? 1 : 7)) {
    dx_status st = dx_checkpoint_load_buffer(z.buf, cut, NULL, &ck, &err);
    CHECK_MSG(st != DX_OK && ck == NULL, "truncated at %zu loaded", cut);
    dx_checkpoint_free(ck);
    ck = NULL;
  }
  /* a flipped byte inside the pickle: CRC mismatch */
  uint8_t *copy = malloc(z.n);
  memcpy(copy, z.buf, z.n);
  copy[30 + strlen("pkg/data.pkl") + 10] ^= 0x40;
  dx_status st = dx_checkpoint_load_buffer(copy, z.n, NULL, &ck, &err);
  CHECK(st == DX_ERR_MODEL && strstr(err.msg, "CRC"));
  free(copy);
  /* a truncated pickle (STOP missing) inside a valid archive */
  pk q = p;
  q.n -= 5;
  zbuf z2;
  make_archive(&z2, &q, 32);
  st = dx_checkpoint_load_buffer(z2.buf, z2.n, NULL, &ck, &err);
  CHECK(st == DX_ERR_MODEL && ck == NULL);
  free(z2.buf);
  /* limits: a tiny stack limit */
  dx_checkpoint_limits lim = dx_checkpoint_default_limits();
  lim.max_stack = 4;
  st = dx_checkpoint_load_buffer(z.buf, z.n, &lim, &ck, &err);
  CHECK(st == DX_ERR_TOO_LARGE && ck == NULL);
  /* not a zip */
  st = dx_checkpoint_load_buffer("hello world, this is not a zip archive", 38, NULL, &ck, &err);
  CHECK(st == DX_ERR_MODEL);
  free(z.buf);
}

/* ---- the kit's checkpoints ---- */

static float half(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? ldexp(m, -24) : ldexp(m | 0x400, (int)e - 25);
  return (float)(sign ? -v : v);
}

static void check_kit(const char *stem, const char *klass) {
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s.th", stem);
  dx_checkpoint *ck = NULL;
  dx_errbuf err = {{0}};
  dx_status st = dx_checkpoint_load(dx_test_ref_path(rel), &ck, &err);
  CHECK_MSG(st == DX_OK, "%s: %s (%s)", stem, dx_strerror(st), err.msg);
  if (!ck) return;
  CHECK(!strcmp(dx_checkpoint_class_name(ck), klass));
  snprintf(rel, sizeof rel, "demucs/%s/manifest.json", stem);
  json_object *man = json_object_from_file(dx_test_ref_path(rel)), *params = NULL;
  if (man && json_object_object_get_ex(man, "params", &params)) {
    long long want = json_object_get_int64(params);
    CHECK_MSG((long long)dx_checkpoint_param_count(ck) == want, "%s: %zu parameters, manifest %lld", stem,
              dx_checkpoint_param_count(ck), want);
    fprintf(stderr, "  %s: %s, %zu tensors, %zu parameters (manifest %lld)\n", stem, klass,
            dx_checkpoint_n_tensors(ck), dx_checkpoint_param_count(ck), want);
  } else if (!strstr(stem, "bag_part")) {
    CHECK_MSG(0, "no manifest params for %s", stem);
  }
  json_object_put(man);
  const dx_pyval *src = dx_checkpoint_kwarg(ck, "sources");
  CHECK(src && src->type == DX_PY_LIST && src->n >= 4);
  dx_checkpoint_free(ck);
}

DX_TEST(kit_checkpoints_load) {
  check_kit("htdemucs_tiny", "HTDemucs");
  check_kit("htdemucs_6s_tiny", "HTDemucs");
  check_kit("hdemucs_tiny", "HDemucs");
  check_kit("demucs_tiny", "Demucs");
  check_kit("bag_part_a", "HTDemucs");
  check_kit("bag_part_b", "HTDemucs");
}

/* Values against a direct read of the storage file for one known tensor:
 * encoder.0.conv.weight of htdemucs_tiny, shape [8,4,8,1]. */
DX_TEST(kit_tensor_values) {
  dx_checkpoint *ck = NULL;
  dx_errbuf err = {{0}};
  if (dx_checkpoint_load(dx_test_ref_path("demucs/htdemucs_tiny.th"), &ck, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  const int64_t shp[4] = {8, 4, 8, 1};
  dx_status st;
  const dx_ckpt_tensor *t = dx_checkpoint_expect(ck, "encoder.0.conv.weight", 4, shp, &st, &err);
  CHECK(t != NULL);
  const int64_t bad[4] = {8, 4, 3, 1};
  CHECK(dx_checkpoint_expect(ck, "encoder.0.conv.weight", 4, bad, &st, &err) == NULL && st == DX_ERR_MODEL);
  CHECK(dx_checkpoint_expect(ck, "no.such.tensor", 1, bad, &st, &err) == NULL && st == DX_ERR_MODEL);
  /* find the raw bytes: the zip is stored, so search the file for the first 8 halves */
  FILE *f = fopen(dx_test_ref_path("demucs/htdemucs_tiny.th"), "rb");
  if (t && f) {
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *all = malloc((size_t)n);
    CHECK(fread(all, 1, (size_t)n, f) == (size_t)n);
    /* the first float of the tensor as fp16 appears in the file; check all 256 in order somewhere */
    int found = 0;
    for (long i = 0; i + 512 <= n && !found; i += 2) {
      int ok = 1;
      for (int k = 0; k < 256 && ok; k++) {
        uint16_t h = (uint16_t)(all[i + 2 * k] | (all[i + 2 * k + 1] << 8));
        ok = half(h) == t->data[k];
      }
      found = ok;
    }
    CHECK_MSG(found, "encoder.0.conv.weight values not found as fp16 in the archive");
    free(all);
  }
  if (f) fclose(f);
  dx_checkpoint_free(ck);
}

DX_TEST(model_info_from_kit) {
  dx_model *m = NULL;
  dx_errbuf err = {{0}};
  dx_status st = dx_model_load(dx_test_ref_path("demucs/htdemucs_tiny.th"), &m, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  if (m) {
    const dx_model_info *in = dx_model_get_info(m);
    CHECK(in->klass == DX_MODEL_HTDEMUCS && in->n_sources == 4 && !strcmp(in->sources[3], "vocals"));
    CHECK(in->params == 365600);
    CHECK_NEAR(in->segment, 7.8, 1e-12);
    CHECK(dx_model_valid_length(m, 44100) == 343980);
    CHECK(dx_model_valid_length(m, 343980) == 343980);
  }
  dx_model_free(m);
}

/* The fuzz seeds: written by Python's pickle module (protocol 2, memo,
 * nested training_args), one stored and one deflated archive. */
DX_TEST(python_written_seeds_load) {
  const char *seeds[] = {"tests/fuzz/corpus/fuzz_checkpoint/seed_small.th",
                         "tests/fuzz/corpus/fuzz_checkpoint/seed_deflate.th"};
  for (int i = 0; i < 2; i++) {
    dx_checkpoint *ck = NULL;
    dx_errbuf err = {{0}};
    dx_status st = dx_checkpoint_load(dx_test_src_path(seeds[i]), &ck, &err);
    CHECK_MSG(st == DX_OK, "%s: %s", seeds[i], err.msg);
    if (!ck) continue;
    const dx_ckpt_tensor *w = dx_checkpoint_find(ck, "encoder.0.conv.weight"), *b = dx_checkpoint_find(ck, "encoder.0.conv.bias");
    CHECK(w && w->numel == 12 && w->shape[0] == 3 && w->shape[1] == 4 && w->data[11] == 11 / 8.0f);
    CHECK(b && b->numel == 3 && b->data[0] == 2 && b->data[2] == 4);
    const dx_pyval *ta = dx_checkpoint_training_args(ck), *nested = dx_pydict_get(ta, "nested");
    CHECK(nested && nested->type == DX_PY_DICT && dx_pydict_get(nested, "lr") && dx_pydict_get(nested, "lr")->f == 3e-4);
    const dx_pyval *none = dx_checkpoint_kwarg(ck, "x");
    CHECK(none && none->type == DX_PY_NONE);
    /* a model cannot be built from two tensors: a clean DX_ERR_MODEL naming what is missing */
    dx_model *m = NULL;
    st = dx_model_from_checkpoint(ck, &m, &err);
    CHECK_MSG(st == DX_ERR_MODEL && m == NULL, "%s (%s)", dx_strerror(st), err.msg);
    dx_checkpoint_free(ck);
  }
}

DX_TEST_MAIN(DX_T(synthetic_package_loads), DX_T(python_written_seeds_load), DX_T(refuses_os_system), DX_T(refuses_bad_storage_views),
             DX_T(refuses_damaged_archives), DX_T(kit_checkpoints_load), DX_T(kit_tensor_values),
             DX_T(model_info_from_kit))
