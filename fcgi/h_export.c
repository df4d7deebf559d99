/* h_export.c: stem downloads.
 *   GET /export/stem/:id         one stem file (X-Accel-Redirect to /_storage/)
 *   GET /export/stems/:track_id  a ZIP of the track's stems, <model>/<stem>.wav,
 *                                the newest of each model and stem
 * The ZIP is written once by a small stored-entry writer into
 * storage_dir/exports/ (temporary name, then rename; the name carries a hash
 * of the stem ids, so new stems give a new file) and then served by nginx
 * like any stored file. Entries are stored uncompressed (WAV barely deflates);
 * archives over 4 GiB are refused (no ZIP64).
 * One request at a time per worker process. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "dx_fcgi.h"

static int rel_ok(const char *p) { return p && *p && p[0] != '/' && !strstr(p, "..") && !strstr(p, "//"); }

static int name_ok(const char *s) {
  if (!s || !*s || strlen(s) > 64) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
          *s == '-' || *s == '.'))
      return 0;
  return 1;
}

dx_status dx_h_export_stem(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  if (!id || !dx_id_valid(id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "stem not found");
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err,
                             "SELECT file_path, stem, model FROM stems WHERE id = %s AND (%d OR user_id = %s)", id,
                             r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row || !rel_ok(row[0])) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "stem not found");
  char full[1600];
  struct stat sb;
  snprintf(full, sizeof full, "%s/%s", r->cfg->storage_dir, row[0]);
  if (stat(full, &sb) || !S_ISREG(sb.st_mode)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "stem file is missing");
  const char *ext = strrchr(row[0], '.');
  if (name_ok(row[1]) && name_ok(row[2]))
    dx_resp_header(r, "Content-Disposition",
                   dx_pool_printf(r->pool, "attachment; filename=\"%s-%s%s\"", row[2], row[1], ext ? ext : ""));
  dx_resp_header(r, "X-Accel-Redirect", dx_pool_printf(r->pool, "/_storage/%s", row[0]));
  return dx_resp_empty(r, 200);
}

/* ---- a small ZIP writer (stored entries, no ZIP64) ---- */

typedef struct {
  char name[160];
  uint32_t crc, size, offset;
} zip_entry;

static void put16(unsigned char *p, unsigned v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
  put16(p, v & 0xffff);
  put16(p + 2, v >> 16);
}

static void dos_time(unsigned *t, unsigned *d) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  *t = (unsigned)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
  *d = (unsigned)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

/* Append one file as a stored entry; fills e->crc/size/offset. */
static dx_status zip_add(FILE *z, const char *src, zip_entry *e, unsigned t, unsigned d) {
  FILE *in = fopen(src, "rb");
  if (!in) return DX_ERR_IO;
  long off = ftell(z);
  size_t nl = strlen(e->name);
  unsigned char h[30];
  memset(h, 0, sizeof h);
  put32(h, 0x04034b50);
  put16(h + 4, 20);
  put16(h + 10, t);
  put16(h + 12, d);
  put16(h + 26, (unsigned)nl);
  if (off < 0 || fwrite(h, 1, 30, z) != 30 || fwrite(e->name, 1, nl, z) != nl) {
    fclose(in);
    return DX_ERR_IO;
  }
  unsigned char buf[1 << 16];
  uLong crc = crc32(0L, Z_NULL, 0);
  unsigned long long total = 0;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
    crc = crc32(crc, buf, (uInt)n);
    total += n;
    if (fwrite(buf, 1, n, z) != n) {
      fclose(in);
      return DX_ERR_IO;
    }
  }
  int rerr = ferror(in);
  fclose(in);
  if (rerr) return DX_ERR_IO;
  if (total >= 0xffffffffull || (unsigned long long)off + total >= 0xffffffffull) return DX_ERR_TOO_LARGE;
  e->crc = (uint32_t)crc;
  e->size = (uint32_t)total;
  e->offset = (uint32_t)off;
  /* patch CRC and sizes into the local header */
  unsigned char f[12];
  put32(f, e->crc);
  put32(f + 4, e->size);
  put32(f + 8, e->size);
  long end = ftell(z);
  if (fseek(z, off + 14, SEEK_SET) || fwrite(f, 1, 12, z) != 12 || fseek(z, end, SEEK_SET)) return DX_ERR_IO;
  return DX_OK;
}

static dx_status zip_finish(FILE *z, const zip_entry *e, int n, unsigned t, unsigned d) {
  long cd = ftell(z);
  if (cd < 0) return DX_ERR_IO;
  for (int i = 0; i < n; i++) {
    unsigned char h[46];
    size_t nl = strlen(e[i].name);
    memset(h, 0, sizeof h);
    put32(h, 0x02014b50);
    put16(h + 4, 20);
    put16(h + 6, 20);
    put16(h + 12, t);
    put16(h + 14, d);
    put32(h + 16, e[i].crc);
    put32(h + 20, e[i].size);
    put32(h + 24, e[i].size);
    put16(h + 28, (unsigned)nl);
    put32(h + 38, 0644u << 16);
    put32(h + 42, e[i].offset);
    if (fwrite(h, 1, 46, z) != 46 || fwrite(e[i].name, 1, nl, z) != nl) return DX_ERR_IO;
  }
  long end = ftell(z);
  if (end < 0 || (unsigned long long)end >= 0xffffffffull) return DX_ERR_TOO_LARGE;
  unsigned char eocd[22];
  memset(eocd, 0, sizeof eocd);
  put32(eocd, 0x06054b50);
  put16(eocd + 8, (unsigned)n);
  put16(eocd + 10, (unsigned)n);
  put32(eocd + 12, (uint32_t)(end - cd));
  put32(eocd + 16, (uint32_t)cd);
  return fwrite(eocd, 1, 22, z) == 22 ? DX_OK : DX_ERR_IO;
}

#define MAX_ZIP_STEMS 64

dx_status dx_h_export_stems(dx_req *r) {
  const char *track_id = dx_req_param(r, "track_id");
  dx_status st = dx_track_visible(r, track_id);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  /* newest first: the first row of each (model, stem) wins */
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT id, model, stem, file_path FROM stems WHERE track_id = %s AND (%d OR user_id = %s) "
                   "ORDER BY created_at DESC, id",
                   track_id, r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  zip_entry *ents = dx_pool_alloc(r->pool, MAX_ZIP_STEMS * sizeof *ents);
  const char **srcs = dx_pool_alloc(r->pool, MAX_ZIP_STEMS * sizeof *srcs);
  if (!ents || !srcs) return DX_ERR_NOMEM;
  int n = 0;
  char ids[MAX_ZIP_STEMS * 37 + 1] = "";
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) != NULL && n < MAX_ZIP_STEMS) {
    if (!name_ok(row[1]) || !name_ok(row[2]) || !rel_ok(row[3])) continue;
    const char *ext = strrchr(row[3], '.');
    char name[160];
    snprintf(name, sizeof name, "%s/%s%s", row[1], row[2], ext ? ext : "");
    int dup = 0;
    for (int i = 0; i < n; i++) dup |= !strcmp(ents[i].name, name);
    if (dup) continue;
    snprintf(ents[n].name, sizeof ents[n].name, "%s", name);
    srcs[n] = dx_pool_printf(r->pool, "%s/%s", r->cfg->storage_dir, row[3]);
    strcat(ids, row[0]);
    n++;
  }
  if (n == 0) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "this track has no stems yet");
  char hash[65];
  dx_sha256_hex(ids, strlen(ids), hash);
  const char *rel = dx_pool_printf(r->pool, "exports/stems-%s-%.16s.zip", track_id, hash);
  const char *dir = dx_pool_printf(r->pool, "%s/exports", r->cfg->storage_dir);
  const char *full = dx_pool_printf(r->pool, "%s/%s", r->cfg->storage_dir, rel);
  struct stat sb;
  if (stat(full, &sb) != 0) {
    if (dx_mkdirs(dir) != DX_OK) return dx_fail(&r->err, DX_ERR_IO, "cannot create the export folder");
    const char *tmp = dx_pool_printf(r->pool, "%s.tmp.%d", full, (int)getpid());
    FILE *z = fopen(tmp, "wb");
    if (!z) return dx_fail(&r->err, DX_ERR_IO, "cannot write the archive");
    dx_pool_unlink_on_cleanup(r->pool, tmp); /* a no-op once renamed */
    unsigned t, d;
    dos_time(&t, &d);
    for (int i = 0; i < n && st == DX_OK; i++) {
      st = zip_add(z, srcs[i], &ents[i], t, d);
      if (st == DX_ERR_IO && access(srcs[i], R_OK) != 0) st = DX_ERR_NOT_FOUND;
    }
    if (st == DX_OK) st = zip_finish(z, ents, n, t, d);
    if (fclose(z) != 0 && st == DX_OK) st = DX_ERR_IO;
    if (st == DX_OK && rename(tmp, full) != 0) st = DX_ERR_IO;
    if (st == DX_ERR_TOO_LARGE) return dx_fail(&r->err, st, "the stems of this track exceed 4 GiB; download them one by one");
    if (st == DX_ERR_NOT_FOUND) return dx_fail(&r->err, st, "a stem file is missing");
    if (st != DX_OK) return dx_fail(&r->err, DX_ERR_IO, "cannot write the archive");
  }
  dx_resp_header(r, "Content-Disposition", dx_pool_printf(r->pool, "attachment; filename=\"stems-%s.zip\"", track_id));
  dx_resp_header(r, "X-Accel-Redirect", dx_pool_printf(r->pool, "/_storage/%s", rel));
  return dx_resp_empty(r, 200);
}
