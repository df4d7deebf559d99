/* h_files.c: GET /files/<path>: checks that the caller may see the file and
 * hands the transfer to nginx with X-Accel-Redirect: /_storage/<path> (an
 * internal location aliased to storage_dir). Paths are relative to
 * storage_dir; `..`, empty segments, absolute paths and unusual characters
 * are refused. Two kinds of path:
 *   tracks/<track_id>/<file>  a track's files: the caller may see the track
 *   stems/<job_id>/<file>     a separation's stem or its stems.zip: the path
 *                             is exactly the file_path of a row in `stems` or
 *                             `stem_archives` that the caller owns (admins:
 *                             any), so temporary files are never served; the
 *                             archive is composed as it is sent
 *                             (dx_send_stems_archive)
 * One request at a time per worker process. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dx_fcgi.h"

static int path_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_' || c == '/';
}

/* 1 when p is a clean relative path: no leading '/', no empty segment, none
 * starting with '.' (so no "." or ".."), only [A-Za-z0-9._-/]. */
static int path_clean(const char *p) {
  if (!*p || *p == '/') return 0;
  const char *seg = p;
  for (const char *c = p;; c++) {
    if (*c == '/' || *c == 0) {
      size_t n = (size_t)(c - seg);
      if (n == 0 || seg[0] == '.') return 0; /* also ".", ".." and hidden temporary names */
      if (*c == 0) return 1;
      seg = c + 1;
    } else if (!path_char_ok(*c)) {
      return 0;
    }
  }
}

/* path is "<prefix><uuid>/<rest>": copies the uuid into id. */
static int split_id(const char *path, const char *prefix, char id[DX_UUID_LEN]) {
  size_t pl = strlen(prefix);
  if (strncmp(path, prefix, pl) != 0) return 0;
  const char *rest = path + pl, *slash = strchr(rest, '/');
  if (!slash || slash - rest != 36 || !slash[1]) return 0;
  memcpy(id, rest, 36);
  id[36] = 0;
  return dx_id_valid(id);
}

/* 1 when path is the file of a stem or stems archive of job_id the caller
 * owns (any for admins), 0 when not, -1 on a database error. */
static int stem_file_visible(dx_req *r, const char *job_id, const char *path) {
  MYSQL_RES *res;
  if (dx_db_query(r->db, &res, &r->err,
                  "SELECT 1 FROM stems WHERE job_id = %s AND file_path = %s AND (%d OR user_id = %s) "
                  "UNION ALL SELECT 1 FROM stem_archives WHERE job_id = %s AND file_path = %s AND (%d OR user_id = %s) "
                  "LIMIT 1",
                  job_id, path, r->user.admin, r->user.id, job_id, path, r->user.admin, r->user.id) != DX_OK)
    return -1;
  int found = mysql_fetch_row(res) != NULL;
  mysql_free_result(res);
  return found;
}

dx_status dx_h_files(dx_req *r) {
  const char *path = dx_req_param(r, "path");
  if (!path || strlen(path) > 1000 || !path_clean(path)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "file not found");
  char id[DX_UUID_LEN];
  if (split_id(path, "tracks/", id)) {
    dx_status st = dx_track_visible(r, id);
    if (st == DX_ERR_NOT_FOUND) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "file not found");
    if (st != DX_OK) return st;
  } else if (split_id(path, "stems/", id)) {
    int v = stem_file_visible(r, id, path);
    if (v < 0) return DX_ERR_DB;
    if (v == 0) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "file not found");
    size_t n = strlen(path);
    if (n > 10 && !strcmp(path + n - 10, "/stems.zip")) return dx_send_stems_archive(r, id, NULL);
  } else {
    return dx_fail(&r->err, DX_ERR_NOT_FOUND, "file not found");
  }
  char full[1600];
  struct stat sb;
  snprintf(full, sizeof full, "%s/%s", r->cfg->storage_dir, path);
  if (stat(full, &sb) || !S_ISREG(sb.st_mode)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "file not found");
  char *target = dx_pool_printf(r->pool, "/_storage/%s", path);
  if (!target) return DX_ERR_NOMEM;
  dx_resp_header(r, "X-Accel-Redirect", target);
  return dx_resp_empty(r, 200);
}
