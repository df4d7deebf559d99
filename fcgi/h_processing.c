/* h_processing.c: stem separation routes.
 *   POST /api/processing/separate {track_id, model, engine, shifts?, overlap?, seed?, two_stems?, format?}
 *        -> 202 {"data": {job_id, track_id, model, format, status: "queued"}}
 *        format: wav (default), flac or mp3; with track_ids (up to 100)
 *        instead of track_id, one job per track with the same settings:
 *        -> 202 {"data": {"jobs": [{job_id, track_id, model, format, status}, ...]}}
 *   GET  /api/processing/job/:id -> {id, status, progress, model, format, stems, archive_url, error}
 *        each stem has url (/export/stem/<id>) and file_url
 *        (/files/stems/<job_id>/<stem>.<format>); archive_url is
 *        /files/stems/<job_id>/stems.zip once the job completed
 *   GET  /api/processing/models  -> {"models": [{name, description, stems, stem_names, installed}]}
 * A model whose weights are missing answers 422 MODEL_NOT_INSTALLED with the
 * command that fetches it; an unknown model 422 VALIDATION_ERROR; the
 * `lalalai` engine 501 NOT_IMPLEMENTED. A user sees their own jobs and
 * stems, an admin everyone's. One request at a time per worker process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_fcgi.h"
#include "dx_jobs.h"
#include "dx_registry.h"

static json_object *sources_json(const dx_registry_entry *e) {
  json_object *a = json_object_new_array();
  for (int k = 0; k < e->n_sources; k++) json_object_array_add(a, json_object_new_string(e->sources[k]));
  return a;
}

dx_status dx_h_processing_models(dx_req *r) {
  dx_registry_entry *v = NULL;
  int n = 0;
  dx_errbuf e;
  if (dx_registry_list(r->cfg->model_dir, &v, &n, &e) != DX_OK) return DX_ERR_INTERNAL;
  json_object *list = json_object_new_array();
  for (int i = 0; i < n; i++) {
    json_object *m = json_object_new_object();
    json_object_object_add(m, "name", json_object_new_string(v[i].name));
    json_object_object_add(m, "description", json_object_new_string(v[i].description));
    json_object_object_add(m, "stems", v[i].n_sources ? json_object_new_int(v[i].n_sources) : NULL);
    json_object_object_add(m, "stem_names", sources_json(&v[i]));
    json_object_object_add(m, "installed", json_object_new_boolean(v[i].installed));
    json_object_object_add(m, "engine", json_object_new_string("local"));
    json_object_array_add(list, m);
  }
  free(v);
  json_object *d = json_object_new_object();
  json_object_object_add(d, "models", list);
  return dx_resp_json(r, 200, d);
}

/* {"error", "code": "MODEL_NOT_INSTALLED", "details": {"model", "command"}} */
static dx_status not_installed(dx_req *r, const char *name) {
  char hint[128];
  dx_registry_fetch_hint(name, hint, sizeof hint);
  json_object *o = json_object_new_object();
  char msg[256];
  snprintf(msg, sizeof msg, "model %s is not installed; an operator can fetch it with: %s", name, hint);
  json_object_object_add(o, "error", json_object_new_string(msg));
  json_object_object_add(o, "code", json_object_new_string("MODEL_NOT_INSTALLED"));
  json_object *det = json_object_new_object();
  json_object_object_add(det, "model", json_object_new_string(name));
  json_object_object_add(det, "command", json_object_new_string(hint));
  json_object_object_add(o, "details", det);
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  dx_status st = dx_resp_raw(r, 422, "application/json", s, strlen(s));
  json_object_put(o);
  return st;
}

dx_status dx_h_processing_separate(dx_req *r) {
  json_object *v;
  const char *model = "htdemucs", *engine = "local", *two = NULL, *format = "wav";
  int shifts = 1;
  double overlap = 0.25;
  long long seed = 0;
  dx_track_ids t;
  dx_track_ids_parse(r, &t);
  if (json_object_object_get_ex(r->body, "model", &v) && !json_object_is_type(v, json_type_null)) {
    if (json_object_is_type(v, json_type_string))
      model = json_object_get_string(v);
    else
      dx_valid_add(r, "model", "must be a string");
  }
  if (json_object_object_get_ex(r->body, "engine", &v) && !json_object_is_type(v, json_type_null)) {
    if (!json_object_is_type(v, json_type_string) ||
        (strcmp(json_object_get_string(v), "local") && strcmp(json_object_get_string(v), "lalalai")))
      dx_valid_add(r, "engine", "must be one of local, lalalai");
    else
      engine = json_object_get_string(v);
  }
  if (json_object_object_get_ex(r->body, "shifts", &v) && !json_object_is_type(v, json_type_null)) {
    if (!json_object_is_type(v, json_type_int) || json_object_get_int(v) < 0 || json_object_get_int(v) > 10)
      dx_valid_add(r, "shifts", "must be an integer from 0 to 10");
    else
      shifts = json_object_get_int(v);
  }
  if (json_object_object_get_ex(r->body, "overlap", &v) && !json_object_is_type(v, json_type_null)) {
    double o = json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)
                   ? json_object_get_double(v) : -1;
    if (!(o >= 0 && o <= 0.9)) dx_valid_add(r, "overlap", "must be a number from 0 to 0.9");
    else overlap = o;
  }
  if (json_object_object_get_ex(r->body, "seed", &v) && !json_object_is_type(v, json_type_null)) {
    errno = 0;
    long long sd = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
    /* json-c saturates at INT64_MAX, and the params keep it as a JSON number: at most 2^53 */
    if (errno || sd < 0 || sd > (1LL << 53)) dx_valid_add(r, "seed", "must be an integer from 0 to 2^53");
    else seed = sd;
  }
  if (json_object_object_get_ex(r->body, "two_stems", &v) && !json_object_is_type(v, json_type_null)) {
    if (!json_object_is_type(v, json_type_string)) dx_valid_add(r, "two_stems", "must be a stem name");
    else two = json_object_get_string(v);
  }
  if (json_object_object_get_ex(r->body, "format", &v) && !json_object_is_type(v, json_type_null)) {
    const char *f = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    if (strcmp(f, "wav") && strcmp(f, "flac") && strcmp(f, "mp3"))
      dx_valid_add(r, "format", "must be one of wav, flac, mp3");
    else
      format = f;
  }
  if (dx_valid_any(r)) return DX_ERR_VALIDATION_ERROR;
  if (!strcmp(engine, "lalalai"))
    return dx_resp_error(r, 501, "NOT_IMPLEMENTED", "engine lalalai is not available in this installation");

  dx_registry_entry e;
  dx_errbuf err;
  if (!dx_registry_name_ok(model) || dx_registry_find(r->cfg->model_dir, model, &e, &err) != DX_OK) {
    dx_valid_add(r, "model", "unknown model (see GET /api/processing/models)");
    return DX_ERR_VALIDATION_ERROR;
  }
  if (two && e.n_sources > 0) {
    int ok = 0;
    for (int k = 0; k < e.n_sources; k++) ok |= !strcmp(e.sources[k], two);
    if (!ok) {
      dx_valid_add(r, "two_stems", "is not a stem of this model");
      return DX_ERR_VALIDATION_ERROR;
    }
  }
  dx_status st;
  if (!dx_track_ids_visible(r, &t, &st)) return st;
  if (!e.installed) return not_installed(r, model);

  json_object *params = json_object_new_object();
  json_object_object_add(params, "model", json_object_new_string(model));
  json_object_object_add(params, "engine", json_object_new_string("local"));
  json_object_object_add(params, "shifts", json_object_new_int(shifts));
  json_object_object_add(params, "overlap", json_object_new_double(overlap));
  json_object_object_add(params, "seed", json_object_new_int64(seed));
  if (two) json_object_object_add(params, "two_stems", json_object_new_string(two));
  json_object_object_add(params, "format", json_object_new_string(format));
  char *pj = dx_pool_strdup(r->pool, json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN));
  json_object_put(params);
  json_object *extra = json_object_new_object();
  json_object_object_add(extra, "model", json_object_new_string(model));
  json_object_object_add(extra, "format", json_object_new_string(format));
  st = dx_jobs_submit(r, &t, "separate", pj, extra, "/api/processing/job/");
  json_object_put(extra);
  return st;
}

/* The stem records of a job, with download URLs. */
static dx_status job_stems(dx_req *r, const char *job_id, json_object **out) {
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err,
                             "SELECT id, stem, format, size, duration, model, track_id, created_at, file_path FROM stems "
                             "WHERE job_id = %s ORDER BY created_at, stem",
                             job_id);
  if (st != DX_OK) return st;
  json_object *a = json_object_new_array();
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) != NULL) {
    json_object *s = json_object_new_object();
    json_object_object_add(s, "id", dx_json_str(row[0]));
    json_object_object_add(s, "stem", dx_json_str(row[1]));
    json_object_object_add(s, "format", dx_json_str(row[2]));
    json_object_object_add(s, "size", dx_json_int(row[3]));
    json_object_object_add(s, "duration", dx_json_num(row[4]));
    json_object_object_add(s, "model", dx_json_str(row[5]));
    json_object_object_add(s, "track_id", dx_json_str(row[6]));
    json_object_object_add(s, "created_at", dx_json_time(row[7]));
    char url[80];
    snprintf(url, sizeof url, "/export/stem/%s", row[0]);
    json_object_object_add(s, "url", json_object_new_string(url));
    json_object_object_add(s, "file_url", row[8] ? json_object_new_string(dx_pool_printf(r->pool, "/files/%s", row[8])) : NULL);
    json_object_array_add(a, s);
  }
  mysql_free_result(res);
  *out = a;
  return DX_OK;
}

/* The URL of a job's stems archive, or NULL (JSON null) when it has none. */
static dx_status job_archive(dx_req *r, const char *job_id, json_object **out) {
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err, "SELECT file_path FROM stem_archives WHERE job_id = %s", job_id);
  if (st != DX_OK) return st;
  MYSQL_ROW row = mysql_fetch_row(res);
  *out = row && row[0] ? json_object_new_string(dx_pool_printf(r->pool, "/files/%s", row[0])) : NULL;
  mysql_free_result(res);
  return DX_OK;
}

dx_status dx_h_processing_job(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  if (!id || !dx_id_valid(id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err,
                             "SELECT id, status, progress, JSON_UNQUOTE(JSON_EXTRACT(params, '$.model')), error, "
                             "track_id, created_at, finished_at, "
                             "COALESCE(JSON_UNQUOTE(JSON_EXTRACT(params, '$.format')), 'wav') FROM jobs "
                             "WHERE id = %s AND type = 'separate' AND (%d OR user_id = %s)",
                             id, r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  json_object *d = json_object_new_object();
  json_object_object_add(d, "id", dx_json_str(row[0]));
  json_object_object_add(d, "status", dx_json_str(row[1]));
  json_object_object_add(d, "progress", dx_json_int(row[2]));
  json_object_object_add(d, "model", dx_json_str(row[3]));
  json_object_object_add(d, "format", dx_json_str(row[8]));
  json_object_object_add(d, "track_id", dx_json_str(row[5]));
  json_object *stems = NULL, *archive = NULL;
  if (row[1] && !strcmp(row[1], "completed")) {
    if ((st = job_stems(r, row[0], &stems)) != DX_OK || (st = job_archive(r, row[0], &archive)) != DX_OK) {
      json_object_put(stems);
      json_object_put(d);
      return st;
    }
  }
  json_object_object_add(d, "stems", stems ? stems : json_object_new_array());
  json_object_object_add(d, "archive_url", archive);
  json_object_object_add(d, "error", dx_json_str(row[4]));
  json_object_object_add(d, "created_at", dx_json_time(row[6]));
  json_object_object_add(d, "finished_at", dx_json_time(row[7]));
  return dx_resp_json(r, 200, d);
}
