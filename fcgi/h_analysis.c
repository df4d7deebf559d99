/* h_analysis.c: audio analysis routes.
 *   POST /api/analysis/analyze {track_id, features?: ["tempo", "key", "energy",
 *        "spectral", "mfcc", "chroma", "loudness" | "all"]} (heavy rate limit)
 *        -> 202 {"data": {job_id, track_id, status: "queued"}}; with
 *        track_ids (up to 100) instead of track_id, one job per track:
 *        -> 202 {"data": {"jobs": [{job_id, track_id, status}, ...]}}
 *   GET  /api/analysis/job/:id -> {id, track_id, status, progress, features,
 *        result (when completed, else null), error, created_at, finished_at}
 *   GET  /api/analysis/:track_id -> the track's latest stored analysis
 *        {id, track_id, job_id, features, created_at, result}; 404 if none
 *   GET  /export/analysis/:track_id -> the document itself (no envelope):
 *        {"track_id", "title", "artist", "analysis": {...}} as an attachment
 * An unknown feature name is 422 VALIDATION_ERROR; an unknown or foreign
 * track 404. A user sees their own tracks and jobs, an admin everyone's.
 * One request at a time per worker process. */
#include <stdio.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_fcgi.h"

dx_status dx_h_analysis_analyze(dx_req *r) {
  json_object *v;
  dx_track_ids t;
  dx_track_ids_parse(r, &t);
  unsigned mask = 0;
  if (json_object_object_get_ex(r->body, "features", &v) && !json_object_is_type(v, json_type_null)) {
    if (!json_object_is_type(v, json_type_array)) {
      dx_valid_add(r, "features", "must be a list of feature names");
    } else {
      size_t n = json_object_array_length(v);
      for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        dx_errbuf err = {{0}};
        if (!json_object_is_type(e, json_type_string)) {
          dx_valid_add(r, "features", "must be a list of feature names");
          break;
        }
        if (dx_analysis_feature_add(json_object_get_string(e), &mask, &err) != DX_OK) {
          /* err names the feature and the valid ones */
          dx_valid_add(r, "features", err.msg[0] ? err.msg : "unknown feature");
          break;
        }
      }
    }
  }
  if (dx_valid_any(r)) return DX_ERR_VALIDATION_ERROR;
  dx_status st;
  if (!dx_track_ids_visible(r, &t, &st)) return st;
  if (!mask) mask = DX_AF_ALL;
  json_object *params = json_object_new_object(), *list = json_object_new_array();
  for (unsigned b = 1; b <= DX_AF_ALL; b <<= 1)
    if (mask & b) json_object_array_add(list, json_object_new_string(dx_analysis_feature_name(b)));
  json_object_object_add(params, "features", list);
  char *pj = dx_pool_strdup(r->pool, json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN));
  json_object_put(params);
  return dx_jobs_submit(r, &t, "analyze", pj, NULL, "/api/analysis/job/");
}

dx_status dx_h_analysis_job(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  if (!id || !dx_id_valid(id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err,
                             "SELECT id, track_id, status, progress, JSON_EXTRACT(params, '$.features'), result, error,"
                             " created_at, finished_at FROM jobs"
                             " WHERE id = %s AND type = 'analyze' AND (%d OR user_id = %s)",
                             id, r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  int done = row[2] && !strcmp(row[2], "completed");
  json_object *d = json_object_new_object();
  json_object_object_add(d, "id", dx_json_str(row[0]));
  json_object_object_add(d, "track_id", dx_json_str(row[1]));
  json_object_object_add(d, "status", dx_json_str(row[2]));
  json_object_object_add(d, "progress", dx_json_int(row[3]));
  json_object_object_add(d, "features", dx_json_parsed(row[4]));
  json_object_object_add(d, "result", done ? dx_json_parsed(row[5]) : NULL);
  json_object_object_add(d, "error", dx_json_str(row[6]));
  json_object_object_add(d, "created_at", dx_json_time(row[7]));
  json_object_object_add(d, "finished_at", dx_json_time(row[8]));
  return dx_resp_json(r, 200, d);
}

/* The latest analysis row of a visible track: id, job_id, features, result, created_at. */
static dx_status latest(dx_req *r, const char *track_id, MYSQL_ROW *row_out) {
  dx_status st = dx_track_visible(r, track_id);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT id, job_id, features, result, created_at FROM analyses WHERE track_id = %s"
                   " ORDER BY created_at DESC, id DESC LIMIT 1",
                   track_id);
  if (st != DX_OK) return st;
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "this track has no analysis yet");
  *row_out = row;
  return DX_OK;
}

dx_status dx_h_analysis_get(dx_req *r) {
  const char *track_id = dx_req_param(r, "track_id");
  MYSQL_ROW row = NULL;
  dx_status st = latest(r, track_id, &row);
  if (st != DX_OK) return st;
  json_object *d = json_object_new_object();
  json_object_object_add(d, "id", dx_json_str(row[0]));
  json_object_object_add(d, "track_id", json_object_new_string(track_id));
  json_object_object_add(d, "job_id", dx_json_str(row[1]));
  json_object_object_add(d, "features", dx_json_parsed(row[2]));
  json_object_object_add(d, "created_at", dx_json_time(row[4]));
  json_object_object_add(d, "result", dx_json_parsed(row[3]));
  return dx_resp_json(r, 200, d);
}

dx_status dx_h_export_analysis(dx_req *r) {
  const char *track_id = dx_req_param(r, "track_id");
  MYSQL_ROW row = NULL;
  dx_status st = latest(r, track_id, &row);
  if (st != DX_OK) return st;
  json_object *analysis = dx_json_parsed(row[3]);
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err, "SELECT title, artist FROM tracks WHERE id = %s", track_id);
  if (st != DX_OK) {
    json_object_put(analysis);
    return st;
  }
  dx_pool_result_on_cleanup(r->pool, res);
  MYSQL_ROW t = mysql_fetch_row(res);
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "track_id", json_object_new_string(track_id));
  json_object_object_add(doc, "title", dx_json_str(t ? t[0] : NULL));
  json_object_object_add(doc, "artist", dx_json_str(t ? t[1] : NULL));
  json_object_object_add(doc, "analysis", analysis);
  const char *s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  char disp[96];
  snprintf(disp, sizeof disp, "attachment; filename=\"analysis-%s.json\"", track_id);
  dx_resp_header(r, "Content-Disposition", disp);
  st = dx_resp_raw(r, 200, "application/json", s, strlen(s));
  json_object_put(doc);
  return st;
}
