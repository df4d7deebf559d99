/* job_probe.c: the `probe` job: re-read a track's audio file and refresh the
 * facts stored about it (duration, sample_rate, channels, frames, format,
 * file_size).
 *
 * Params: none (the job's track_id names the track). Result:
 *   {"duration": s, "sample_rate": hz, "channels": n, "frames": n, "format": "wav"}
 * A missing, unreadable or damaged file fails the job at once (no retry) and
 * leaves the track row untouched; database errors are retried.
 * Threading: runs on a worker thread with the worker's own connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dx_audio.h"
#include "dx_job_runner.h"

/* Relative, no "..", no empty path: file_path always lives under storage_dir. */
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

dx_status dx_job_probe(dx_job_ctx *ctx, dx_errbuf *err) {
  const dx_job *job = ctx->job;
  if (!job->track_id[0]) {
    dx_job_set_retryable(ctx, 0);
    return dx_fail(err, DX_ERR_INVALID, "probe job has no track");
  }
  MYSQL_RES *res = NULL;
  dx_status st = dx_db_query(ctx->db, &res, err, "SELECT file_path FROM tracks WHERE id = %s", job->track_id);
  if (st != DX_OK) return st; /* database trouble: retried */
  MYSQL_ROW row = mysql_fetch_row(res);
  char rel[1100] = "";
  int found = row && row[0];
  if (found) snprintf(rel, sizeof rel, "%s", row[0]);
  mysql_free_result(res);
  dx_job_set_retryable(ctx, 0); /* from here on, every failure is about the track or its file */
  if (!found) return dx_fail(err, DX_ERR_NOT_FOUND, "track %s does not exist", job->track_id);
  if (!rel_path_ok(rel)) return dx_fail(err, DX_ERR_INVALID, "track %s has a bad file path", job->track_id);

  char path[DX_CONFIG_STR + 1200];
  snprintf(path, sizeof path, "%s/%s", ctx->cfg->storage_dir, rel);
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) return dx_fail(err, DX_ERR_NOT_FOUND, "audio file %s is missing", rel);
    return dx_fail(err, DX_ERR_IO, "cannot read audio file %s: %s", rel, strerror(errno));
  }
  if (!S_ISREG(sb.st_mode)) return dx_fail(err, DX_ERR_CORRUPT, "audio file %s is not a regular file", rel);
  if ((st = dx_job_progress(ctx, 10)) != DX_OK) return st;

  dx_audio_info info;
  dx_errbuf aerr = {{0}};
  st = dx_audio_probe(path, &info, &aerr);
  if (st != DX_OK) {
    /* Keep the detail unless it names the storage folder (not for users' eyes). */
    int show = aerr.msg[0] && !strstr(aerr.msg, ctx->cfg->storage_dir);
    return dx_fail(err, st, "audio file %s cannot be read: %s%s%s", rel, dx_strerror(st), show ? ": " : "",
                   show ? aerr.msg : "");
  }
  if ((st = dx_job_progress(ctx, 80)) != DX_OK) return st;

  dx_job_set_retryable(ctx, 1); /* the update is database work again */
  uint64_t n = 0;
  st = dx_db_exec(ctx->db, &n, err,
                  "UPDATE tracks SET duration = %f, sample_rate = %d, channels = %d, frames = %lld, format = %s,"
                  " file_size = %lld WHERE id = %s",
                  info.duration, info.samplerate, info.channels, (long long)info.frames, info.format,
                  (long long)sb.st_size, job->track_id);
  if (st != DX_OK) return st;
  if (n == 0) {
    dx_job_set_retryable(ctx, 0);
    return dx_fail(err, DX_ERR_NOT_FOUND, "track %s was deleted while probing", job->track_id);
  }

  json_object *r = json_object_new_object();
  if (!r) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  json_object_object_add(r, "duration", json_object_new_double(info.duration));
  json_object_object_add(r, "sample_rate", json_object_new_int(info.samplerate));
  json_object_object_add(r, "channels", json_object_new_int(info.channels));
  json_object_object_add(r, "frames", json_object_new_int64((int64_t)info.frames));
  json_object_object_add(r, "format", json_object_new_string(info.format));
  dx_job_set_result(ctx, r);
  return DX_OK;
}
