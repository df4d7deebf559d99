/* zip_writer.c: stored-entry ZIP archives of existing files (see
 * dx_zip_writer.h). Each entry's local header is written with its size
 * (known from fstat), the bytes are copied while the CRC-32 is computed,
 * and the CRC is patched into the header afterwards. ZIP64 extra fields and
 * end records are added where a size or an offset does not fit 32 bits
 * (APPNOTE 4.5.3), so archives of long multi-stem tracks stay readable.
 * Threading: no shared state. */
#include "dx_zip_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "dx_util.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define MAX32 0xffffffffu
#define COPY_BUF (1u << 20)

typedef struct {
  const char *name;
  uint64_t size, offset;
  uint32_t crc;
  int zip64; /* the local header carries a ZIP64 extra field */
} entry;

typedef struct {
  unsigned char *p;
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

dx_zip_write_params dx_zip_write_default_params(void) {
  dx_zip_write_params p = {0};
  return p;
}

static int name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/') return 0;
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == '\\') return 0;
  return 1;
}

static void dos_time(unsigned *t, unsigned *d) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  *t = (unsigned)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
  *d = (unsigned)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

/* Append one source as a stored entry at the current end of z. */
static dx_status add_entry(FILE *z, const dx_zip_source *s, entry *e, int force, unsigned t, unsigned d,
                           unsigned char *buf, dx_errbuf *err) {
  FILE *in = fopen(s->path, "rb");
  if (!in)
    return dx_fail(err, errno == ENOENT ? DX_ERR_NOT_FOUND : DX_ERR_IO, "cannot open %s: %s", s->path,
                   strerror(errno));
  struct stat sb;
  off_t off = ftello(z);
  if (fstat(fileno(in), &sb) != 0 || !S_ISREG(sb.st_mode) || off < 0) {
    fclose(in);
    return dx_fail(err, DX_ERR_IO, "%s is not a readable regular file", s->path);
  }
  e->name = s->name;
  e->size = (uint64_t)sb.st_size;
  e->offset = (uint64_t)off;
  e->zip64 = force || e->size >= MAX32;
  size_t nl = strlen(s->name);
  unsigned char h[30 + 20];
  wbuf b = {h, 0};
  put32(&b, SIG_LOCAL);
  put16(&b, e->zip64 ? 45 : 20);
  put16(&b, 0); /* flags */
  put16(&b, 0); /* stored */
  put16(&b, t);
  put16(&b, d);
  put32(&b, 0); /* CRC, patched below */
  put32(&b, e->zip64 ? MAX32 : (uint32_t)e->size);
  put32(&b, e->zip64 ? MAX32 : (uint32_t)e->size);
  put16(&b, (unsigned)nl);
  put16(&b, e->zip64 ? 20 : 0);
  size_t fixed = b.n;
  if (e->zip64) {
    put16(&b, 0x0001);
    put16(&b, 16);
    put64(&b, e->size);
    put64(&b, e->size);
  }
  if (fwrite(h, 1, fixed, z) != fixed || fwrite(s->name, 1, nl, z) != nl ||
      fwrite(h + fixed, 1, b.n - fixed, z) != b.n - fixed) {
    fclose(in);
    return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t total = 0;
  size_t got;
  while ((got = fread(buf, 1, COPY_BUF, in)) > 0) {
    crc = crc32(crc, buf, (uInt)got);
    total += got;
    if (fwrite(buf, 1, got, z) != got) {
      fclose(in);
      return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
    }
  }
  int rerr = ferror(in);
  fclose(in);
  if (rerr) return dx_fail(err, DX_ERR_IO, "cannot read %s", s->path);
  if (total != e->size) return dx_fail(err, DX_ERR_IO, "%s changed size while it was archived", s->path);
  e->crc = (uint32_t)crc;
  unsigned char c[4];
  wbuf cb = {c, 0};
  put32(&cb, e->crc);
  off_t end = ftello(z);
  if (end < 0 || fseeko(z, off + 14, SEEK_SET) || fwrite(c, 1, 4, z) != 4 || fseeko(z, end, SEEK_SET))
    return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
  return DX_OK;
}

/* Central directory and end records. */
static dx_status finish(FILE *z, const entry *e, int n, int force, unsigned t, unsigned d, dx_errbuf *err) {
  off_t cd = ftello(z);
  if (cd < 0) return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
  unsigned char h[46 + 28];
  for (int i = 0; i < n; i++) {
    int big_size = force || e[i].size >= MAX32, big_off = force || e[i].offset >= MAX32;
    size_t nl = strlen(e[i].name), xl = (big_size ? 16u : 0u) + (big_off ? 8u : 0u);
    wbuf b = {h, 0};
    put32(&b, SIG_CENTRAL);
    put16(&b, (3u << 8) | (xl ? 45u : 20u)); /* made by: Unix */
    put16(&b, xl ? 45 : 20);
    put16(&b, 0);
    put16(&b, 0);
    put16(&b, t);
    put16(&b, d);
    put32(&b, e[i].crc);
    put32(&b, clamp32(e[i].size, force));
    put32(&b, clamp32(e[i].size, force));
    put16(&b, (unsigned)nl);
    put16(&b, xl ? (unsigned)xl + 4 : 0);
    put16(&b, 0); /* comment */
    put16(&b, 0); /* disk */
    put16(&b, 0); /* internal attributes */
    put32(&b, 0100644u << 16);
    put32(&b, clamp32(e[i].offset, force));
    size_t fixed = b.n;
    if (xl) {
      put16(&b, 0x0001);
      put16(&b, (unsigned)xl);
      if (big_size) {
        put64(&b, e[i].size);
        put64(&b, e[i].size);
      }
      if (big_off) put64(&b, e[i].offset);
    }
    if (fwrite(h, 1, fixed, z) != fixed || fwrite(e[i].name, 1, nl, z) != nl ||
        fwrite(h + fixed, 1, b.n - fixed, z) != b.n - fixed)
      return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
  }
  off_t end = ftello(z);
  if (end < 0) return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
  uint64_t cd_off = (uint64_t)cd, cd_size = (uint64_t)(end - cd);
  int z64 = force || cd_off >= MAX32 || cd_size >= MAX32;
  unsigned char t64[56 + 20 + 22];
  wbuf b = {t64, 0};
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
    put64(&b, cd_off);
    put32(&b, SIG_LOC64);
    put32(&b, 0);
    put64(&b, (uint64_t)end); /* where the ZIP64 end record starts */
    put32(&b, 1);
  }
  put32(&b, SIG_EOCD);
  put16(&b, 0);
  put16(&b, 0);
  put16(&b, (unsigned)n);
  put16(&b, (unsigned)n);
  put32(&b, clamp32(cd_size, z64));
  put32(&b, clamp32(cd_off, z64));
  put16(&b, 0);
  if (fwrite(t64, 1, b.n, z) != b.n) return dx_fail(err, DX_ERR_IO, "cannot write the archive: %s", strerror(errno));
  return DX_OK;
}

dx_status dx_zip_write_files(const char *dest, const dx_zip_source *src, int n, const dx_zip_write_params *p,
                             uint64_t *size_out, dx_errbuf *err) {
  dx_zip_write_params dp = p ? *p : dx_zip_write_default_params();
  if (!dest || !*dest || !src || n < 1 || n > 65535)
    return dx_fail(err, DX_ERR_INVALID, "an archive needs from 1 to 65535 entries");
  for (int i = 0; i < n; i++) {
    if (!name_valid(src[i].name) || !src[i].path)
      return dx_fail(err, DX_ERR_INVALID, "bad archive entry name \"%s\"", src[i].name ? src[i].name : "");
    for (int j = 0; j < i; j++)
      if (!strcmp(src[i].name, src[j].name))
        return dx_fail(err, DX_ERR_INVALID, "duplicate archive entry %s", src[i].name);
  }
  const char *slash = strrchr(dest, '/');
  size_t dirlen = slash ? (size_t)(slash - dest) + 1 : 0;
  size_t tn = strlen(dest) + 64;
  char *tmp = malloc(tn);
  entry *ents = calloc((size_t)n, sizeof *ents);
  unsigned char *buf = malloc(COPY_BUF);
  if (!tmp || !ents || !buf) {
    free(tmp);
    free(ents);
    free(buf);
    return DX_ERR_NOMEM;
  }
  /* the temporary is hidden: .NAME.tmp.<pid>.<n> beside NAME */
  char *hidden = (char *)buf;
  int hn = snprintf(hidden, COPY_BUF, "%.*s.%s", (int)dirlen, dest, dest + dirlen);
  if (hn < 0 || (size_t)hn >= COPY_BUF || dx_tmp_path(tmp, tn, hidden) >= (int)tn) {
    free(tmp);
    free(ents);
    free(buf);
    return dx_fail(err, DX_ERR_INVALID, "archive path too long");
  }
  dx_status st = DX_OK;
  FILE *z = fopen(tmp, "wb");
  if (!z) st = dx_fail(err, DX_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
  unsigned t = 0, d = 0;
  dos_time(&t, &d);
  for (int i = 0; st == DX_OK && i < n; i++) st = add_entry(z, &src[i], &ents[i], dp.force_zip64, t, d, buf, err);
  if (st == DX_OK) st = finish(z, ents, n, dp.force_zip64, t, d, err);
  off_t total = st == DX_OK ? ftello(z) : 0;
  if (z) {
    if (st == DX_OK && (fflush(z) != 0 || fsync(fileno(z)) != 0))
      st = dx_fail(err, DX_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (fclose(z) != 0 && st == DX_OK) st = dx_fail(err, DX_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (st == DX_OK && rename(tmp, dest) != 0)
      st = dx_fail(err, DX_ERR_IO, "cannot rename %s into place: %s", dest, strerror(errno));
    if (st != DX_OK) unlink(tmp);
  }
  if (st == DX_OK && size_out) *size_out = (uint64_t)total;
  free(tmp);
  free(ents);
  free(buf);
  return st;
}
