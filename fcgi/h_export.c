/* h_export.c: stem downloads.
 *   GET /export/stem/:id         one stem file: authorised here, its bytes
 *                                sent by nginx (X-Accel-Redirect to /_storage/)
 *   GET /export/stems/:track_id  the ZIP of the track's newest completed
 *                                separation job that the caller may see (their
 *                                own jobs; an admin's: anyone's), entries
 *                                <model>/<stem>.wav; 404 when none.
 * The ZIP of a job's stems (also /files/stems/<job_id>/stems.zip, h_files.c)
 * is composed as it is sent (dx_send_stems_archive): stored entries of the
 * stem files' own bytes, with the sizes and CRCs the engine recorded, so
 * its length is known up front and nothing but the stems is kept on disk.
 * Jobs from before that (schema 006) kept a stems.zip, which is sent as is.
 * One request at a time per worker process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dx_fcgi.h"
#include "dx_zip_writer.h"

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

/* What the body of a composed archive needs after the handler returned. */
typedef struct {
  dx_zip_member *m;
  int n;
  time_t mtime;
  const char *job_id;
} archive_body;

typedef struct {
  dx_write_fn write_fn;
  void *write_ctx;
} archive_out;

static int archive_write(void *ctx, const void *buf, size_t n) {
  archive_out *o = ctx;
  return o->write_fn(o->write_ctx, buf, n);
}

static int send_archive_body(void *body_ctx, dx_write_fn write_fn, void *write_ctx) {
  archive_body *b = body_ctx;
  archive_out o = {write_fn, write_ctx};
  dx_errbuf err = {{0}};
  dx_status st = dx_zip_stream(b->m, b->n, 0, b->mtime, archive_write, &o, &err);
  if (st != DX_OK) DX_WARN("stems archive of job %s cut short: %s", b->job_id, err.msg[0] ? err.msg : dx_strerror(st));
  return st != DX_OK;
}

dx_status dx_send_stems_archive(dx_req *r, const char *job_id, const char *download_name) {
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err, "SELECT file_path, model FROM stem_archives WHERE job_id = %s",
                             job_id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row || !rel_ok(row[0])) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "the stems archive is missing");
  const char *model = name_ok(row[1]) ? row[1] : "stems";
  if (download_name)
    dx_resp_header(r, "Content-Disposition", dx_pool_printf(r->pool, "attachment; filename=\"%s\"", download_name));
  char full[1600];
  struct stat sb;
  snprintf(full, sizeof full, "%s/%s", r->cfg->storage_dir, row[0]);
  if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode)) { /* an older job's stored archive */
    dx_resp_header(r, "X-Accel-Redirect", dx_pool_printf(r->pool, "/_storage/%s", row[0]));
    return dx_resp_empty(r, 200);
  }
  /* composed from the stem files, in the order of their names */
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT stem, file_path, size, crc32 FROM stems WHERE job_id = %s ORDER BY stem", job_id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  int n = (int)mysql_num_rows(res);
  archive_body *b = dx_pool_calloc(r->pool, sizeof *b);
  if (b) b->m = dx_pool_calloc(r->pool, (size_t)(n ? n : 1) * sizeof *b->m);
  if (!b || !b->m) return DX_ERR_NOMEM;
  b->job_id = dx_pool_strdup(r->pool, job_id);
  while ((row = mysql_fetch_row(res))) {
    dx_zip_member *e = &b->m[b->n];
    const char *ext = rel_ok(row[1]) ? strrchr(row[1], '.') : NULL;
    char *path = dx_pool_printf(r->pool, "%s/%s", r->cfg->storage_dir, row[1]);
    e->name = dx_pool_printf(r->pool, "%s/%s%s", model, row[0], ext ? ext : "");
    e->path = path;
    if (!e->name || !path) return DX_ERR_NOMEM;
    if (!ext || stat(path, &sb) || !S_ISREG(sb.st_mode) || (unsigned long long)sb.st_size != strtoull(row[2], NULL, 10))
      return dx_fail(&r->err, DX_ERR_NOT_FOUND, "a stem file of this archive is missing");
    e->size = (uint64_t)sb.st_size;
    if (row[3]) {
      e->crc = (uint32_t)strtoul(row[3], NULL, 10);
    } else if ((st = dx_zip_file_crc(path, &e->crc, &e->size, &r->err)) != DX_OK) {
      return st; /* a stem recorded before CRCs were */
    }
    if (sb.st_mtime > b->mtime) b->mtime = sb.st_mtime;
    b->n++;
  }
  if (b->n == 0) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "the stems archive is missing");
  if (dx_zip_check(b->m, b->n, &r->err) != DX_OK) return DX_ERR_INTERNAL;
  dx_resp_header(r, "Cache-Control", "private, max-age=0");
  dx_resp_header(r, "X-Content-Type-Options", "nosniff");
  return dx_resp_stream(r, 200, "application/zip", dx_zip_size(b->m, b->n, 0), send_archive_body, b);
}

dx_status dx_h_export_stems(dx_req *r) {
  const char *track_id = dx_req_param(r, "track_id");
  dx_status st = dx_track_visible(r, track_id);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT a.job_id, a.model FROM stem_archives a JOIN jobs j ON j.id = a.job_id "
                   "WHERE a.track_id = %s AND j.status = 'completed' AND (%d OR a.user_id = %s) "
                   "ORDER BY j.finished_at DESC, a.created_at DESC, a.job_id LIMIT 1",
                   track_id, r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "this track has no completed separation with a stems archive yet");
  const char *model = name_ok(row[1]) ? row[1] : "stems";
  return dx_send_stems_archive(r, row[0], dx_pool_printf(r->pool, "%s-%s.zip", model, track_id));
}
