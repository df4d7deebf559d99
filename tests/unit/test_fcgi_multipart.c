/* test_fcgi_multipart.c: the streaming multipart/form-data parser, fed in
 * every possible split, its strictness, and extraction from a body file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_multipart.h"
#include "dx_test.h"
#include "dx_util.h"

typedef struct {
  char log[8192];
  size_t len;
} sink;

static void put(sink *s, const char *d, size_t n) {
  if (s->len + n < sizeof s->log) {
    memcpy(s->log + s->len, d, n);
    s->len += n;
    s->log[s->len] = 0;
  }
}

static int on_begin(void *c, const dx_mp_part *p) {
  sink *s = c;
  char line[512];
  int n = snprintf(line, sizeof line, "<%s|%s|%s>", p->name, p->filename ? p->filename : "-",
                   p->content_type ? p->content_type : "-");
  put(s, line, (size_t)n);
  return 0;
}
static int on_data(void *c, const char *d, size_t n) {
  put(c, d, n);
  return 0;
}
static int on_end(void *c) {
  put(c, "</>", 3);
  return 0;
}

/* Parse body split at `split` (0: one piece; 1: byte by byte; else two pieces at that offset). */
static dx_status run(const char *boundary, const char *body, size_t n, size_t split, int mode, sink *s) {
  dx_pool *p = dx_pool_create(0);
  dx_mp_callbacks cb = {on_begin, on_data, on_end};
  memset(s, 0, sizeof *s);
  dx_multipart *mp = dx_multipart_new(p, boundary, &cb, s);
  dx_errbuf err;
  err.msg[0] = 0;
  dx_status st = DX_OK;
  if (mode == 0) st = dx_multipart_feed(mp, body, n, &err);
  else if (mode == 1)
    for (size_t i = 0; st == DX_OK && i < n; i++) st = dx_multipart_feed(mp, body + i, 1, &err);
  else {
    st = dx_multipart_feed(mp, body, split, &err);
    if (st == DX_OK) st = dx_multipart_feed(mp, body + split, n - split, &err);
  }
  if (st == DX_OK) st = dx_multipart_finish(mp, &err);
  dx_pool_destroy(p);
  return st;
}

static const char body1[] =
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n"
    "\r\n"
    "My Song\r\n"
    "--XyZ\r\n"
    "content-disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".wav\"\r\n"
    "Content-Type: audio/wav\r\n"
    "\r\n"
    "RIFF\r\n--XyQ\r\n--Xy\0data\r\n"
    "--XyZ--\r\n"
    "epilogue is ignored";

static const char want1[] = "<title|-|->My Song</><file|a \"b\".wav|audio/wav>RIFF\r\n--XyQ\r\n--Xy\0data</>";

DX_TEST(parses_in_every_split) {
  sink s;
  size_t n = sizeof body1 - 1;
  CHECK(run("XyZ", body1, n, 0, 0, &s) == DX_OK);
  CHECK(s.len == sizeof want1 - 1 && !memcmp(s.log, want1, s.len));
  CHECK(run("XyZ", body1, n, 0, 1, &s) == DX_OK);
  CHECK(s.len == sizeof want1 - 1 && !memcmp(s.log, want1, s.len));
  for (size_t k = 1; k < n; k++) {
    dx_status st = run("XyZ", body1, n, k, 2, &s);
    CHECK_MSG(st == DX_OK && s.len == sizeof want1 - 1 && !memcmp(s.log, want1, s.len), "split at %zu", k);
  }
}

DX_TEST(preamble_and_padding) {
  static const char b[] = "preamble text\r\n--b  \r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--";
  sink s;
  CHECK(run("b", b, sizeof b - 1, 0, 0, &s) == DX_OK);
  CHECK(!strcmp(s.log, "<x|-|->1</>"));
  static const char empty_part[] = "--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--b--\r\n";
  CHECK(run("b", empty_part, sizeof empty_part - 1, 0, 0, &s) == DX_OK);
  CHECK(!strcmp(s.log, "<e|-|-></>"));
}

DX_TEST(rejects_malformed) {
  const char *bad[] = {
      "",                                                                        /* nothing */
      "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1",                  /* no close */
      "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b",          /* no -- */
      "--b\r\n\r\n1\r\n--b--",                                                   /* no headers */
      "--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",                       /* no disposition */
      "--b\r\nContent-Disposition: attachment; name=x\r\n\r\n1\r\n--b--",        /* not form-data */
      "--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--",                 /* no name */
      "--b\r\nContent-Disposition: form-data; name=x; name=y\r\n\r\n1\r\n--b--", /* two names */
      "--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\n1\r\n--b--",       /* open quote */
      "--b\r\nContent-Disposition: form-data; name=x\r\n folded\r\n\r\n1\r\n--b--",
      "--b\r\nContent-Disposition: form-data; name=x\nX: y\r\n\r\n1\r\n--b--",  /* bare LF */
      "--b\r\nNoColon\r\n\r\n1\r\n--b--",
      "--bX\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",       /* junk after delimiter */
      "--b\r\nContent-Disposition: form-data; name=x\r\nContent-Disposition: form-data; name=y\r\n\r\n\r\n--b--",
  };
  sink s;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_MSG(run("b", bad[i], strlen(bad[i]), 0, 0, &s) == DX_ERR_BAD_REQUEST, "case %zu", i);
  /* Header block over the limit. */
  size_t big = DX_MP_MAX_HEADER + 100;
  char *h = malloc(big + 64);
  strcpy(h, "--b\r\nX-Long: ");
  memset(h + strlen(h), 'a', big);
  strcpy(h + 13 + big, "\r\n\r\n");
  CHECK(run("b", h, strlen(h), 0, 0, &s) == DX_ERR_BAD_REQUEST);
  free(h);
  /* Too many parts. */
  char *many = malloc(200 * (DX_MP_MAX_PARTS + 2));
  many[0] = 0;
  for (int i = 0; i < DX_MP_MAX_PARTS + 1; i++) strcat(many, "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n");
  strcat(many, "--b--");
  CHECK(run("b", many, strlen(many), 0, 0, &s) == DX_ERR_BAD_REQUEST);
  free(many);
}

DX_TEST(boundary_from_content_type) {
  char b[DX_MP_MAX_BOUNDARY + 1];
  dx_errbuf err;
  CHECK(dx_multipart_boundary("multipart/form-data; boundary=abc123", b, &err) == DX_OK && !strcmp(b, "abc123"));
  CHECK(dx_multipart_boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"", b, &err) == DX_OK &&
        !strcmp(b, "a b:c"));
  CHECK(dx_multipart_boundary("multipart/form-data", b, &err) == DX_ERR_BAD_REQUEST);
  CHECK(dx_multipart_boundary("multipart/form-data; boundary=", b, &err) == DX_ERR_BAD_REQUEST);
  CHECK(dx_multipart_boundary("multipart/form-data; boundary=\"ends space \"", b, &err) == DX_ERR_BAD_REQUEST);
  CHECK(dx_multipart_boundary("multipart/form-data; boundary=\"bad<char\"", b, &err) == DX_ERR_BAD_REQUEST);
  CHECK(dx_multipart_boundary("multipart/form-data; boundary=a; boundary=b", b, &err) == DX_ERR_BAD_REQUEST);
  char longb[120] = "multipart/form-data; boundary=";
  memset(longb + strlen(longb), 'x', 71);
  CHECK(dx_multipart_boundary(longb, b, &err) == DX_ERR_BAD_REQUEST);
  CHECK(dx_multipart_boundary("multipart/mixed; boundary=a", b, &err) == DX_ERR_UNSUPPORTED_MEDIA_TYPE);
  CHECK(dx_multipart_boundary("multipart/form-dataX; boundary=a", b, &err) == DX_ERR_UNSUPPORTED_MEDIA_TYPE);
  CHECK(dx_multipart_boundary(NULL, b, &err) == DX_ERR_UNSUPPORTED_MEDIA_TYPE);
}

static char *write_tmp(const char *dir, const char *data, size_t n) {
  static char path[512];
  snprintf(path, sizeof path, "%s/body.bin", dir);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
  return path;
}

static int count_files(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s | grep -c upload || true", dir);
  FILE *p = popen(cmd, "r");
  int n = 0;
  if (fscanf(p, "%d", &n) != 1) n = -1;
  pclose(p);
  return n;
}

DX_TEST(extracts_file_and_fields) {
  char dir[] = "/tmp/dx_mp_testXXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  const char *body = write_tmp(dir, body1, sizeof body1 - 1);
  dx_pool *p = dx_pool_create(0);
  dx_mp_form form;
  dx_errbuf err;
  CHECK(dx_multipart_extract(p, body, "XyZ", "file", dir, 1000, 100, &form, &err) == DX_OK);
  CHECK(form.nfields == 1 && !strcmp(form.fields[0].name, "title") && !strcmp(form.fields[0].value, "My Song"));
  CHECK(form.file_path && !strcmp(form.file_name, "a \"b\".wav") && !strcmp(form.file_type, "audio/wav"));
  static const char want[] = "RIFF\r\n--XyQ\r\n--Xy\0data";
  CHECK(form.file_size == (long long)sizeof want - 1);
  char *got = NULL;
  size_t n = 0;
  CHECK(dx_read_file(form.file_path, &got, &n) == DX_OK && n == sizeof want - 1 && !memcmp(got, want, n));
  free(got);
  CHECK(count_files(dir) == 1);
  dx_pool_reset(p); /* the temporary file goes with the pool */
  CHECK(count_files(dir) == 0);

  /* Limits: file too large, field too large; nothing left behind. */
  CHECK(dx_multipart_extract(p, body, "XyZ", "file", dir, 5, 100, &form, &err) == DX_ERR_TOO_LARGE);
  CHECK(count_files(dir) == 0);
  CHECK(dx_multipart_extract(p, body, "XyZ", "file", dir, 1000, 3, &form, &err) == DX_ERR_TOO_LARGE);
  /* Two file parts. */
  static const char two[] = "--b\r\nContent-Disposition: form-data; name=file\r\n\r\n1\r\n"
                            "--b\r\nContent-Disposition: form-data; name=file\r\n\r\n2\r\n--b--";
  body = write_tmp(dir, two, sizeof two - 1);
  CHECK(dx_multipart_extract(p, body, "b", "file", dir, 1000, 100, &form, &err) == DX_ERR_BAD_REQUEST);
  CHECK(count_files(dir) == 0);
  /* No file part at all is not an error here (the handler decides). */
  static const char none[] = "--b\r\nContent-Disposition: form-data; name=title\r\n\r\nT\r\n--b--";
  body = write_tmp(dir, none, sizeof none - 1);
  CHECK(dx_multipart_extract(p, body, "b", "file", dir, 1000, 100, &form, &err) == DX_OK && form.file_path == NULL);
  dx_pool_destroy(p);
  unlink(body);
  rmdir(dir);
}

DX_TEST_MAIN(DX_T(parses_in_every_split), DX_T(preamble_and_padding), DX_T(rejects_malformed),
             DX_T(boundary_from_content_type), DX_T(extracts_file_and_fields))
