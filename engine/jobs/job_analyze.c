/* job_analyze.c: the `analyze` job: decode a track's audio file, run the
 * analysis pipeline on the worker's backend, store the result in table
 * analyses (schema/003_analysis.sql) and fill tracks.bpm / musical_key
 * where the user has not set them (bpm_source / key_source <> 'user').
 *
 * Params: {"features": ["tempo", "key", ...]} (names of dx_analysis.h's
 * groups or "all"; a comma-separated string is accepted too; default all).
 * Result: the analysis document plus "analysis_id".
 * A missing, unreadable, empty, silent or over-long file and unknown
 * feature names fail the job at once (no retry) and store nothing;
 * database and device errors are retried. The analysis row and the track
 * update are one transaction.
 * Threading: runs on a worker thread with the worker's connection and
 * backend; the analyzer (plans, buffers) lives in the backend's cache slot
 * (dx_analyzer_cached): made by the worker's first analysis, reused by the
 * next ones, and made again when the runner reopens the backend. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dx_analysis.h"
#include "dx_job_runner.h"

/* The requested groups from params.features (array of names or a string). */
static dx_status parse_features(json_object *params, unsigned *mask, dx_errbuf *err) {
  json_object *v = NULL;
  *mask = 0;
  if (!params || !json_object_object_get_ex(params, "features", &v) || !v) {
    *mask = DX_AF_ALL;
    return DX_OK;
  }
  if (json_object_is_type(v, json_type_string)) return dx_analysis_features_parse(json_object_get_string(v), mask, err);
  if (!json_object_is_type(v, json_type_array)) return dx_fail(err, DX_ERR_INVALID, "features must be a list of names");
  size_t n = json_object_array_length(v);
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(v, i);
    if (!json_object_is_type(e, json_type_string)) return dx_fail(err, DX_ERR_INVALID, "features must be names");
    dx_status st = dx_analysis_feature_add(json_object_get_string(e), mask, err);
    if (st != DX_OK) return st;
  }
  if (!*mask) *mask = DX_AF_ALL;
  return DX_OK;
}

typedef struct {
  dx_job_ctx *ctx;
} progress_state;

/* Pipeline progress 0-100 maps to job progress 5-90. */
static dx_status on_progress(void *ud, int pct) {
  progress_state *p = ud;
  return dx_job_progress(p->ctx, 5 + pct * 85 / 100);
}

static dx_status store(dx_job_ctx *ctx, const dx_analysis_result *r, json_object *doc, unsigned mask,
                       char id[DX_UUID_LEN], dx_errbuf *err) {
  const dx_job *job = ctx->job;
  json_object *groups = NULL;
  json_object_object_get_ex(doc, "feature_groups", &groups);
  const char *features = groups ? json_object_to_json_string_ext(groups, JSON_C_TO_STRING_PLAIN) : "[]";
  const char *result = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  dx_status st = dx_uuid(id);
  if (st != DX_OK) return dx_fail(err, st, "cannot make an id");
  if ((st = dx_db_begin(ctx->db, err)) != DX_OK) return st;
  st = dx_db_exec(ctx->db, NULL, err,
                  "INSERT INTO analyses (id, track_id, job_id, features, result) VALUES (%s, %s, %s, %s, %s)", id,
                  job->track_id, job->id, features, result);
  if (st == DX_OK && (mask & DX_AF_TEMPO) && r->tempo > 0)
    st = dx_db_exec(ctx->db, NULL, err,
                    "UPDATE tracks SET bpm = %f, bpm_source = 'analysis' WHERE id = %s"
                    " AND (bpm_source IS NULL OR bpm_source <> 'user')",
                    round(r->tempo * 100) / 100, job->track_id);
  if (st == DX_OK && (mask & DX_AF_KEY) && r->key_index >= 0)
    st = dx_db_exec(ctx->db, NULL, err,
                    "UPDATE tracks SET musical_key = %s, key_source = 'analysis' WHERE id = %s"
                    " AND (key_source IS NULL OR key_source <> 'user')",
                    r->key, job->track_id);
  if (st == DX_OK) st = dx_db_commit(ctx->db, err);
  if (st != DX_OK) dx_db_rollback(ctx->db);
  return st;
}

dx_status dx_job_analyze(dx_job_ctx *ctx, dx_errbuf *err) {
  const dx_job *job = ctx->job;
  unsigned mask = 0;
  if (!job->track_id[0]) {
    dx_job_set_retryable(ctx, 0);
    return dx_fail(err, DX_ERR_INVALID, "analyze job has no track");
  }
  dx_status st = parse_features(ctx->params, &mask, err);
  if (st != DX_OK) {
    dx_job_set_retryable(ctx, 0);
    return st;
  }
  /* not retryable from the lookup until the database work: the track's own problems */
  char rel[DX_JOB_REL_MAX], path[DX_JOB_PATH_MAX];
  if ((st = dx_job_track_path(ctx, rel, path, err)) != DX_OK) return st;
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) return dx_fail(err, DX_ERR_NOT_FOUND, "audio file %s is missing", rel);
    dx_job_set_retryable(ctx, 1);
    return dx_fail(err, DX_ERR_IO, "cannot read audio file %s: %s", rel, strerror(errno));
  }
  if ((st = dx_job_progress(ctx, 2)) != DX_OK) return st;

  dx_analysis_params ap;
  dx_analysis_default_params(&ap);
  ap.max_seconds = ctx->cfg->max_track_seconds;
  /* long tracks' analysis signal waits on the storage disk, not in /tmp (often RAM) */
  snprintf(ap.scratch_dir, sizeof ap.scratch_dir, "%s/tmp", ctx->cfg->storage_dir);
  if (dx_mkdirs(ap.scratch_dir) != DX_OK) {
    dx_job_set_retryable(ctx, 1);
    return dx_fail(err, DX_ERR_IO, "cannot create the scratch folder %s", ap.scratch_dir);
  }
  dx_analyzer *an = NULL;
  dx_errbuf aerr = {{0}};
  if ((st = dx_analyzer_cached(ctx->backend, &ap, &an, &aerr)) != DX_OK) {
    dx_job_set_retryable(ctx, -1);
    return dx_fail(err, st, "cannot start the analysis: %s", aerr.msg);
  }
  progress_state ps = {ctx};
  dx_analysis_result r;
  st = dx_analyzer_run_file(an, path, mask, on_progress, &ps, &r, &aerr);
  if (st == DX_ERR_CANCELLED) {
    dx_analysis_result_free(&r);
    return st;
  }
  if (st != DX_OK) {
    dx_analysis_result_free(&r);
    /* device, memory and I/O trouble is worth a retry; the file's own problems are not */
    int transient = dx_job_status_retryable(st) && st != DX_ERR_IO;
    dx_job_set_retryable(ctx, transient);
    int show = aerr.msg[0] && !strstr(aerr.msg, ctx->cfg->storage_dir);
    return dx_fail(err, st, "analysis of %s failed: %s%s%s", rel, dx_strerror(st), show ? ": " : "",
                   show ? aerr.msg : "");
  }
  if ((st = dx_job_progress(ctx, 92)) != DX_OK) {
    dx_analysis_result_free(&r);
    return st;
  }
  json_object *doc = dx_analysis_result_json(&r);
  dx_job_set_retryable(ctx, 1); /* database work again */
  char id[DX_UUID_LEN];
  st = doc ? store(ctx, &r, doc, mask, id, err) : dx_fail(err, DX_ERR_NOMEM, "out of memory");
  dx_analysis_result_free(&r);
  if (st != DX_OK) {
    json_object_put(doc);
    return st;
  }
  json_object_object_add(doc, "analysis_id", json_object_new_string(id));
  dx_job_set_result(ctx, doc);
  return DX_OK;
}
