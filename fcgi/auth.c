/* auth.c: Bearer-token authentication, the shared per-token rate limits
 * (MariaDB table rate_limits, fixed 60 s windows) and the worker's database
 * connection. A token's last_used_at is kept to the minute: the lookup also
 * says whether the stored value is more than 60 s old, and only then is it
 * updated (one extra statement per token and minute, none otherwise).
 * One request at a time per worker process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dx_fcgi.h"

dx_db *dx_worker_db(dx_worker *w) {
  if (!w) return NULL;
  if (w->db) return w->db;
  double now = dx_now();
  if (now < w->db_retry_at) return NULL;
  dx_errbuf err;
  if (dx_db_open(w->cfg, &w->db, &err) != DX_OK) {
    DX_WARN("%s", err.msg);
    w->db = NULL;
    w->db_retry_at = now + 1.0;
  }
  return w->db;
}

const char *dx_req_param(const dx_req *r, const char *name) {
  for (size_t i = 0; i < r->nparams; i++)
    if (!strcmp(r->params[i].name, name)) return r->params[i].value;
  return NULL;
}

const char *dx_req_query(const dx_req *r, const char *name) { return dx_query_get(&r->query, name); }

dx_status dx_auth(dx_req *r) {
  const char *h = r->authorization;
  if (!h || !*h) return dx_fail(&r->err, DX_ERR_UNAUTHORIZED, "missing bearer token");
  if (strncasecmp(h, "Bearer ", 7) != 0) return dx_fail(&r->err, DX_ERR_UNAUTHORIZED, "authorization must be a bearer token");
  const char *tok = h + 7;
  while (*tok == ' ') tok++;
  size_t n = strlen(tok);
  while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) n--;
  if (n == 0 || n > 512) return dx_fail(&r->err, DX_ERR_UNAUTHORIZED, "invalid token");
  char hash[65];
  dx_sha256_hex(tok, n, hash);
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err,
                             "SELECT t.id, u.id, u.name, u.role, (t.last_used_at IS NULL OR "
                             "t.last_used_at < UTC_TIMESTAMP(3) - INTERVAL 60 SECOND) "
                             "FROM api_tokens t JOIN users u ON u.id = t.user_id "
                             "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.status = 'active'",
                             hash);
  if (st != DX_OK) return st;
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row || !row[0] || !row[1] || !row[2] || !row[3]) {
    mysql_free_result(res);
    return dx_fail(&r->err, DX_ERR_UNAUTHORIZED, "invalid token");
  }
  snprintf(r->user.token_id, sizeof r->user.token_id, "%s", row[0]);
  snprintf(r->user.id, sizeof r->user.id, "%s", row[1]);
  snprintf(r->user.name, sizeof r->user.name, "%s", row[2]);
  snprintf(r->user.role, sizeof r->user.role, "%s", row[3]);
  r->user.admin = !strcmp(row[3], "admin") || !strcmp(row[3], "superadmin");
  r->authed = 1;
  int stale = row[4] && !strcmp(row[4], "1");
  mysql_free_result(res);
  if (stale) {
    /* The condition repeats the check, so concurrent requests update once. */
    dx_errbuf e;
    if (dx_db_exec(r->db, NULL, &e,
                   "UPDATE api_tokens SET last_used_at = UTC_TIMESTAMP(3) WHERE id = %s AND "
                   "(last_used_at IS NULL OR last_used_at < UTC_TIMESTAMP(3) - INTERVAL 60 SECOND)",
                   r->user.token_id) != DX_OK)
      DX_WARN("token last use: %s", e.msg);
  }
  return DX_OK;
}

dx_status dx_rate_check(dx_req *r, const char *bucket, int limit) {
  long long now = dx_unix_time();
  long long window = now - now % 60;
  dx_status st = dx_db_exec(r->db, NULL, &r->err,
                            "INSERT INTO rate_limits (token_id, bucket, window_start, count) VALUES (%s, %s, %lld, 1) "
                            "ON DUPLICATE KEY UPDATE count = LAST_INSERT_ID(count + 1)",
                            r->user.token_id, bucket, window);
  if (st != DX_OK) return st;
  long long count = (long long)mysql_insert_id(dx_db_handle(r->db));
  if (count <= 0) count = 1;
  r->rl_set = 1;
  r->rl_limit = limit;
  r->rl_remaining = count >= limit ? 0 : limit - count;
  r->rl_reset = window + 60;
  /* Old windows go now and then; any worker may do it. */
  if (r->w && dx_now() >= r->w->rate_gc_at) {
    r->w->rate_gc_at = dx_now() + 60.0;
    dx_errbuf e;
    if (dx_db_exec(r->db, NULL, &e, "DELETE FROM rate_limits WHERE window_start < %lld", window - 120) != DX_OK)
      DX_WARN("rate limit cleanup: %s", e.msg);
  }
  if (count <= limit) return DX_OK;
  long long retry = window + 60 - now;
  if (retry < 1) retry = 1;
  char ra[32];
  snprintf(ra, sizeof ra, "%lld", retry);
  dx_resp_header(r, "Retry-After", ra);
  json_object *o = json_object_new_object();
  json_object_object_add(o, "error", json_object_new_string("rate limit exceeded"));
  json_object_object_add(o, "code", json_object_new_string("RATE_LIMITED"));
  json_object_object_add(o, "retry_after", json_object_new_int64(retry));
  r->resp.status = 429;
  r->resp.content_type = "application/json; charset=utf-8";
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  r->resp.body_len = strlen(s);
  r->resp.body = dx_pool_strndup(r->pool, s, r->resp.body_len);
  r->resp.body_fn = NULL;
  json_object_put(o);
  return DX_ERR_RATE_LIMITED;
}

dx_status dx_page_parse(dx_req *r, dx_page *pg) {
  pg->page = 1;
  pg->page_size = 20;
  const char *names[2] = {"page", "page_size"};
  long long *dst[2] = {&pg->page, &pg->page_size};
  long long maxv[2] = {1000000000LL, 100};
  int bad = 0;
  for (int i = 0; i < 2; i++) {
    const char *v = dx_req_query(r, names[i]);
    if (!v) continue;
    char *end = NULL;
    int digits = *v != 0;
    for (const char *c = v; *c; c++)
      if (*c < '0' || *c > '9') digits = 0;
    long long x = digits && strlen(v) <= 12 ? strtoll(v, &end, 10) : -1;
    if (x < 1 || x > maxv[i]) {
      dx_valid_add(r, names[i], i ? "must be an integer from 1 to 100" : "must be a positive integer");
      bad = 1;
    } else {
      *dst[i] = x;
    }
  }
  return bad ? DX_ERR_VALIDATION_ERROR : DX_OK;
}
