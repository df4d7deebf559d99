/* test_zip_writer.c: archives written by dx_zip_write_files read back with
 * the checkpoint zip reader (dx_zip), with and without ZIP64 records: same
 * names, same bytes, CRCs checked; failures leave neither the destination
 * nor a temporary file behind. */
#include <dirent.h>
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

static unsigned char *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
  *n = fread(b, 1, (size_t)sz, f);
  fclose(f);
  return b;
}

/* Number of entries in dir (besides . and ..). */
static int dir_count(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

static void check_roundtrip(int force) {
  make_dir();
  size_t na = 200000, nb = 3;
  unsigned char *a = malloc(na), b[3] = {1, 2, 3};
  for (size_t i = 0; i < na; i++) a[i] = (unsigned char)(i * 31 + (i >> 7));
  write_bytes(in_dir("a.wav"), a, na);
  write_bytes(in_dir("b.wav"), b, nb);
  write_bytes(in_dir("empty.wav"), b, 0);
  dx_zip_source src[3] = {{"m/a.wav", in_dir("a.wav")}, {"m/b.wav", in_dir("b.wav")}, {"m/empty.wav", in_dir("empty.wav")}};
  dx_zip_write_params p = dx_zip_write_default_params();
  p.force_zip64 = force;
  uint64_t size = 0;
  dx_errbuf err = {{0}};
  CHECK(dx_zip_write_files(in_dir("out.zip"), src, 3, &p, &size, &err) == DX_OK);
  CHECK(dir_count() == 4); /* three sources and the archive: no temporary file left */
  size_t zn = 0;
  unsigned char *zd = read_all(in_dir("out.zip"), &zn);
  CHECK(zd != NULL && zn == size);
  dx_zip z;
  CHECK(dx_zip_open(&z, zd, zn, 16, &err) == DX_OK);
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
    CHECK(zn > na + nb + 3 * (30 + 20 + 46 + 28) + 56 + 20 + 22);
  else
    CHECK(zn == na + nb + 3 * (30 + 46) + 2 * (7 + 7) + 2 * 11 + 22);
  dx_zip_close(&z);
  free(zd);
  free(a);
  dx_rmtree(dir);
}

DX_TEST(roundtrip_plain) { check_roundtrip(0); }
DX_TEST(roundtrip_zip64) { check_roundtrip(1); }

DX_TEST(failures_leave_nothing) {
  make_dir();
  unsigned char b[4] = {9, 8, 7, 6};
  write_bytes(in_dir("x.wav"), b, 4);
  write_bytes(in_dir("old.zip"), b, 2);
  dx_errbuf err = {{0}};
  dx_zip_source missing[2] = {{"x.wav", in_dir("x.wav")}, {"y.wav", in_dir("nope.wav")}};
  CHECK(dx_zip_write_files(in_dir("new.zip"), missing, 2, NULL, NULL, &err) == DX_ERR_NOT_FOUND);
  CHECK(strstr(err.msg, "nope.wav") != NULL);
  CHECK(access(in_dir("new.zip"), F_OK) != 0);
  /* an existing destination stays as it was */
  CHECK(dx_zip_write_files(in_dir("old.zip"), missing, 2, NULL, NULL, &err) == DX_ERR_NOT_FOUND);
  size_t n = 0;
  unsigned char *old = read_all(in_dir("old.zip"), &n);
  CHECK(n == 2 && old[0] == 9 && old[1] == 8);
  free(old);
  dx_zip_source dup[2] = {{"x.wav", in_dir("x.wav")}, {"x.wav", in_dir("x.wav")}};
  CHECK(dx_zip_write_files(in_dir("new.zip"), dup, 2, NULL, NULL, &err) == DX_ERR_INVALID);
  dx_zip_source bad[1] = {{"/abs.wav", in_dir("x.wav")}};
  CHECK(dx_zip_write_files(in_dir("new.zip"), bad, 1, NULL, NULL, &err) == DX_ERR_INVALID);
  CHECK(dx_zip_write_files(in_dir("new.zip"), bad, 0, NULL, NULL, &err) == DX_ERR_INVALID);
  CHECK(dx_zip_write_files(in_dir("nodir/new.zip"), dup, 1, NULL, NULL, &err) == DX_ERR_IO);
  CHECK(dir_count() == 2);
  dx_rmtree(dir);
}

DX_TEST_MAIN(DX_T(roundtrip_plain), DX_T(roundtrip_zip64), DX_T(failures_leave_nothing))
