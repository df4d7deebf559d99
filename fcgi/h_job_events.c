/* h_job_events.c: GET /api/jobs/:id/events, a job's progress as
 * server-sent events (text/event-stream), so a client sees a separation or
 * an analysis move without polling (and without spending its rate limit):
 *
 *   event: job    data: {"id", "type", "status", "progress"}   at once, then at
 *                 every change of status or progress
 *   event: job    data: the whole job (as GET /api/jobs/:id)  when it ends
 *   event: end    data: {}                                     last; close the stream
 *   ": keep-alive" comments every 15 s, so proxies keep the connection.
 *
 * The responder checks that the caller may see the job; the stream is then
 * sent by a sender process (main.c; it counts against fcgi_senders, 503
 * BUSY past them) with its own database connection, reading the job's row
 * every 0.4 s. A stream lasts an hour at most, and no longer than the
 * demix-fcgi that started it (a restart ends it within 0.4 s), and then
 * ends without `end`: an EventSource reconnects on its own. A client that
 * goes away is noticed at the next write. nginx passes the events on unbuffered
 * (X-Accel-Buffering: no). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dx_fcgi.h"

#define POLL_MS 400
#define KEEPALIVE_SECONDS 15.0
#define MAX_SECONDS 3600.0

typedef struct {
  const dx_config *cfg;
  char job_id[DX_UUID_LEN];
  pid_t master; /* demix-fcgi's parent process: the stream ends with it */
} events_ctx;

static int send_event(dx_write_fn write_fn, void *wctx, const char *event, json_object *data) {
  const char *js = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  char head[64];
  int n = snprintf(head, sizeof head, "event: %s\ndata: ", event);
  return write_fn(wctx, head, (size_t)n) || write_fn(wctx, js, strlen(js)) || write_fn(wctx, "\n\n", 2) ||
         write_fn(wctx, "", 0);
}

static int send_end(dx_write_fn write_fn, void *wctx) {
  json_object *none = json_object_new_object();
  int rc = send_event(write_fn, wctx, "end", none);
  json_object_put(none);
  return rc;
}

static int is_final(const char *status) {
  return !strcmp(status, "completed") || !strcmp(status, "failed") || !strcmp(status, "cancelled");
}

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Runs in the sender: its own database connection, never the responder's. */
static int send_events(void *body_ctx, dx_write_fn write_fn, void *wctx) {
  const events_ctx *e = body_ctx;
  dx_db *db = NULL;
  dx_errbuf err;
  char last_status[16] = "";
  int last_progress = -1, rc = 0;
  double start = dx_now(), wrote = start;
  if (write_fn(wctx, "retry: 2000\n\n", 13) || write_fn(wctx, "", 0)) return -1;
  while (dx_now() - start < MAX_SECONDS && !(kill(e->master, 0) != 0 && errno == ESRCH)) {
    if (!db && dx_db_open(e->cfg, &db, &err) != DX_OK) db = NULL; /* down for now: keep-alives meanwhile */
    MYSQL_RES *res = NULL;
    MYSQL_ROW row = NULL;
    if (db && dx_db_query(db, &res, &err, "SELECT " DX_JOB_COLS " FROM jobs WHERE id = %s", e->job_id) == DX_OK) {
      row = mysql_fetch_row(res);
      if (!row) { /* gone with its user */
        mysql_free_result(res);
        rc = send_end(write_fn, wctx);
        break;
      }
      const char *status = row[2] ? row[2] : "";
      int progress = row[3] ? atoi(row[3]) : 0;
      if (is_final(status)) {
        json_object *job = dx_job_row_json(row);
        rc = send_event(write_fn, wctx, "job", job);
        json_object_put(job);
        mysql_free_result(res);
        if (!rc) rc = send_end(write_fn, wctx);
        break;
      }
      if (strcmp(status, last_status) || progress != last_progress) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", dx_json_str(row[0]));
        json_object_object_add(o, "type", dx_json_str(row[1]));
        json_object_object_add(o, "status", dx_json_str(row[2]));
        json_object_object_add(o, "progress", json_object_new_int(progress));
        rc = send_event(write_fn, wctx, "job", o);
        json_object_put(o);
        snprintf(last_status, sizeof last_status, "%s", status);
        last_progress = progress;
        wrote = dx_now();
      }
      mysql_free_result(res);
    } else if (db) {
      dx_db_close(db); /* reconnect at the next round */
      db = NULL;
    }
    if (!rc && dx_now() - wrote >= KEEPALIVE_SECONDS) {
      rc = write_fn(wctx, ": keep-alive\n\n", 14) || write_fn(wctx, "", 0);
      wrote = dx_now();
    }
    if (rc) break;
    pause_ms(POLL_MS);
  }
  dx_db_close(db);
  return rc;
}

dx_status dx_h_jobs_events(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  if (!id || !dx_id_valid(id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  long long one = 0;
  dx_status st = dx_db_query_ll(r->db, &one, &r->err, "SELECT 1 FROM jobs WHERE id = %s AND (%d OR user_id = %s)", id,
                                r->user.admin, r->user.id);
  if (st == DX_ERR_NOT_FOUND) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "job not found");
  if (st != DX_OK) return st;
  events_ctx *e = dx_pool_calloc(r->pool, sizeof *e);
  if (!e) return dx_fail(&r->err, DX_ERR_NOMEM, "out of memory");
  e->cfg = r->cfg;
  e->master = getppid(); /* this responder's */
  snprintf(e->job_id, sizeof e->job_id, "%s", id);
  dx_resp_header(r, "Cache-Control", "no-store");
  dx_resp_header(r, "X-Accel-Buffering", "no");
  return dx_resp_stream(r, 200, "text/event-stream; charset=utf-8", DX_STREAM_LIVE, send_events, e);
}
