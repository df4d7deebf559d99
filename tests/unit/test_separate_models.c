/* test_separate_models.c: the model registry (engine/models/registry.c) and
 * checkpoint downloads (engine/models/fetch.c) with the real libcurl client
 * against a small HTTP/1.1 server started here on loopback: whole download,
 * a transfer cut off half-way then resumed with a Range request, a server
 * that ignores ranges, a file whose content does not match the sha256 prefix
 * in its name, a missing file, and a whole named bag through a flat mirror. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_fetch.h"
#include "dx_registry.h"
#include "dx_test.h"
#include "dx_util.h"

/* ---- a loopback HTTP server ---- */

typedef struct {
  char path[128];
  const unsigned char *data;
  size_t len;
} served;

typedef struct {
  int lfd, port;
  volatile int stop;
  served files[8];
  int n_files;
  size_t cut_after;     /* >0: the next GET sends only this many body bytes, then closes */
  int ignore_range;     /* answer 200 with the whole file even to a Range request */
  long long last_range; /* start of the last Range header seen, -1 none */
  int requests;
  pthread_t th;
} server;

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

static void serve_one(server *s, int fd) {
  char req[4096];
  size_t got = 0;
  while (got < sizeof req - 1) {
    ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
    if (r <= 0) return;
    got += (size_t)r;
    req[got] = 0;
    if (strstr(req, "\r\n\r\n")) break;
  }
  s->requests++;
  char method[8], path[256];
  if (sscanf(req, "%7s %255s", method, path) != 2) return;
  long long start = -1;
  const char *rg = strcasestr(req, "\r\nRange: bytes=");
  if (rg) start = atoll(rg + 15);
  s->last_range = start;
  const served *f = NULL;
  for (int i = 0; i < s->n_files; i++)
    if (!strcmp(s->files[i].path, path)) f = &s->files[i];
  char hdr[512];
  if (!f) {
    int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    send_all(fd, hdr, (size_t)n);
    return;
  }
  size_t off = 0;
  int n;
  if (start >= 0 && !s->ignore_range) {
    if ((size_t)start >= f->len) {
      n = snprintf(hdr, sizeof hdr, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%zu\r\n"
                   "Content-Length: 0\r\nConnection: close\r\n\r\n", f->len);
      send_all(fd, hdr, (size_t)n);
      return;
    }
    off = (size_t)start;
    n = snprintf(hdr, sizeof hdr, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n", off, f->len - 1, f->len, f->len - off);
  } else {
    n = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", f->len);
  }
  send_all(fd, hdr, (size_t)n);
  size_t body = f->len - off;
  if (s->cut_after && s->cut_after < body) {
    body = s->cut_after;
    s->cut_after = 0;
  }
  if (strcmp(method, "HEAD") != 0) send_all(fd, f->data + off, body);
}

static void *server_main(void *arg) {
  server *s = arg;
  while (!s->stop) {
    struct pollfd p = {s->lfd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    serve_one(s, fd);
    shutdown(fd, SHUT_RDWR);
    close(fd);
  }
  return NULL;
}

static int server_start(server *s) {
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 8) != 0 ||
      getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
    return -1;
  s->port = ntohs(a.sin_port);
  s->last_range = -1;
  return pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(server *s) {
  s->stop = 1;
  pthread_join(s->th, NULL);
  close(s->lfd);
}

/* ---- helpers ---- */

static unsigned char *make_blob(size_t n, unsigned seed) {
  unsigned char *b = malloc(n);
  uint32_t x = seed * 747796405u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;
    b[i] = (unsigned char)(x >> 24);
  }
  return b;
}

static void tmpdir(char *out, size_t n) {
  snprintf(out, n, "/tmp/dx_fetch_XXXXXX");
  if (!mkdtemp(out)) out[0] = 0;
}

static int same_file(const char *path, const unsigned char *data, size_t len) {
  char *got = NULL;
  size_t n = 0;
  if (dx_read_file(path, &got, &n) != DX_OK) return 0;
  int ok = n == len && memcmp(got, data, len) == 0;
  free(got);
  return ok;
}

static int exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

typedef struct {
  int calls;
  long long last;
} prog;

static int on_progress(void *user, const char *file, long long have, long long total) {
  (void)file;
  (void)total;
  prog *p = user;
  p->calls++;
  CHECK(have >= p->last || have == 0);
  p->last = have;
  return 0;
}

/* ---- tests ---- */

DX_TEST(registry_names) {
  char dir[64];
  tmpdir(dir, sizeof dir);
  dx_registry_entry e;
  dx_errbuf err = {{0}};
  CHECK(dx_registry_find(dir, "htdemucs", &e, &err) == DX_OK);
  CHECK(e.kind == DX_REG_BAG && e.n_files == 1 && !strcmp(e.files[0], "955717e8-8726e21a.th") && !e.installed);
  CHECK(e.n_sources == 4 && !strcmp(e.sources[3], "vocals"));
  CHECK(dx_registry_find(dir, "htdemucs_ft", &e, &err) == DX_OK);
  CHECK(e.n_files == 4 && e.has_weights && e.weights[2][2] == 1.0f && e.weights[2][1] == 0.0f);
  CHECK(dx_registry_find(dir, "htdemucs_6s", &e, &err) == DX_OK);
  CHECK(e.n_sources == 6 && !strcmp(e.sources[5], "piano"));
  CHECK(dx_registry_find(dir, "mdx_extra", &e, &err) == DX_OK);
  CHECK(e.n_files == 4 && e.segment == 44 && !strcmp(e.remote_dir, "mdx_final"));
  CHECK(dx_registry_find(dir, "hdemucs_mmi", &e, &err) == DX_OK);
  CHECK(e.segment == 44 && !strcmp(e.files[0], "75fc33f5-1941ce65.th"));
  CHECK(dx_registry_find(dir, "hpss", &e, &err) == DX_OK);
  CHECK(e.kind == DX_REG_HPSS && e.installed && e.n_sources == 2);
  CHECK(dx_registry_find(dir, "nosuch", &e, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_registry_find(dir, "../etc/passwd", &e, &err) == DX_ERR_INVALID);

  /* a .th in the folder is a model by its stem; a named bag's file is not listed on its own */
  char path[200];
  snprintf(path, sizeof path, "%s/mine.th", dir);
  CHECK(dx_write_file_atomic(path, "x", 1) == DX_OK);
  snprintf(path, sizeof path, "%s/955717e8-8726e21a.th", dir);
  CHECK(dx_write_file_atomic(path, "yy", 2) == DX_OK);
  CHECK(dx_registry_find(dir, "mine", &e, &err) == DX_OK);
  CHECK(e.kind == DX_REG_LOCAL && e.installed && e.size_bytes == 1);
  dx_registry_entry *all = NULL;
  int n = 0;
  CHECK(dx_registry_list(dir, &all, &n, &err) == DX_OK);
  int saw_mine = 0, saw_sig = 0, ht_installed = 0;
  for (int i = 0; i < n; i++) {
    saw_mine += !strcmp(all[i].name, "mine");
    saw_sig += !strcmp(all[i].name, "955717e8-8726e21a");
    if (!strcmp(all[i].name, "htdemucs")) ht_installed = all[i].installed && all[i].size_bytes == 2;
  }
  CHECK(n == 7 && saw_mine == 1 && saw_sig == 0 && ht_installed);
  free(all);

  /* URLs: <base>/<official folder>/<file>, for the official location and mirrors alike */
  char url[512];
  dx_registry_find(dir, "mdx_extra", &e, &err);
  dx_registry_url("https://dl.fbaipublicfiles.com/demucs", &e, 1, url, sizeof url);
  CHECK(!strcmp(url, "https://dl.fbaipublicfiles.com/demucs/mdx_final/a1d90b5c-ae9d2452.th"));
  dx_registry_url("http://127.0.0.1:9/mirror/", &e, 0, url, sizeof url);
  CHECK(!strcmp(url, "http://127.0.0.1:9/mirror/mdx_final/e51eebcc-c1b80bdd.th"));
  dx_registry_find(dir, "htdemucs", &e, &err);
  dx_registry_url("http://127.0.0.1:9/mirror", &e, 0, url, sizeof url);
  CHECK(!strcmp(url, "http://127.0.0.1:9/mirror/hybrid_transformer/955717e8-8726e21a.th"));
  size_t pl = 0;
  const char *pre = dx_registry_hash_prefix("955717e8-8726e21a.th", &pl);
  CHECK(pre && pl == 8 && !strncmp(pre, "8726e21a", 8));
  CHECK(dx_registry_hash_prefix("htdemucs_tiny.th", &pl) == NULL);
  dx_rmtree(dir);
}

DX_TEST(fetch_whole_resume_and_checksum) {
  server s;
  memset(&s, 0, sizeof s);
  size_t len = 300000;
  unsigned char *blob = make_blob(len, 1);
  char hex[65];
  dx_sha256_hex(blob, len, hex);
  char good[80], bad[80];
  snprintf(good, sizeof good, "abcdef01-%.8s.th", hex);
  snprintf(bad, sizeof bad, "abcdef02-%.8s.th", hex[0] == '0' ? "11111111" : "00000000");
  snprintf(s.files[0].path, sizeof s.files[0].path, "/m/%s", good);
  s.files[0].data = blob;
  s.files[0].len = len;
  snprintf(s.files[1].path, sizeof s.files[1].path, "/m/%s", bad);
  s.files[1].data = blob;
  s.files[1].len = len;
  s.n_files = 2;
  CHECK(server_start(&s) == 0);
  char dir[64], url[256], path[200], part[220];
  tmpdir(dir, sizeof dir);
  dx_errbuf err = {{0}};

  /* whole file */
  prog pr = {0, 0};
  snprintf(url, sizeof url, "http://127.0.0.1:%d/m/%s", s.port, good);
  dx_status st = dx_fetch_file(url, dir, good, hex, on_progress, &pr, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  snprintf(path, sizeof path, "%s/%s", dir, good);
  CHECK(same_file(path, blob, len));
  CHECK(pr.calls > 0 && pr.last == (long long)len);
  CHECK(s.last_range == -1);
  unlink(path);

  /* cut off half-way: a network error keeps the .part; the next call resumes with Range */
  s.cut_after = len / 2;
  st = dx_fetch_file(url, dir, good, "8", NULL, NULL, &err);
  CHECK(st == DX_ERR_NETWORK);
  snprintf(part, sizeof part, "%s.part", path);
  struct stat sb;
  CHECK(stat(part, &sb) == 0 && (size_t)sb.st_size == len / 2);
  CHECK(!exists(path));
  st = dx_fetch_file(url, dir, good, hex, NULL, NULL, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  CHECK(s.last_range == (long long)(len / 2));
  CHECK(same_file(path, blob, len) && !exists(part));
  unlink(path);

  /* a server that ignores the range: the .part starts over */
  s.cut_after = len / 3;
  CHECK(dx_fetch_file(url, dir, good, hex, NULL, NULL, &err) == DX_ERR_NETWORK);
  s.ignore_range = 1;
  st = dx_fetch_file(url, dir, good, hex, NULL, NULL, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  CHECK(s.last_range == (long long)(len / 3));
  CHECK(same_file(path, blob, len));
  s.ignore_range = 0;

  /* content that does not match the prefix in the name: refused, nothing left */
  size_t bl = 0;
  const char *bp = dx_registry_hash_prefix(bad, &bl);
  char bpre[16];
  snprintf(bpre, sizeof bpre, "%.*s", (int)bl, bp);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/m/%s", s.port, bad);
  st = dx_fetch_file(url, dir, bad, bpre, NULL, NULL, &err);
  CHECK(st == DX_ERR_CHECKSUM);
  CHECK(strstr(err.msg, "does not match") != NULL);
  snprintf(path, sizeof path, "%s/%s", dir, bad);
  snprintf(part, sizeof part, "%s.part", path);
  CHECK(!exists(path) && !exists(part));

  /* missing on the server */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/m/none-12345678.th", s.port);
  CHECK(dx_fetch_file(url, dir, "none-12345678.th", "12345678", NULL, NULL, &err) == DX_ERR_NETWORK);
  CHECK(strstr(err.msg, "404") != NULL);
  snprintf(path, sizeof path, "%s/none-12345678.th", dir);
  CHECK(!exists(path));

  server_stop(&s);
  dx_rmtree(dir);
  free(blob);
}

DX_TEST(fetch_named_bag_from_mirror) {
  /* a registry entry without an official folder, served from a mirror's
   * root: only the missing files are requested, the checksums come from the names */
  server s;
  memset(&s, 0, sizeof s);
  dx_registry_entry e;
  memset(&e, 0, sizeof e);
  snprintf(e.name, sizeof e.name, "twofiles");
  e.kind = DX_REG_BAG;
  e.n_files = 2;
  unsigned char *b0 = make_blob(5000, 7), *b1 = make_blob(7000, 8);
  char h0[65], h1[65];
  dx_sha256_hex(b0, 5000, h0);
  dx_sha256_hex(b1, 7000, h1);
  snprintf(e.files[0], sizeof e.files[0], "00000001-%.8s.th", h0);
  snprintf(e.files[1], sizeof e.files[1], "00000002-%.8s.th", h1);
  snprintf(s.files[0].path, sizeof s.files[0].path, "/mirror/%s", e.files[0]);
  s.files[0].data = b0;
  s.files[0].len = 5000;
  snprintf(s.files[1].path, sizeof s.files[1].path, "/mirror/%s", e.files[1]);
  s.files[1].data = b1;
  s.files[1].len = 7000;
  s.n_files = 2;
  CHECK(server_start(&s) == 0);
  char dir[64], sub[128], base[128], path[256];
  tmpdir(dir, sizeof dir);
  snprintf(sub, sizeof sub, "%s/models", dir);
  snprintf(base, sizeof base, "http://127.0.0.1:%d/mirror", s.port);
  dx_errbuf err = {{0}};
  CHECK(dx_mkdirs(sub) == DX_OK);
  snprintf(path, sizeof path, "%s/%s", sub, e.files[0]);
  CHECK(dx_write_file_atomic(path, b0, 5000) == DX_OK);
  dx_status st = dx_fetch_model(&e, base, sub, NULL, NULL, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  CHECK(s.requests == 1);
  snprintf(path, sizeof path, "%s/%s", sub, e.files[1]);
  CHECK(same_file(path, b1, 7000));
  dx_registry_entry h;
  dx_registry_find(sub, "hpss", &h, &err);
  CHECK(dx_fetch_model(&h, base, sub, NULL, NULL, &err) == DX_ERR_INVALID);
  server_stop(&s);
  dx_rmtree(dir);
  free(b0);
  free(b1);
}

DX_TEST_MAIN(DX_T(registry_names), DX_T(fetch_whole_resume_and_checksum), DX_T(fetch_named_bag_from_mirror))
