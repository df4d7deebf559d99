/* test_zip_writer.c: archives sent by dx_zip_stream read back with the
 * checkpoint zip reader (dx_zip), with and without ZIP64 records: same
 * names, same bytes, CRCs checked, exactly dx_zip_size bytes, the same
 * bytes twice; bad names refused before a byte is sent; a missing file, a
 * file whose size or CRC is not the one given, and a reader that goes away
 * end the archive with an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_test.h"
#include "dx_util.h"
#include "dx_zip.h"
#include "dx_zip_writer.h"

static char dir[256];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/dx_zipw_XXXXXX");
  if (!mkdtemp(dir)) abort();
}

static const char *in_dir(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, n, f) != n) abort();
  fclose(f);
}

/* A sink gathering what is sent in memory; fail_after > 0 stops it there. */
typedef struct {
  unsigned char *p;
  size_t n, cap, fail_after;
} sink;

static int to_sink(void *ctx, const void *buf, size_t n) {
  sink *k = ctx;
  if (k->fail_after && k->n + n > k->fail_after) return 1;
  if (k->n + n > k->cap) {
    k->cap = 2 * (k->n + n);
    k->p = realloc(k->p, k->cap);
  }
  memcpy(k->p + k->n, buf, n);
  k->n += n;
  return 0;
}

static void member(dx_zip_member *m, const char *name, const char *path) {
  dx_errbuf err = {{0}};
  m->name = name;
  m->path = path;
  CHECK(dx_zip_file_crc(path, &m->crc, &m->size, &err) == DX_OK);
}

static void check_roundtrip(int force) {
  make_dir();
  size_t na = 200000, nb = 3;
  unsigned char *a = malloc(na), b[3] = {1, 2, 3};
  for (size_t i = 0; i < na; i++) a[i] = (unsigned char)(i * 31 + (i >> 7));
  write_bytes(in_dir("a.wav"), a, na);
  write_bytes(in_dir("b.wav"), b, nb);
  write_bytes(in_dir("empty.wav"), b, 0);
  dx_zip_member m[3];
  member(&m[0], "m/a.wav", in_dir("a.wav"));
  member(&m[1], "m/b.wav", in_dir("b.wav"));
  member(&m[2], "m/empty.wav", in_dir("empty.wav"));
  CHECK(m[0].size == na && m[2].size == 0);
  dx_errbuf err = {{0}};
  sink k = {0}, k2 = {0};
  CHECK(dx_zip_stream(m, 3, force, 1700000000, to_sink, &k, &err) == DX_OK);
  CHECK_MSG(k.n == dx_zip_size(m, 3, force), "%zu bytes sent, dx_zip_size says %llu", k.n,
            (unsigned long long)dx_zip_size(m, 3, force));
  CHECK(dx_zip_stream(m, 3, force, 1700000000, to_sink, &k2, &err) == DX_OK);
  CHECK(k2.n == k.n && !memcmp(k.p, k2.p, k.n)); /* the same archive every time */
  dx_zip z;
  CHECK(dx_zip_open(&z, k.p, k.n, 16, &err) == DX_OK);
  CHECK(z.n == 3);
  const char *names[3] = {"m/a.wav", "m/b.wav", "m/empty.wav"};
  const unsigned char *want[3] = {a, b, b};
  size_t wn[3] = {na, nb, 0};
  for (int i = 0; i < 3; i++) {
    const dx_zip_entry *e = dx_zip_find(&z, names[i]);
    CHECK(e != NULL);
    if (!e) continue;
    CHECK(e->method == 0 && e->size == wn[i] && e->comp_size == wn[i]);
    const uint8_t *out = NULL;
    size_t n = 0;
    int owned = 0;
    CHECK(dx_zip_read(&z, e, 1 << 20, &out, &n, &owned, &err) == DX_OK); /* checks the CRC */
    CHECK(n == wn[i] && (n == 0 || memcmp(out, want[i], n) == 0));
    if (owned) free((void *)out);
  }
  /* stored entries: the archive is the files plus headers */
  if (force)
    CHECK(k.n > na + nb + 3 * (30 + 20 + 46 + 28) + 56 + 20 + 22);
  else
    CHECK(k.n == na + nb + 3 * (30 + 46) + 2 * (7 + 7) + 2 * 11 + 22);
  dx_zip_close(&z);
  free(k.p);
  free(k2.p);
  free(a);
  dx_rmtree(dir);
}

DX_TEST(roundtrip_plain) { check_roundtrip(0); }
DX_TEST(roundtrip_zip64) { check_roundtrip(1); }

DX_TEST(failures_end_the_archive) {
  make_dir();
  unsigned char b[4] = {9, 8, 7, 6};
  write_bytes(in_dir("x.wav"), b, 4);
  dx_errbuf err = {{0}};
  dx_zip_member m[2];
  member(&m[0], "x.wav", in_dir("x.wav"));
  m[1] = m[0];
  m[1].name = "y.wav";
  m[1].path = in_dir("nope.wav");
  sink k = {0};
  CHECK(dx_zip_stream(m, 2, 0, 0, to_sink, &k, &err) == DX_ERR_NOT_FOUND);
  CHECK(strstr(err.msg, "nope.wav") != NULL);
  uint32_t crc;
  uint64_t size;
  CHECK(dx_zip_file_crc(in_dir("nope.wav"), &crc, &size, &err) == DX_ERR_NOT_FOUND);
  /* the file is not the one its row describes */
  m[1].path = in_dir("x.wav");
  m[1].size = 3;
  k.n = 0;
  CHECK(dx_zip_stream(m, 2, 0, 0, to_sink, &k, &err) == DX_ERR_IO);
  CHECK(strstr(err.msg, "changed") != NULL && k.n < dx_zip_size(m, 2, 0));
  m[1].size = 4;
  m[1].crc ^= 1;
  CHECK(dx_zip_stream(m, 2, 0, 0, to_sink, &k, &err) == DX_ERR_IO);
  m[1].crc ^= 1;
  /* the reader goes away */
  sink gone = {.fail_after = 40};
  CHECK(dx_zip_stream(m, 2, 0, 0, to_sink, &gone, &err) == DX_ERR_IO);
  free(gone.p);
  /* names: checked before anything is sent */
  m[1].name = "x.wav";
  k.n = 0;
  CHECK(dx_zip_stream(m, 2, 0, 0, to_sink, &k, &err) == DX_ERR_INVALID && k.n == 0);
  m[0].name = "/abs.wav";
  CHECK(dx_zip_check(m, 1, &err) == DX_ERR_INVALID);
  CHECK(dx_zip_check(m, 0, &err) == DX_ERR_INVALID);
  free(k.p);
  dx_rmtree(dir);
}

DX_TEST_MAIN(DX_T(roundtrip_plain), DX_T(roundtrip_zip64), DX_T(failures_end_the_archive))
