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

dx_status dx_job_probe(dx_job_ctx *ctx, dx_errbuf *err) {
  const dx_job *job = ctx->job;
  if (!job->track_id[0]) {
    dx_job_set_retryable(ctx, 0);
    return dx_fail(err, DX_ERR_INVALID, "probe job has no track");
  }
  /* database trouble is retried; from then on, every failure is about the track or its file */
  char rel[DX_JOB_REL_MAX], path[DX_JOB_PATH_MAX];
  dx_status st = dx_job_track_path(ctx, rel, path, err);
  if (st != DX_OK) return st;

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
