/* zip_writer.c: stored-entry ZIP archives of existing files, composed as
 * they are sent (see dx_zip_writer.h). Sizes and CRCs are known before the
 * first byte, so each local header is final when sent and dx_zip_size
 * gives the exact length. ZIP64 extra fields and end records are added
 * where a size or an offset does not fit 32 bits (APPNOTE 4.5.3).
 * Threading: no shared state. */
#include "dx_zip_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define MAX32 0xffffffffu
#define COPY_BUF (1u << 20)

typedef struct {
  unsigned char p[128];
  size_t n;
} wbuf;

static void put16(wbuf *b, unsigned v) {
  b->p[b->n++] = (unsigned char)v;
  b->p[b->n++] = (unsigned char)(v >> 8);
}
static void put32(wbuf *b, uint32_t v) {
  put16(b, v & 0xffffu);
  put16(b, v >> 16);
}
static void put64(wbuf *b, uint64_t v) {
  put32(b, (uint32_t)v);
  put32(b, (uint32_t)(v >> 32));
}
static uint32_t clamp32(uint64_t v, int force) { return force || v >= MAX32 ? MAX32 : (uint32_t)v; }

static int name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/') return 0;
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == '\\') return 0;
  return 1;
}

dx_status dx_zip_check(const dx_zip_member *m, int n, dx_errbuf *err) {
  if (!m || n < 1 || n > 65535) return dx_fail(err, DX_ERR_INVALID, "an archive needs from 1 to 65535 entries");
  for (int i = 0; i < n; i++) {
    if (!name_valid(m[i].name) || !m[i].path)
      return dx_fail(err, DX_ERR_INVALID, "bad archive entry name \"%s\"", m[i].name ? m[i].name : "");
    for (int j = 0; j < i; j++)
      if (!strcmp(m[i].name, m[j].name)) return dx_fail(err, DX_ERR_INVALID, "duplicate archive entry %s", m[i].name);
  }
  return DX_OK;
}

dx_status dx_zip_file_crc(const char *path, uint32_t *crc, uint64_t *size, dx_errbuf *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return dx_fail(err, errno == ENOENT ? DX_ERR_NOT_FOUND : DX_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  unsigned char *buf = malloc(COPY_BUF);
  if (!buf) {
    fclose(f);
    return DX_ERR_NOMEM;
  }
  uLong c = crc32(0L, Z_NULL, 0);
  uint64_t total = 0;
  size_t got;
  while ((got = fread(buf, 1, COPY_BUF, f)) > 0) {
    c = crc32(c, buf, (uInt)got);
    total += got;
  }
  int bad = ferror(f);
  fclose(f);
  free(buf);
  if (bad) return dx_fail(err, DX_ERR_IO, "cannot read %s", path);
  *crc = (uint32_t)c;
  *size = total;
  return DX_OK;
}

static int local_zip64(const dx_zip_member *e, int force) { return force || e->size >= MAX32; }

/* Bytes of member e's local header (with its name and extra field). */
static uint64_t local_len(const dx_zip_member *e, int force) {
  return 30 + strlen(e->name) + (local_zip64(e, force) ? 20 : 0);
}

/* The central record's ZIP64 extra field length (0: none). */
static size_t central_extra(const dx_zip_member *e, uint64_t offset, int force) {
  return (force || e->size >= MAX32 ? 16u : 0u) + (force || offset >= MAX32 ? 8u : 0u);
}

uint64_t dx_zip_size(const dx_zip_member *m, int n, int force) {
  uint64_t off = 0, cd = 0;
  for (int i = 0; i < n; i++) {
    size_t xl = central_extra(&m[i], off, force);
    cd += 46 + strlen(m[i].name) + (xl ? xl + 4 : 0);
    off += local_len(&m[i], force) + m[i].size;
  }
  int z64 = force || off >= MAX32 || cd >= MAX32;
  return off + cd + 22 + (z64 ? 56 + 20 : 0);
}

static void dos_time(time_t when, unsigned *t, unsigned *d) {
  struct tm tm;
  gmtime_r(&when, &tm);
  if (tm.tm_year < 80) tm = (struct tm){.tm_year = 80, .tm_mday = 1}; /* DOS dates start in 1980 */
  *t = (unsigned)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
  *d = (unsigned)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

typedef struct {
  dx_zip_out_fn out;
  void *ctx;
  dx_errbuf *err;
} sink;

static dx_status emit(sink *s, const void *p, size_t n) {
  return s->out(s->ctx, p, n) ? dx_fail(s->err, DX_ERR_IO, "the archive's reader went away") : DX_OK;
}

/* Member e at its place: local header, then the file's bytes, checked
 * against the size and CRC it was given. */
static dx_status send_entry(sink *s, const dx_zip_member *e, int force, unsigned t, unsigned d, unsigned char *buf) {
  FILE *in = fopen(e->path, "rb");
  if (!in)
    return dx_fail(s->err, errno == ENOENT ? DX_ERR_NOT_FOUND : DX_ERR_IO, "cannot open %s: %s", e->path,
                   strerror(errno));
  int z64 = local_zip64(e, force);
  size_t nl = strlen(e->name);
  wbuf b = {.n = 0};
  put32(&b, SIG_LOCAL);
  put16(&b, z64 ? 45 : 20);
  put16(&b, 0); /* flags */
  put16(&b, 0); /* stored */
  put16(&b, t);
  put16(&b, d);
  put32(&b, e->crc);
  put32(&b, z64 ? MAX32 : (uint32_t)e->size);
  put32(&b, z64 ? MAX32 : (uint32_t)e->size);
  put16(&b, (unsigned)nl);
  put16(&b, z64 ? 20 : 0);
  size_t fixed = b.n;
  if (z64) {
    put16(&b, 0x0001);
    put16(&b, 16);
    put64(&b, e->size);
    put64(&b, e->size);
  }
  dx_status st = emit(s, b.p, fixed);
  if (st == DX_OK) st = emit(s, e->name, nl);
  if (st == DX_OK) st = emit(s, b.p + fixed, b.n - fixed);
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t total = 0;
  size_t got;
  while (st == DX_OK && (got = fread(buf, 1, COPY_BUF, in)) > 0) {
    if (total + got > e->size) break; /* grew: stop before the archive's layout breaks */
    crc = crc32(crc, buf, (uInt)got);
    total += got;
    st = emit(s, buf, got);
  }
  int rerr = ferror(in);
  fclose(in);
  if (st != DX_OK) return st;
  if (rerr) return dx_fail(s->err, DX_ERR_IO, "cannot read %s", e->path);
  if (total != e->size || (uint32_t)crc != e->crc)
    return dx_fail(s->err, DX_ERR_IO, "%s changed since its size and CRC were taken", e->path);
  return DX_OK;
}

/* Central directory and end records; cd is where the directory starts. */
static dx_status send_directory(sink *s, const dx_zip_member *m, int n, int force, unsigned t, unsigned d,
                                uint64_t cd) {
  uint64_t off = 0, cd_size = 0;
  dx_status st = DX_OK;
  for (int i = 0; i < n && st == DX_OK; i++) {
    const dx_zip_member *e = &m[i];
    int big_size = force || e->size >= MAX32, big_off = force || off >= MAX32;
    size_t nl = strlen(e->name), xl = central_extra(e, off, force);
    wbuf b = {.n = 0};
    put32(&b, SIG_CENTRAL);
    put16(&b, (3u << 8) | (xl ? 45u : 20u)); /* made by: Unix */
    put16(&b, xl ? 45 : 20);
    put16(&b, 0);
    put16(&b, 0);
    put16(&b, t);
    put16(&b, d);
    put32(&b, e->crc);
    put32(&b, clamp32(e->size, force));
    put32(&b, clamp32(e->size, force));
    put16(&b, (unsigned)nl);
    put16(&b, xl ? (unsigned)xl + 4 : 0);
    put16(&b, 0); /* comment */
    put16(&b, 0); /* disk */
    put16(&b, 0); /* internal attributes */
    put32(&b, 0100644u << 16);
    put32(&b, clamp32(off, force));
    size_t fixed = b.n;
    if (xl) {
      put16(&b, 0x0001);
      put16(&b, (unsigned)xl);
      if (big_size) {
        put64(&b, e->size);
        put64(&b, e->size);
      }
      if (big_off) put64(&b, off);
    }
    st = emit(s, b.p, fixed);
    if (st == DX_OK) st = emit(s, e->name, nl);
    if (st == DX_OK) st = emit(s, b.p + fixed, b.n - fixed);
    cd_size += b.n + nl;
    off += local_len(e, force) + e->size;
  }
  if (st != DX_OK) return st;
  uint64_t end = cd + cd_size;
  int z64 = force || cd >= MAX32 || cd_size >= MAX32;
  wbuf b = {.n = 0};
  if (z64) {
    put32(&b, SIG_EOCD64);
    put64(&b, 44);
    put16(&b, (3u << 8) | 45u);
    put16(&b, 45);
    put32(&b, 0);
    put32(&b, 0);
    put64(&b, (uint64_t)n);
    put64(&b, (uint64_t)n);
    put64(&b, cd_size);
    put64(&b, cd);
    put32(&b, SIG_LOC64);
    put32(&b, 0);
    put64(&b, end); /* where the ZIP64 end record starts */
    put32(&b, 1);
  }
  put32(&b, SIG_EOCD);
  put16(&b, 0);
  put16(&b, 0);
  put16(&b, (unsigned)n);
  put16(&b, (unsigned)n);
  put32(&b, clamp32(cd_size, z64));
  put32(&b, clamp32(cd, z64));
  put16(&b, 0);
  return emit(s, b.p, b.n);
}

dx_status dx_zip_stream(const dx_zip_member *m, int n, int force, time_t mtime, dx_zip_out_fn out, void *ctx,
                        dx_errbuf *err) {
  dx_status st = dx_zip_check(m, n, err);
  if (st != DX_OK) return st;
  unsigned char *buf = malloc(COPY_BUF);
  if (!buf) return DX_ERR_NOMEM;
  sink s = {out, ctx, err};
  unsigned t, d;
  dos_time(mtime, &t, &d);
  uint64_t cd = 0;
  for (int i = 0; i < n && st == DX_OK; i++) {
    st = send_entry(&s, &m[i], force, t, d, buf);
    cd += local_len(&m[i], force) + m[i].size;
  }
  if (st == DX_OK) st = send_directory(&s, m, n, force, t, d, cd);
  free(buf);
  return st;
}
