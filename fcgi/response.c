/* response.c: the JSON envelope, response headers and their serialisation,
 * plus the small JSON-from-database helpers handlers share (see dx_fcgi.h).
 * One request at a time per worker. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dx_fcgi.h"

#define JSON_CT "application/json; charset=utf-8"

const char *dx_http_reason(int s) {
  switch (s) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

void dx_resp_header(dx_req *r, const char *name, const char *value) {
  for (size_t i = 0; i < r->resp.nheaders; i++)
    if (!strcasecmp(r->resp.headers[i].name, name)) {
      r->resp.headers[i].value = dx_pool_strdup(r->pool, value);
      return;
    }
  if (r->resp.nheaders >= DX_MAX_HEADERS) return;
  r->resp.headers[r->resp.nheaders].name = dx_pool_strdup(r->pool, name);
  r->resp.headers[r->resp.nheaders].value = dx_pool_strdup(r->pool, value);
  r->resp.nheaders++;
}

/* Serialise obj into the response (obj is put here). */
static dx_status set_json(dx_req *r, int status, json_object *obj) {
  const char *s = obj ? json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
  r->resp.status = status;
  r->resp.content_type = JSON_CT;
  r->resp.body_fn = NULL;
  if (!s) {
    static const char oom[] = "{\"error\":\"out of memory\",\"code\":\"NOMEM\"}";
    r->resp.status = 500;
    r->resp.body = oom;
    r->resp.body_len = sizeof oom - 1;
  } else {
    r->resp.body_len = strlen(s);
    r->resp.body = dx_pool_strndup(r->pool, s, r->resp.body_len);
    if (!r->resp.body) r->resp.body_len = 0;
  }
  json_object_put(obj);
  return DX_OK;
}

dx_status dx_resp_json(dx_req *r, int status, json_object *data) {
  json_object *o = json_object_new_object();
  if (o) json_object_object_add(o, "data", data);
  else json_object_put(data);
  return set_json(r, status, o);
}

dx_status dx_resp_list(dx_req *r, json_object *items, const dx_page *pg, long long total) {
  json_object *o = json_object_new_object(), *meta = json_object_new_object();
  if (!o || !meta) {
    json_object_put(o);
    json_object_put(meta);
    json_object_put(items);
    return set_json(r, 500, NULL);
  }
  long long pages = pg->page_size > 0 ? (total + pg->page_size - 1) / pg->page_size : 0;
  json_object_object_add(meta, "page", json_object_new_int64(pg->page));
  json_object_object_add(meta, "page_size", json_object_new_int64(pg->page_size));
  json_object_object_add(meta, "total_count", json_object_new_int64(total));
  json_object_object_add(meta, "total_pages", json_object_new_int64(pages));
  json_object_object_add(o, "data", items ? items : json_object_new_array());
  json_object_object_add(o, "meta", meta);
  return set_json(r, 200, o);
}

dx_status dx_resp_error(dx_req *r, int status, const char *code, const char *msg) {
  json_object *o = json_object_new_object();
  if (o) {
    json_object_object_add(o, "error", json_object_new_string(msg ? msg : dx_http_reason(status)));
    json_object_object_add(o, "code", json_object_new_string(code));
  }
  return set_json(r, status, o);
}

dx_status dx_resp_status(dx_req *r, dx_status s, const char *msg) {
  return dx_resp_error(r, dx_status_http(s), dx_status_name(s), msg && *msg ? msg : dx_strerror(s));
}

dx_status dx_resp_empty(dx_req *r, int status) {
  r->resp.status = status;
  r->resp.content_type = NULL;
  r->resp.body = NULL;
  r->resp.body_len = 0;
  r->resp.body_fn = NULL;
  return DX_OK;
}

dx_status dx_resp_stream(dx_req *r, int status, const char *content_type, unsigned long long len, dx_body_fn fn,
                         void *ctx) {
  r->resp.status = status;
  r->resp.content_type = content_type;
  r->resp.body = NULL;
  r->resp.body_len = 0;
  r->resp.body_fn = fn;
  r->resp.body_ctx = ctx;
  r->resp.stream_len = len;
  return DX_OK;
}

dx_status dx_resp_raw(dx_req *r, int status, const char *content_type, const char *body, size_t n) {
  r->resp.status = status;
  r->resp.content_type = dx_pool_strdup(r->pool, content_type);
  r->resp.body = dx_pool_strndup(r->pool, body, n);
  r->resp.body_len = r->resp.body ? n : 0;
  r->resp.body_fn = NULL;
  return DX_OK;
}

void dx_valid_add(dx_req *r, const char *field, const char *msg) {
  if (!r->details) {
    r->details = json_object_new_object();
    if (!r->details) return;
    dx_pool_json_on_cleanup(r->pool, r->details);
  }
  json_object *list = NULL;
  if (!json_object_object_get_ex(r->details, field, &list)) {
    list = json_object_new_array();
    json_object_object_add(r->details, field, list);
  }
  json_object_array_add(list, json_object_new_string(msg));
}

int dx_valid_any(const dx_req *r) { return r->details && json_object_object_length(r->details) > 0; }

dx_status dx_resp_validation(dx_req *r) {
  json_object *o = json_object_new_object();
  if (o) {
    json_object_object_add(o, "error", json_object_new_string("validation failed"));
    json_object_object_add(o, "code", json_object_new_string("VALIDATION_ERROR"));
    json_object_object_add(o, "details", r->details ? json_object_get(r->details) : json_object_new_object());
  }
  return set_json(r, 422, o);
}

/* --- serialisation -------------------------------------------------------- */

int dx_resp_send(dx_req *r, dx_write_fn write_fn, void *ctx) {
  char line[1024];
  int status = r->resp.status ? r->resp.status : 500;
  int n = snprintf(line, sizeof line, "Status: %d %s\r\n", status, dx_http_reason(status));
  if (write_fn(ctx, line, (size_t)n)) return -1;
  if (r->resp.content_type) {
    n = snprintf(line, sizeof line, "Content-Type: %s\r\n", r->resp.content_type);
    if (write_fn(ctx, line, (size_t)n)) return -1;
  }
  if (r->rl_set) {
    n = snprintf(line, sizeof line, "X-RateLimit-Limit: %lld\r\nX-RateLimit-Remaining: %lld\r\nX-RateLimit-Reset: %lld\r\n",
                 r->rl_limit, r->rl_remaining, r->rl_reset);
    if (write_fn(ctx, line, (size_t)n)) return -1;
  }
  for (size_t i = 0; i < r->resp.nheaders; i++) {
    const dx_kv *h = &r->resp.headers[i];
    if (!h->name || !h->value || strpbrk(h->value, "\r\n")) continue; /* never split a header */
    n = snprintf(line, sizeof line, "%s: %s\r\n", h->name, h->value);
    if (n < 0 || (size_t)n >= sizeof line) continue;
    if (write_fn(ctx, line, (size_t)n)) return -1;
  }
  if (r->resp.body_fn) {
    if (r->resp.stream_len == DX_STREAM_LIVE)
      n = snprintf(line, sizeof line, "\r\n"); /* the body ends when the stream does */
    else
      n = snprintf(line, sizeof line, "Content-Length: %llu\r\n\r\n", r->resp.stream_len);
    if (write_fn(ctx, line, (size_t)n)) return -1;
    if (r->method && !strcmp(r->method, "HEAD")) return 0;
    return r->resp.body_fn(r->resp.body_ctx, write_fn, ctx) ? -1 : 0;
  }
  if (r->resp.body && r->resp.body_len) {
    n = snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", r->resp.body_len);
    if (write_fn(ctx, line, (size_t)n)) return -1;
    if (write_fn(ctx, r->resp.body, r->resp.body_len)) return -1; /* nginx drops it for HEAD */
    return 0;
  }
  return write_fn(ctx, "\r\n", 2);
}

/* --- JSON from database text ----------------------------------------------- */

json_object *dx_json_str(const char *s) { return s ? json_object_new_string(s) : NULL; }

json_object *dx_json_double(double v) {
  if (!isfinite(v)) return NULL;
  char buf[64];
  snprintf(buf, sizeof buf, "%.12g", v);
  return json_object_new_double_s(v, buf);
}

json_object *dx_json_num(const char *s) { return s ? dx_json_double(strtod(s, NULL)) : NULL; }
json_object *dx_json_int(const char *s) { return s ? json_object_new_int64(strtoll(s, NULL, 10)) : NULL; }

json_object *dx_json_time(const char *s) {
  if (!s) return NULL;
  char buf[40];
  size_t n = strlen(s);
  if (n < 19 || n > 30) return json_object_new_string(s);
  memcpy(buf, s, n);
  buf[10] = 'T';
  buf[n] = 'Z';
  buf[n + 1] = 0;
  return json_object_new_string(buf);
}

json_object *dx_json_parsed(const char *s) {
  if (!s) return NULL;
  return json_tokener_parse(s);
}

const char *dx_json_text(dx_req *r, json_object *v, const char *field, size_t max_chars) {
  if (!json_object_is_type(v, json_type_string)) {
    dx_valid_add(r, field, "must be a string");
    return NULL;
  }
  const char *s = json_object_get_string(v);
  size_t n = (size_t)json_object_get_string_len(v);
  if (strlen(s) != n || !dx_utf8_valid(s, n)) {
    dx_valid_add(r, field, "must be UTF-8 text without NUL characters");
    return NULL;
  }
  if (dx_utf8_length(s, n) > max_chars) {
    char msg[64];
    snprintf(msg, sizeof msg, "must be at most %zu characters", max_chars);
    dx_valid_add(r, field, msg);
    return NULL;
  }
  return dx_pool_strndup(r->pool, s, n);
}

int dx_id_valid(const char *s) {
  if (!dx_uuid_valid(s)) return 0;
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'F') return 0;
  return 1;
}
