/* h_jobs.c: the job routes: list (?status=, ?type=), get, cancel one or
 * all of one's own (?type=), and POST /api/jobs/probe (queues a `probe`
 * job that has the engine re-read a track's metadata); and what the routes
 * that queue jobs share: the track_id / track_ids of a request, and
 * queueing one job per track, all or none (dx_jobs_submit). A user sees
 * their own jobs, an admin every job. One request at a time per worker
 * process. */
#include <stdio.h>
#include <string.h>

#include "dx_fcgi.h"
#include "dx_jobs.h"

json_object *dx_job_row_json(MYSQL_ROW row) {
  json_object *j = json_object_new_object();
  json_object_object_add(j, "id", dx_json_str(row[0]));
  json_object_object_add(j, "type", dx_json_str(row[1]));
  json_object_object_add(j, "status", dx_json_str(row[2]));
  json_object_object_add(j, "progress", dx_json_int(row[3]));
  json_object_object_add(j, "track_id", dx_json_str(row[4]));
  json_object *params = dx_json_parsed(row[5]);
  json_object_object_add(j, "params", params ? params : json_object_new_object());
  json_object_object_add(j, "result", dx_json_parsed(row[6]));
  json_object_object_add(j, "error", dx_json_str(row[7]));
  json_object_object_add(j, "attempts", dx_json_int(row[8]));
  json_object_object_add(j, "max_attempts", dx_json_int(row[9]));
  json_object_object_add(j, "created_at", dx_json_time(row[10]));
  json_object_object_add(j, "started_at", dx_json_time(row[11]));
  json_object_object_add(j, "finished_at", dx_json_time(row[12]));
  return j;
}

/* The job as JSON if the caller may see it. */
static dx_status job_json(dx_req *r, const char *id, json_object **out) {
  *out = NULL;
  if (!id || !dx_id_valid(id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err, "SELECT " DX_JOB_COLS " FROM jobs WHERE id = %s AND (%d OR user_id = %s)",
                             id, r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  MYSQL_ROW row = mysql_fetch_row(res);
  if (row) *out = dx_job_row_json(row);
  mysql_free_result(res);
  return row ? DX_OK : dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
}

static const char *const job_statuses[] = {"queued", "running", "completed", "failed", "cancelled", NULL};
static const char *const job_types[] = {"separate", "analyze", "probe", NULL}; /* the ones the API queues */

static int one_of(const char *v, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(v, *list)) return 1;
  return 0;
}

dx_status dx_h_jobs_list(dx_req *r) {
  dx_page pg;
  dx_status st = dx_page_parse(r, &pg);
  const char *status = dx_req_query(r, "status"), *type = dx_req_query(r, "type");
  if (status && !one_of(status, job_statuses)) {
    dx_valid_add(r, "status", "must be one of queued, running, completed, failed, cancelled");
    st = DX_ERR_VALIDATION_ERROR;
  }
  if (type && !one_of(type, job_types)) {
    dx_valid_add(r, "type", "must be one of separate, analyze, probe");
    st = DX_ERR_VALIDATION_ERROR;
  }
  if (st != DX_OK) return st;
  long long total = 0;
  st = dx_db_query_ll(r->db, &total, &r->err,
                      "SELECT COUNT(*) FROM jobs WHERE (%d OR user_id = %s) AND (%d OR status = %s) AND (%d OR type = %s)",
                      r->user.admin, r->user.id, status == NULL, status, type == NULL, type);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT " DX_JOB_COLS " FROM jobs WHERE (%d OR user_id = %s) AND (%d OR status = %s) AND (%d OR type = %s)"
                   " ORDER BY created_at DESC, id DESC LIMIT %lld OFFSET %lld",
                   r->user.admin, r->user.id, status == NULL, status, type == NULL, type, pg.page_size,
                   (pg.page - 1) * pg.page_size);
  if (st != DX_OK) return st;
  json_object *items = json_object_new_array();
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res))) json_object_array_add(items, dx_job_row_json(row));
  mysql_free_result(res);
  return dx_resp_list(r, items, &pg, total);
}

dx_status dx_h_jobs_get(dx_req *r) {
  json_object *j;
  dx_status st = job_json(r, dx_req_param(r, "id"), &j);
  return st == DX_OK ? dx_resp_json(r, 200, j) : st;
}

dx_status dx_h_jobs_cancel(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  if (!dx_id_valid(id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  dx_errbuf e;
  dx_status st = dx_job_cancel(r->db, id, r->user.admin ? NULL : r->user.id, &e);
  if (st == DX_ERR_NOT_FOUND) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  if (st == DX_ERR_EXISTS) return dx_fail(&r->err, DX_ERR_CONFLICT, "job has already finished");
  if (st != DX_OK) return dx_fail(&r->err, st, "%s", e.msg);
  json_object *j;
  st = job_json(r, id, &j);
  return st == DX_OK ? dx_resp_json(r, 200, j) : st;
}

/* DELETE /api/jobs[?type=]: the caller's own unfinished jobs (admins' too:
 * only their own), as DELETE /api/jobs/:id does one, in two statements. */
dx_status dx_h_jobs_cancel_all(dx_req *r) {
  const char *type = dx_req_query(r, "type");
  if (type && !one_of(type, job_types)) {
    dx_valid_add(r, "type", "must be one of separate, analyze, probe");
    return DX_ERR_VALIDATION_ERROR;
  }
  long long queued = 0, running = 0;
  dx_errbuf e;
  dx_status st = dx_job_cancel_all(r->db, r->user.id, type, &queued, &running, &e);
  if (st != DX_OK) return dx_fail(&r->err, st, "cancel: %s", e.msg);
  json_object *d = json_object_new_object();
  json_object_object_add(d, "cancelled", json_object_new_int64(queued));
  json_object_object_add(d, "cancelling", json_object_new_int64(running));
  return dx_resp_json(r, 200, d);
}

/* Check the body {"track_id"} or {"track_ids"} (no other fields) and submit
 * a job of type for each track. */
static dx_status enqueue_for_tracks(dx_req *r, const char *type) {
  dx_track_ids t;
  dx_track_ids_parse(r, &t);
  json_object_object_foreach(r->body, name, val) {
    (void)val;
    if (strcmp(name, "track_id") && strcmp(name, "track_ids")) dx_valid_add(r, name, "unknown field");
  }
  if (dx_valid_any(r)) return DX_ERR_VALIDATION_ERROR;
  dx_status st;
  if (!dx_track_ids_visible(r, &t, &st)) return st;
  return dx_jobs_submit(r, &t, type, NULL, NULL, "/api/jobs/");
}

static int present(json_object *body, const char *key, json_object **v) {
  return json_object_object_get_ex(body, key, v) && !json_object_is_type(*v, json_type_null);
}

void dx_track_ids_parse(dx_req *r, dx_track_ids *out) {
  memset(out, 0, sizeof *out);
  json_object *one = NULL, *many = NULL;
  int has_one = present(r->body, "track_id", &one), has_many = present(r->body, "track_ids", &many);
  if (has_one && has_many) {
    dx_valid_add(r, "track_ids", "give track_id or track_ids, not both");
    return;
  }
  if (!has_many) {
    if (has_one && json_object_is_type(one, json_type_string)) {
      out->ids[0] = json_object_get_string(one);
      out->n = 1;
    } else {
      dx_valid_add(r, "track_id", "is required (a track id), or track_ids (a list of them)");
    }
    return;
  }
  out->bulk = 1;
  size_t n = json_object_is_type(many, json_type_array) ? json_object_array_length(many) : 0;
  if (!json_object_is_type(many, json_type_array) || n < 1 || n > DX_BULK_TRACKS) {
    char msg[64];
    snprintf(msg, sizeof msg, "must be a list of 1 to %d track ids", DX_BULK_TRACKS);
    dx_valid_add(r, "track_ids", msg);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(many, i);
    if (!json_object_is_type(e, json_type_string)) {
      dx_valid_add(r, "track_ids", "must be a list of track ids");
      return;
    }
    const char *id = json_object_get_string(e);
    for (int k = 0; k < out->n; k++)
      if (!strcmp(out->ids[k], id)) {
        dx_valid_add(r, "track_ids", "must not name a track twice");
        return;
      }
    out->ids[out->n++] = id;
  }
}

/* 404 for a bulk request: {"error", "code": "NOT_FOUND", "details": {"track_ids": [...]}}. */
static dx_status tracks_not_found(dx_req *r, json_object *missing) {
  json_object *o = json_object_new_object(), *det = json_object_new_object();
  char msg[96];
  snprintf(msg, sizeof msg, "%zu of the tracks not found; no job was queued", json_object_array_length(missing));
  json_object_object_add(o, "error", json_object_new_string(msg));
  json_object_object_add(o, "code", json_object_new_string("NOT_FOUND"));
  json_object_object_add(det, "track_ids", missing);
  json_object_object_add(o, "details", det);
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  dx_status st = dx_resp_raw(r, 404, "application/json", s, strlen(s));
  json_object_put(o);
  return st;
}

static json_object *queued_json(const char *job_id, const char *track_id, json_object *extra) {
  json_object *d = json_object_new_object();
  json_object_object_add(d, "job_id", json_object_new_string(job_id));
  json_object_object_add(d, "track_id", json_object_new_string(track_id));
  if (extra) {
    json_object_object_foreach(extra, k, v) json_object_object_add(d, k, json_object_get(v));
  }
  json_object_object_add(d, "status", json_object_new_string("queued"));
  return d;
}

int dx_track_ids_visible(dx_req *r, const dx_track_ids *t, dx_status *st) {
  json_object *missing = json_object_new_array();
  for (int i = 0; i < t->n; i++) {
    if ((*st = dx_track_visible(r, t->ids[i])) == DX_ERR_NOT_FOUND && t->bulk) {
      json_object_array_add(missing, json_object_new_string(t->ids[i]));
    } else if (*st != DX_OK) {
      json_object_put(missing);
      return 0;
    }
  }
  if (json_object_array_length(missing)) {
    *st = tracks_not_found(r, missing);
    return 0;
  }
  json_object_put(missing);
  *st = DX_OK;
  return 1;
}

dx_status dx_jobs_submit(dx_req *r, const dx_track_ids *t, const char *type, const char *params_json,
                         json_object *extra, const char *location_prefix) {
  dx_status st;
  char(*job_ids)[DX_UUID_LEN] = dx_pool_calloc(r->pool, (size_t)t->n * DX_UUID_LEN);
  if (!job_ids) return dx_fail(&r->err, DX_ERR_NOMEM, "out of memory");
  dx_errbuf e;
  if ((st = dx_db_begin(r->db, &e)) != DX_OK) return dx_fail(&r->err, DX_ERR_DB, "enqueue: %s", e.msg);
  for (int i = 0; i < t->n && st == DX_OK; i++)
    st = dx_job_enqueue(r->db, r->user.id, t->ids[i], type, params_json, r->cfg->max_attempts, job_ids[i], &e);
  if (st == DX_OK) st = dx_db_commit(r->db, &e);
  if (st != DX_OK) {
    dx_db_rollback(r->db);
    /* a track deleted since it was checked */
    if (st == DX_ERR_NOT_FOUND) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "track not found");
    return dx_fail(&r->err, st == DX_ERR_DB ? DX_ERR_DB : DX_ERR_INTERNAL, "enqueue: %s", e.msg);
  }
  dx_job_wake(r->cfg->engine_socket);
  if (!t->bulk) {
    char loc[96];
    snprintf(loc, sizeof loc, "%s%s", location_prefix, job_ids[0]);
    dx_resp_header(r, "Location", loc);
    return dx_resp_json(r, 202, queued_json(job_ids[0], t->ids[0], extra));
  }
  json_object *jobs = json_object_new_array(), *d = json_object_new_object();
  for (int i = 0; i < t->n; i++) json_object_array_add(jobs, queued_json(job_ids[i], t->ids[i], extra));
  json_object_object_add(d, "jobs", jobs);
  return dx_resp_json(r, 202, d);
}

dx_status dx_h_jobs_probe(dx_req *r) { return enqueue_for_tracks(r, "probe"); }
