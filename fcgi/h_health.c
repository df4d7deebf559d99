/* h_health.c: GET /health, public. The database check and the engine state
 * (table engines: alive when last_seen is within 3 heartbeats) are cached
 * per worker for one second so the route stays cheap under load; the
 * archive downloads and job event streams being sent (senders,
 * fcgi_senders) are read as they are.
 * One request at a time per worker process. */
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_fcgi.h"

const char *dx_fcgi_version(void);

/* Engine state as a JSON object; db is reachable. */
static json_object *engine_state(dx_worker *w, int *db_ok) {
  json_object *e = json_object_new_object();
  MYSQL_RES *res = NULL;
  dx_errbuf err;
  int window = 3 * (w->cfg->heartbeat_seconds > 0 ? w->cfg->heartbeat_seconds : 5);
  dx_status st = dx_db_query(w->db, &res, &err,
                             "SELECT hostname, device, gpu, workers FROM engines "
                             "WHERE last_seen >= UTC_TIMESTAMP(3) - INTERVAL %d SECOND ORDER BY hostname",
                             window);
  *db_ok = 1;
  if (st != DX_OK) {
    unsigned code = mysql_errno(dx_db_handle(w->db));
    if (code != ER_NO_SUCH_TABLE && code != ER_BAD_FIELD_ERROR) *db_ok = dx_db_alive(w->db);
    json_object_object_add(e, "status", json_object_new_string("unknown"));
    return e;
  }
  json_object *gpus = json_object_new_array(), *hosts = json_object_new_array();
  int alive = 0, workers = 0;
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res))) {
    alive++;
    if (row[3]) workers += atoi(row[3]);
    json_object *h = json_object_new_object();
    json_object_object_add(h, "hostname", dx_json_str(row[0]));
    json_object_object_add(h, "device", dx_json_str(row[1]));
    json_object_object_add(h, "gpu", dx_json_str(row[2] && *row[2] ? row[2] : NULL));
    json_object_object_add(h, "workers", dx_json_int(row[3]));
    json_object_array_add(hosts, h);
    if (row[2] && *row[2]) json_object_array_add(gpus, json_object_new_string(row[2]));
  }
  mysql_free_result(res);
  json_object_object_add(e, "status", json_object_new_string(alive ? "up" : "down"));
  json_object_object_add(e, "engines", json_object_new_int(alive));
  json_object_object_add(e, "workers", json_object_new_int(workers));
  json_object_object_add(e, "gpus", gpus);
  json_object_object_add(e, "hosts", hosts);
  return e;
}

dx_status dx_h_health(dx_req *r) {
  dx_worker *w = r->w;
  double now = dx_now();
  if (!w->health_engine || now - w->health_at >= 1.0) {
    int db_ok = 0;
    json_object *engine = NULL;
    if (dx_worker_db(w)) engine = engine_state(w, &db_ok);
    if (!engine) {
      engine = json_object_new_object();
      json_object_object_add(engine, "status", json_object_new_string("unknown"));
    }
    json_object_put(w->health_engine);
    w->health_engine = engine;
    w->health_db_ok = db_ok;
    w->health_at = now;
  }
  int db_ok = w->health_db_ok;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "status", json_object_new_string(db_ok ? "ok" : "unavailable"));
  json_object_object_add(o, "database", json_object_new_string(db_ok ? "ok" : "unavailable"));
  json_object_object_add(o, "engine", json_object_get(w->health_engine));
  if (w->senders_running) { /* this host's archive downloads and event streams, as they are now */
    json_object *d = json_object_new_object();
    json_object_object_add(d, "active", json_object_new_int(atomic_load(w->senders_running)));
    json_object_object_add(d, "limit", json_object_new_int(w->senders_max));
    json_object_object_add(o, "streams", d);
  }
  json_object_object_add(o, "version", json_object_new_string(dx_fcgi_version()));
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  dx_resp_header(r, "Cache-Control", "no-store");
  dx_status st = dx_resp_raw(r, db_ok ? 200 : 503, "application/json; charset=utf-8", s, strlen(s));
  json_object_put(o);
  return st;
}
