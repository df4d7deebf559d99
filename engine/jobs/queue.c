/* queue.c: the job queue on MariaDB rows (see dx_jobs.h).
 *
 * Every function is one short statement or one short transaction on the
 * caller's dx_db and leaves no transaction open. Engine-side updates are
 * guarded by (id, lease_owner, status 'running', attempts) so a worker that
 * lost its lease cannot touch a job another engine now holds.
 * Threading: any thread, each with its own dx_db. */
#include "dx_jobs.h"

#include <json-c/json.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_CAP_SECONDS 3600LL

void dx_job_clear(dx_job *job) {
  if (!job) return;
  free(job->params_json);
  job->params_json = NULL;
}

static int type_valid(const char *t) {
  size_t n = t ? strlen(t) : 0;
  if (n == 0 || n >= sizeof(((dx_job *)0)->type)) return 0;
  for (const char *c = t; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
  return 1;
}

static int params_valid(const char *json, dx_errbuf *err) {
  json_tokener *tok = json_tokener_new();
  if (!tok) return 0;
  size_t n = strlen(json);
  json_object *obj = json_tokener_parse_ex(tok, json, (int)n);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  int ok = 1;
  if (!obj || jerr != json_tokener_success) {
    dx_fail(err, DX_ERR_PARSE, "job params are not valid JSON: %s",
            jerr == json_tokener_success ? "incomplete" : json_tokener_error_desc(jerr));
    ok = 0;
  } else if (json[json_tokener_get_parse_end(tok) + strspn(json + json_tokener_get_parse_end(tok), " \t\r\n")]) {
    dx_fail(err, DX_ERR_PARSE, "job params: trailing characters after the JSON value");
    ok = 0;
  } else if (!json_object_is_type(obj, json_type_object)) {
    dx_fail(err, DX_ERR_PARSE, "job params must be a JSON object");
    ok = 0;
  }
  json_object_put(obj);
  json_tokener_free(tok);
  return ok;
}

dx_status dx_job_enqueue(dx_db *db, const char *user_id, const char *track_id, const char *type,
                         const char *params_json, int max_attempts, char id_out[DX_UUID_LEN], dx_errbuf *err) {
  if (id_out) id_out[0] = 0;
  if (!user_id || !dx_uuid_valid(user_id)) return dx_fail(err, DX_ERR_INVALID, "job needs a valid user id");
  if (track_id && !*track_id) track_id = NULL;
  if (track_id && !dx_uuid_valid(track_id)) return dx_fail(err, DX_ERR_INVALID, "bad track id");
  if (!type_valid(type)) return dx_fail(err, DX_ERR_INVALID, "bad job type (expected [a-z0-9_], 1-31 chars)");
  if (!params_json) params_json = "{}";
  if (!params_valid(params_json, err)) return DX_ERR_PARSE;
  if (max_attempts <= 0) max_attempts = 3;
  char id[DX_UUID_LEN];
  dx_status st = dx_uuid(id);
  if (st != DX_OK) return dx_fail(err, st, "cannot make a job id");
  /* The job's turn (schema/007_job_turns.sql): the later of the turn being
   * served (the lowest queued, or with none queued the highest running) and
   * one past its user's latest queued or running job. Two enqueues of one
   * user at the same moment may share a turn; that only lets the pair run
   * side by side. */
  long long turn = 0;
  st = dx_db_query_ll(db, &turn, err,
                      "SELECT GREATEST(COALESCE((SELECT MIN(queue_turn) FROM jobs WHERE status = 'queued'),"
                      " (SELECT MAX(queue_turn) FROM jobs WHERE status = 'running'), 0),"
                      " COALESCE((SELECT MAX(queue_turn) + 1 FROM jobs"
                      " WHERE user_id = %s AND status IN ('queued', 'running')), 0))",
                      user_id);
  if (st != DX_OK) return st;
  st = dx_db_exec(db, NULL, err,
                  "INSERT INTO jobs (id, user_id, track_id, type, params, max_attempts, run_after, queue_turn, created_at)"
                  " VALUES (%s, %s, %s, %s, %s, %d, UTC_TIMESTAMP(3), %lld, UTC_TIMESTAMP(3))",
                  id, user_id, track_id, type, params_json, max_attempts, turn);
  if (st != DX_OK) {
    unsigned e = mysql_errno(dx_db_handle(db));
    if (e == ER_NO_REFERENCED_ROW_2 || e == ER_NO_REFERENCED_ROW)
      return dx_fail(err, DX_ERR_NOT_FOUND, "no such user or track for the job");
    return st;
  }
  if (id_out) memcpy(id_out, id, DX_UUID_LEN);
  return DX_OK;
}

/* What cancelling a queued job writes (dx_job_cancel, dx_job_cancel_all). */
#define CANCEL_QUEUED                                                                                           \
  "UPDATE jobs SET status = 'cancelled', finished_at = UTC_TIMESTAMP(3), lease_owner = NULL,"                 \
  " lease_expires_at = NULL, cancel_requested = 1"

dx_status dx_job_cancel(dx_db *db, const char *job_id, const char *user_id, dx_errbuf *err) {
  if (!job_id || !dx_uuid_valid(job_id)) return dx_fail(err, DX_ERR_NOT_FOUND, "no such job");
  /* A job can move between the statements (released, requeued); a few rounds settle it. */
  for (int round = 0; round < 4; round++) {
    uint64_t n = 0;
    dx_status st = dx_db_exec(db, &n, err,
                              CANCEL_QUEUED " WHERE id = %s AND status = 'queued' AND (%s IS NULL OR user_id = %s)",
                              job_id, user_id, user_id);
    if (st != DX_OK) return st;
    if (n) return DX_OK;
    st = dx_db_exec(db, &n, err,
                    "UPDATE jobs SET cancel_requested = 1"
                    " WHERE id = %s AND status = 'running' AND (%s IS NULL OR user_id = %s)",
                    job_id, user_id, user_id);
    if (st != DX_OK) return st;
    if (n) return DX_OK;
    MYSQL_RES *res = NULL;
    st = dx_db_query(db, &res, err, "SELECT status FROM jobs WHERE id = %s AND (%s IS NULL OR user_id = %s)",
                     job_id, user_id, user_id);
    if (st != DX_OK) return st;
    MYSQL_ROW row = mysql_fetch_row(res);
    int finished = row && row[0] && strcmp(row[0], "queued") && strcmp(row[0], "running");
    int missing = !row;
    mysql_free_result(res);
    if (missing) return dx_fail(err, DX_ERR_NOT_FOUND, "no such job");
    if (finished) return dx_fail(err, DX_ERR_EXISTS, "job has already finished");
  }
  return dx_fail(err, DX_ERR_BUSY, "job kept changing state; try again");
}

dx_status dx_job_cancel_all(dx_db *db, const char *user_id, const char *type, long long *queued, long long *running,
                            dx_errbuf *err) {
  *queued = *running = 0;
  if (!user_id || !dx_uuid_valid(user_id)) return dx_fail(err, DX_ERR_INVALID, "cancel needs a valid user id");
  if (type && !type_valid(type)) return dx_fail(err, DX_ERR_INVALID, "bad job type");
  uint64_t n = 0;
  /* queued first: a job claimed in between is then asked to stop below */
  dx_status st = dx_db_exec(db, &n, err,
                            CANCEL_QUEUED " WHERE user_id = %s AND status = 'queued' AND (%s IS NULL OR type = %s)",
                            user_id, type, type);
  if (st != DX_OK) return st;
  *queued = (long long)n;
  st = dx_db_exec(db, &n, err,
                  "UPDATE jobs SET cancel_requested = 1"
                  " WHERE user_id = %s AND status = 'running' AND cancel_requested = 0 AND (%s IS NULL OR type = %s)",
                  user_id, type, type);
  if (st == DX_OK) *running = (long long)n;
  return st;
}

/* "a,b,c" from a NULL-terminated list of valid type names, for FIND_IN_SET. */
static dx_status types_csv(const char *const *types, char *out, size_t n, dx_errbuf *err) {
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; types && types[i]; i++) {
    if (!type_valid(types[i])) return dx_fail(err, DX_ERR_INVALID, "bad job type in claim list");
    size_t k = strlen(types[i]);
    if (len + k + 2 > n) return dx_fail(err, DX_ERR_INVALID, "claim type list too long");
    if (len) out[len++] = ',';
    memcpy(out + len, types[i], k + 1);
    len += k;
  }
  return DX_OK;
}

static void copy_field(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

dx_status dx_job_claim(dx_db *db, const char *owner, int lease_seconds, const char *const *types, dx_job *out,
                       dx_errbuf *err) {
  memset(out, 0, sizeof *out);
  char csv[1024];
  dx_status st = types_csv(types, csv, sizeof csv, err);
  if (st != DX_OK) return st;
  if (types && !*csv) return DX_ERR_NOT_FOUND; /* an empty list claims nothing */
  if (lease_seconds < 1) lease_seconds = 1;
  /* READ COMMITTED: no gap locks, so enqueues and other claims never wait on
   * us. The scan must follow jobs_claim in order (no filesort): a filesort
   * would lock every queued row and leave other claimers nothing to take.
   * Lowest turn first (users take turns, see dx_job_enqueue), then oldest. */
  if ((st = dx_db_exec(db, NULL, err, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED")) != DX_OK) return st;
  if ((st = dx_db_begin(db, err)) != DX_OK) return st;
  MYSQL_RES *res = NULL;
  st = dx_db_query(db, &res, err,
                   "SELECT id, user_id, track_id, type, params, attempts, max_attempts FROM jobs FORCE INDEX (jobs_claim)"
                   " WHERE status = 'queued' AND run_after <= UTC_TIMESTAMP(3)"
                   " AND (%s = '' OR FIND_IN_SET(type, %s) > 0)"
                   " ORDER BY queue_turn, run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                   csv, csv);
  if (st != DX_OK) {
    dx_db_rollback(db);
    return st;
  }
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) {
    mysql_free_result(res);
    dx_db_rollback(db);
    return DX_ERR_NOT_FOUND;
  }
  copy_field(out->id, sizeof out->id, row[0]);
  copy_field(out->user_id, sizeof out->user_id, row[1]);
  copy_field(out->track_id, sizeof out->track_id, row[2]);
  copy_field(out->type, sizeof out->type, row[3]);
  out->params_json = strdup(row[4] && *row[4] ? row[4] : "{}");
  out->attempts = row[5] ? atoi(row[5]) + 1 : 1;
  out->max_attempts = row[6] ? atoi(row[6]) : 1;
  mysql_free_result(res);
  if (!out->params_json) {
    dx_db_rollback(db);
    return dx_fail(err, DX_ERR_NOMEM, "out of memory claiming a job");
  }
  uint64_t n = 0;
  st = dx_db_exec(db, &n, err,
                  "UPDATE jobs SET status = 'running', lease_owner = %s,"
                  " lease_expires_at = UTC_TIMESTAMP(3) + INTERVAL %d SECOND, attempts = %d,"
                  " started_at = UTC_TIMESTAMP(3), finished_at = NULL, progress = 0"
                  " WHERE id = %s AND status = 'queued'",
                  owner, lease_seconds, out->attempts, out->id);
  if (st == DX_OK && n != 1) st = dx_fail(err, DX_ERR_BUSY, "claimed job changed under its lock");
  if (st == DX_OK) st = dx_db_commit(db, err);
  if (st != DX_OK) {
    dx_db_rollback(db);
    dx_job_clear(out);
    memset(out, 0, sizeof *out);
  }
  return st;
}

#define GUARD " WHERE id = %s AND lease_owner = %s AND status = 'running' AND attempts = %d"

dx_status dx_job_heartbeat(dx_db *db, const dx_job *job, const char *owner, int lease_seconds, int progress,
                           int *cancel_requested, dx_errbuf *err) {
  if (cancel_requested) *cancel_requested = 0;
  if (lease_seconds < 1) lease_seconds = 1;
  if (progress > 100) progress = 100;
  uint64_t n = 0;
  dx_status st = dx_db_exec(db, &n, err,
                            "UPDATE jobs SET lease_expires_at = UTC_TIMESTAMP(3) + INTERVAL %d SECOND,"
                            " progress = IF(%d < 0, progress, %d)" GUARD,
                            lease_seconds, progress, progress, job->id, owner, job->attempts);
  if (st != DX_OK) return st;
  if (n == 0) return dx_fail(err, DX_ERR_NOT_FOUND, "lease on job %s was lost", job->id);
  long long c = 0;
  st = dx_db_query_ll(db, &c, err, "SELECT cancel_requested FROM jobs" GUARD, job->id, owner, job->attempts);
  if (st == DX_ERR_NOT_FOUND) return dx_fail(err, DX_ERR_NOT_FOUND, "lease on job %s was lost", job->id);
  if (st != DX_OK) return st;
  if (cancel_requested) *cancel_requested = c != 0;
  return DX_OK;
}

static dx_status guarded(dx_db *db, uint64_t n, const dx_job *job, dx_status st, dx_errbuf *err) {
  if (st != DX_OK) return st;
  if (n == 0) return dx_fail(err, DX_ERR_NOT_FOUND, "job %s is no longer held by this worker", job->id);
  (void)db;
  return DX_OK;
}

dx_status dx_job_complete(dx_db *db, const dx_job *job, const char *owner, const char *result_json, dx_errbuf *err) {
  uint64_t n = 0;
  dx_status st = dx_db_exec(db, &n, err,
                            "UPDATE jobs SET status = 'completed', progress = 100, result = %s, error = NULL,"
                            " finished_at = UTC_TIMESTAMP(3), lease_expires_at = NULL" GUARD,
                            result_json, job->id, owner, job->attempts);
  return guarded(db, n, job, st, err);
}

dx_status dx_job_fail(dx_db *db, const dx_job *job, const char *owner, const char *error, int retryable,
                      int backoff_seconds, dx_errbuf *err) {
  int retry = retryable && job->attempts < job->max_attempts;
  long long delay = backoff_seconds > 0 ? backoff_seconds : 0;
  for (int i = 1; i < job->attempts && delay < BACKOFF_CAP_SECONDS; i++) delay *= 2;
  if (delay > BACKOFF_CAP_SECONDS) delay = BACKOFF_CAP_SECONDS;
  if (!error || !*error) error = "job failed";
  uint64_t n = 0;
  /* Single-table UPDATE assigns left to right: nothing below reads status. */
  dx_status st = dx_db_exec(
      db, &n, err,
      "UPDATE jobs SET status = IF(cancel_requested = 1, 'cancelled', IF(%d, 'queued', 'failed')), error = %s,"
      " run_after = IF(cancel_requested = 0 AND %d, UTC_TIMESTAMP(3) + INTERVAL %lld SECOND, run_after),"
      " finished_at = IF(cancel_requested = 0 AND %d, NULL, UTC_TIMESTAMP(3)),"
      " lease_owner = IF(cancel_requested = 0 AND %d, NULL, lease_owner), lease_expires_at = NULL" GUARD,
      retry, error, retry, delay, retry, retry, job->id, owner, job->attempts);
  return guarded(db, n, job, st, err);
}

dx_status dx_job_mark_cancelled(dx_db *db, const dx_job *job, const char *owner, dx_errbuf *err) {
  uint64_t n = 0;
  dx_status st = dx_db_exec(db, &n, err,
                            "UPDATE jobs SET status = 'cancelled', finished_at = UTC_TIMESTAMP(3),"
                            " lease_expires_at = NULL" GUARD,
                            job->id, owner, job->attempts);
  return guarded(db, n, job, st, err);
}

dx_status dx_job_release(dx_db *db, const dx_job *job, const char *owner, dx_errbuf *err) {
  uint64_t n = 0;
  dx_status st = dx_db_exec(db, &n, err,
                            "UPDATE jobs SET status = IF(cancel_requested = 1, 'cancelled', 'queued'),"
                            " finished_at = IF(cancel_requested = 1, UTC_TIMESTAMP(3), NULL),"
                            " attempts = IF(cancel_requested = 1, attempts, GREATEST(attempts - 1, 0)),"
                            " progress = IF(cancel_requested = 1, progress, 0),"
                            " run_after = UTC_TIMESTAMP(3), lease_owner = NULL, lease_expires_at = NULL" GUARD,
                            job->id, owner, job->attempts);
  return guarded(db, n, job, st, err);
}

dx_status dx_job_requeue_lapsed(dx_db *db, int *count, dx_errbuf *err) {
  if (count) *count = 0;
  uint64_t n = 0;
  /* Assigned left to right; no expression below reads status. */
  dx_status st = dx_db_exec(
      db, &n, err,
      "UPDATE jobs SET"
      " status = IF(cancel_requested = 1, 'cancelled', IF(attempts >= max_attempts, 'failed', 'queued')),"
      " error = IF(cancel_requested = 0 AND attempts >= max_attempts,"
      "   CONCAT('lease expired after ', attempts, IF(attempts = 1, ' attempt', ' attempts'),"
      "          IF(error IS NULL, '', CONCAT('; last error: ', error))), error),"
      " finished_at = IF(cancel_requested = 1 OR attempts >= max_attempts, UTC_TIMESTAMP(3), NULL),"
      " progress = IF(cancel_requested = 1 OR attempts >= max_attempts, progress, 0),"
      " run_after = UTC_TIMESTAMP(3), lease_owner = NULL, lease_expires_at = NULL"
      " WHERE status = 'running' AND lease_expires_at < UTC_TIMESTAMP(3)");
  if (st != DX_OK) return st;
  if (count) *count = (int)n;
  return DX_OK;
}
