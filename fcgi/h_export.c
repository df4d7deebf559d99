/* h_export.c: stem downloads; both only authorise and hand the bytes to
 * nginx (X-Accel-Redirect to /_storage/).
 *   GET /export/stem/:id         one stem file
 *   GET /export/stems/:track_id  the ZIP of the track's newest completed
 *                                separation job that the caller may see (their
 *                                own jobs; an admin's: anyone's), entries
 *                                <model>/<stem>.wav. The engine wrote it with
 *                                the stems (stem_archives); 404 when none.
 * One request at a time per worker process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

dx_status dx_h_export_stems(dx_req *r) {
  const char *track_id = dx_req_param(r, "track_id");
  dx_status st = dx_track_visible(r, track_id);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT a.file_path, a.model FROM stem_archives a JOIN jobs j ON j.id = a.job_id "
                   "WHERE a.track_id = %s AND j.status = 'completed' AND (%d OR a.user_id = %s) "
                   "ORDER BY j.finished_at DESC, a.created_at DESC, a.job_id LIMIT 1",
                   track_id, r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "this track has no completed separation with a stems archive yet");
  if (!rel_ok(row[0])) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "the stems archive is missing");
  char full[1600];
  struct stat sb;
  snprintf(full, sizeof full, "%s/%s", r->cfg->storage_dir, row[0]);
  if (stat(full, &sb) || !S_ISREG(sb.st_mode)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "the stems archive is missing");
  const char *model = name_ok(row[1]) ? row[1] : "stems";
  dx_resp_header(r, "Content-Disposition",
                 dx_pool_printf(r->pool, "attachment; filename=\"%s-%s.zip\"", model, track_id));
  dx_resp_header(r, "X-Accel-Redirect", dx_pool_printf(r->pool, "/_storage/%s", row[0]));
  return dx_resp_empty(r, 200);
}
