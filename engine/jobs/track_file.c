/* track_file.c: where the file of a job's track lives, for the handlers of
 * job types that read a track (probe, analyze, separate; see
 * dx_job_runner.h).
 * Threading: runs on the handler's thread with the worker's connection. */
#include <stdio.h>
#include <string.h>

#include "dx_job_runner.h"

/* Relative, no ".." component, not empty: file_path always lives under storage_dir. */
static int rel_path_ok(const char *p) {
  if (!p || !*p || p[0] == '/') return 0;
  for (const char *s = p; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
    if (!e) break;
    s = e + 1;
  }
  return 1;
}

dx_status dx_job_track_path(dx_job_ctx *ctx, char rel[DX_JOB_REL_MAX], char path[DX_JOB_PATH_MAX], dx_errbuf *err) {
  const dx_job *job = ctx->job;
  MYSQL_RES *res = NULL;
  dx_status st = dx_db_query(ctx->db, &res, err, "SELECT file_path FROM tracks WHERE id = %s", job->track_id);
  if (st != DX_OK) return st; /* database trouble: retried */
  MYSQL_ROW row = mysql_fetch_row(res);
  rel[0] = '\0';
  int found = row && row[0];
  if (found) snprintf(rel, DX_JOB_REL_MAX, "%s", row[0]);
  mysql_free_result(res);
  dx_job_set_retryable(ctx, 0); /* from here on: the track's own problems */
  if (!found) return dx_fail(err, DX_ERR_NOT_FOUND, "track %s does not exist", job->track_id);
  if (!rel_path_ok(rel)) return dx_fail(err, DX_ERR_INVALID, "track %s has a bad file path", job->track_id);
  snprintf(path, DX_JOB_PATH_MAX, "%s/%s", ctx->cfg->storage_dir, rel);
  return DX_OK;
}
