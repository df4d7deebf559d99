/* job_separate.c: the `separate` job: split a track into stems with a named
 * model and store them.
 *
 * Params: {"model": "htdemucs", "shifts": 1, "overlap": 0.25, "seed": 0,
 * "two_stems": "vocals", "format": "wav"} (all but model optional; format:
 * wav (16-bit PCM, the official tool's default), flac (16-bit) or mp3
 * (320 kbps, as the official --mp3)). The model comes from a
 * process-wide cache of warm separators (dx_separator_acquire, keyed by name
 * and the checkpoint files' mtimes), so consecutive jobs do not reload it.
 * Progress is reported per chunk. Stems are written to
 * storage_dir/stems/<job_id>/<stem>.<format> (temporary name, then rename), each
 * file's size and CRC-32 taken, then their rows go into `stems` and
 * `stem_archives` in one transaction. The archive row announces the ZIP of
 * exactly those files (entries <model>/<stem>.<format>) that demix-fcgi composes
 * as it sends it (dx_zip_stream): its size is exact, and no second copy of
 * the stems is stored; its file_path, stems/<job_id>/stems.zip, names where
 * it is served. Result:
 *   {"model": m, "stems": [{"id","stem","format","size","duration","file_path"}],
 *    "archive": {"file_path", "size", "entries"}}
 * A missing or damaged checkpoint, an unknown model, a missing track or a bad
 * audio file fail the job at once with a readable error; database and device
 * errors are retried.
 * Threading: runs on a worker thread with the worker's connection and backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_audio.h"
#include "dx_job_runner.h"
#include "dx_separate.h"
#include "dx_util.h"
#include "dx_zip_writer.h"

typedef struct {
  dx_job_ctx *ctx;
  int cancelled;
} prog;

static int on_progress(void *user, size_t done, size_t total) {
  prog *p = user;
  int pct = 5 + (int)(85.0 * (double)done / (double)(total ? total : 1));
  if (dx_job_progress(p->ctx, pct) == DX_ERR_CANCELLED) {
    p->cancelled = 1;
    return 1;
  }
  return 0;
}

static const char *param_str(json_object *o, const char *key, const char *def) {
  json_object *v;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                           : def;
}

static double param_num(json_object *o, const char *key, double def) {
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v)) return def;
  if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) return json_object_get_double(v);
  return def;
}

/* The archive the job's stem files (paths) make: each file's size and
 * CRC-32 into m (names in names), and the archive's size. */
static dx_status measure_archive(const char *model, const dx_stems *st, char (*paths)[1024], dx_zip_member *m,
                                 char (*names)[160], uint64_t *size, dx_errbuf *err) {
  for (int k = 0; k < st->n; k++) {
    const char *ext = strrchr(paths[k], '.');
    snprintf(names[k], sizeof names[k], "%s/%s%s", model, st->names[k], ext ? ext : "");
    m[k].name = names[k];
    m[k].path = paths[k];
    dx_status rc = dx_zip_file_crc(paths[k], &m[k].crc, &m[k].size, err);
    if (rc != DX_OK) return rc;
  }
  dx_status rc = dx_zip_check(m, st->n, err);
  if (rc != DX_OK) return DX_ERR_INTERNAL; /* names come from the model: a bug, not a bad request */
  *size = dx_zip_size(m, st->n, 0);
  return DX_OK;
}

/* Insert the stem rows and the archive row (replacing those of an earlier
 * attempt) in one transaction. */
static dx_status store_rows(dx_job_ctx *ctx, const char *model, const char *format, const dx_stems *st,
                            char (*paths)[1024], const dx_zip_member *m, const char *zip_rel, uint64_t zip_size, json_object *list,
                            dx_errbuf *err) {
  const dx_job *job = ctx->job;
  dx_status rc = dx_db_begin(ctx->db, err);
  if (rc != DX_OK) return rc;
  rc = dx_db_exec(ctx->db, NULL, err, "DELETE FROM stems WHERE job_id = %s", job->id);
  if (rc == DX_OK) rc = dx_db_exec(ctx->db, NULL, err, "DELETE FROM stem_archives WHERE job_id = %s", job->id);
  double duration = (double)st->frames / (double)st->samplerate;
  size_t base = strlen(ctx->cfg->storage_dir) + 1;
  if (rc == DX_OK)
    rc = dx_db_exec(ctx->db, NULL, err,
                    "INSERT INTO stem_archives (job_id, track_id, user_id, model, entries, size, file_path)"
                    " VALUES (%s, %s, %s, %s, %d, %lld, %s)",
                    job->id, job->track_id, job->user_id, model, st->n, (long long)zip_size, zip_rel);
  for (int k = 0; k < st->n && rc == DX_OK; k++) {
    char id[DX_UUID_LEN];
    long long size = (long long)m[k].size;
    const char *rel = paths[k] + base;
    if ((rc = dx_uuid(id)) != DX_OK) break;
    rc = dx_db_exec(ctx->db, NULL, err,
                    "INSERT INTO stems (id, job_id, track_id, user_id, model, stem, format, size, crc32, duration,"
                    " file_path) VALUES (%s, %s, %s, %s, %s, %s, %s, %lld, %lld, %f, %s)",
                    id, job->id, job->track_id, job->user_id, model, st->names[k], format, size, (long long)m[k].crc,
                    duration, rel);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "stem", json_object_new_string(st->names[k]));
    json_object_object_add(o, "format", json_object_new_string(format));
    json_object_object_add(o, "size", json_object_new_int64(size));
    json_object_object_add(o, "duration", json_object_new_double(duration));
    json_object_object_add(o, "file_path", json_object_new_string(rel));
    json_object_array_add(list, o);
  }
  if (rc == DX_OK) return dx_db_commit(ctx->db, err);
  dx_db_rollback(ctx->db);
  return rc;
}

dx_status dx_job_separate(dx_job_ctx *ctx, dx_errbuf *err) {
  const dx_job *job = ctx->job;
  const char *model = param_str(ctx->params, "model", "htdemucs");
  if (!job->track_id[0]) {
    dx_job_set_retryable(ctx, 0);
    return dx_fail(err, DX_ERR_INVALID, "separate job has no track");
  }
  /* past the lookup, track, file and model problems do not get better by retrying */
  char rel[DX_JOB_REL_MAX], path[DX_JOB_PATH_MAX];
  dx_status st = dx_job_track_path(ctx, rel, path, err);
  if (st != DX_OK) return st;
  /* stricter than the lookup: no ".." anywhere in the name */
  if (strstr(rel, "..")) return dx_fail(err, DX_ERR_INVALID, "track %s has a bad file path", job->track_id);

  dx_separator *sep = NULL;
  if ((st = dx_separator_acquire(ctx->cfg->model_dir, model, &sep, err)) != DX_OK) return st;
  if ((st = dx_job_progress(ctx, 2)) != DX_OK) {
    dx_separator_release(sep);
    return st;
  }

  const char *format = param_str(ctx->params, "format", "wav");
  dx_audio_encoding enc = !strcmp(format, "flac") ? DX_ENC_FLAC : !strcmp(format, "mp3") ? DX_ENC_MP3 : DX_ENC_WAV_PCM16;
  if (strcmp(format, dx_audio_encoding_ext(enc))) {
    dx_separator_release(sep);
    dx_job_set_retryable(ctx, 0);
    return dx_fail(err, DX_ERR_INVALID, "unknown stem format %s (wav, flac, mp3)", format);
  }
  dx_separate_params p = dx_separate_default_params();
  p.shifts = (int)param_num(ctx->params, "shifts", 1);
  p.overlap = param_num(ctx->params, "overlap", 0.25);
  p.seed = (uint64_t)param_num(ctx->params, "seed", 0);
  p.two_stems = param_str(ctx->params, "two_stems", NULL);
  prog pr = {ctx, 0};
  p.progress = on_progress;
  p.progress_user = &pr;
  dx_stems stems = {0};
  dx_backend *bes[1] = {ctx->backend};
  char dir[DX_CONFIG_STR + 64];
  snprintf(dir, sizeof dir, "%s/stems/%s", ctx->cfg->storage_dir, job->id);
  char paths[DX_STEMS_MAX][1024], names[DX_STEMS_MAX][160];
  dx_zip_member members[DX_STEMS_MAX];
  char zip_rel[DX_UUID_LEN + 32];
  snprintf(zip_rel, sizeof zip_rel, "stems/%s/stems.zip", job->id);
  uint64_t zip_size = 0;
  dx_job_set_retryable(ctx, -1); /* device and memory failures may pass */
  /* streamed from the track file straight into the stem files (bounded memory) */
  st = dx_separator_run_file(sep, bes, path, ctx->cfg->max_track_seconds, &p, dir, enc, &stems, paths, err);
  dx_separator_release(sep);
  if (pr.cancelled) {
    dx_rmtree(dir);
    return DX_ERR_CANCELLED;
  }
  if (st != DX_OK) {
    dx_rmtree(dir);
    if (st == DX_ERR_INVALID || st == DX_ERR_NOT_FOUND || st == DX_ERR_UNSUPPORTED || st == DX_ERR_CORRUPT ||
        st == DX_ERR_EMPTY || st == DX_ERR_TOO_LONG)
      dx_job_set_retryable(ctx, 0); /* a bad file does not get better by retrying */
    return st;
  }
  st = dx_job_progress(ctx, 95);
  if (st == DX_OK) st = measure_archive(model, &stems, paths, members, names, &zip_size, err);
  if (st == DX_OK) {
    json_object *list = json_object_new_array();
    st = store_rows(ctx, model, format, &stems, paths, members, zip_rel, zip_size, list, err);
    if (st == DX_OK) {
      json_object *result = json_object_new_object();
      json_object *arch = json_object_new_object();
      json_object_object_add(arch, "file_path", json_object_new_string(zip_rel));
      json_object_object_add(arch, "size", json_object_new_int64((int64_t)zip_size));
      json_object_object_add(arch, "entries", json_object_new_int(stems.n));
      json_object_object_add(result, "model", json_object_new_string(model));
      json_object_object_add(result, "stems", list);
      json_object_object_add(result, "archive", arch);
      dx_job_set_result(ctx, result);
    } else {
      json_object_put(list);
    }
  }
  if (st != DX_OK) dx_rmtree(dir);
  dx_stems_free(&stems);
  return st;
}
