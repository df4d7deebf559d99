/* router.c: route matching and the one dispatcher every request goes
 * through: 404/405, query parsing, auth, rate limits and body checks happen
 * here once, before any handler (see dx_fcgi.h). One request at a time. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_fcgi.h"

#define JSON_MAX_DEFAULT (1LL << 20)

/* Match one pattern; params receive copies of the values. */
static int match_pattern(dx_pool *p, const char *pp, const char *sp, dx_kv *params, size_t *np) {
  size_t n0 = *np;
  for (;;) {
    if (!*pp && !*sp) return 1;
    if (*pp != '/' || *sp != '/') break;
    pp++;
    sp++;
    const char *pe = strchr(pp, '/'), *se = strchr(sp, '/');
    if (!pe) pe = pp + strlen(pp);
    if (!se) se = sp + strlen(sp);
    if (*pp == ':' || *pp == '*') {
      int rest = *pp == '*';
      if (rest) se = sp + strlen(sp);
      if (se == sp || *np >= DX_MAX_PARAMS) break;
      params[*np].name = dx_pool_strndup(p, pp + 1, (size_t)(pe - pp - 1));
      params[*np].value = dx_pool_strndup(p, sp, (size_t)(se - sp));
      if (!params[*np].name || !params[*np].value) break;
      (*np)++;
    } else if (pe - pp != se - sp || memcmp(pp, sp, (size_t)(pe - pp)) != 0) {
      break;
    }
    pp = pe;
    sp = se;
  }
  *np = n0;
  return 0;
}

static int method_is(const char *route_method, const char *method) {
  return !strcmp(route_method, method) || (!strcmp(method, "HEAD") && !strcmp(route_method, "GET"));
}

static void allow_add(char *allow, size_t allow_n, const char *m) {
  size_t ml = strlen(m);
  for (const char *s = allow; (s = strstr(s, m)); s += ml)
    if ((s == allow || s[-1] == ' ') && (s[ml] == ',' || s[ml] == 0)) return;
  size_t l = strlen(allow);
  snprintf(allow + l, allow_n - l, "%s%s", l ? ", " : "", m);
}

const dx_route *dx_route_match(dx_pool *p, const dx_route *table, size_t n, const char *method, const char *path,
                               dx_kv params[DX_MAX_PARAMS], size_t *nparams, int *path_known, char *allow,
                               size_t allow_n) {
  *nparams = 0;
  *path_known = 0;
  if (allow_n) allow[0] = 0;
  for (size_t i = 0; i < n; i++) {
    size_t np = 0;
    dx_kv tmp[DX_MAX_PARAMS];
    if (!match_pattern(p, table[i].pattern, path, tmp, &np)) continue;
    if (method_is(table[i].method, method)) {
      memcpy(params, tmp, np * sizeof *tmp);
      *nparams = np;
      return &table[i];
    }
    *path_known = 1;
    if (allow_n) {
      allow_add(allow, allow_n, table[i].method);
      if (!strcmp(table[i].method, "GET")) allow_add(allow, allow_n, "HEAD");
    }
  }
  return NULL;
}

/* --- body ------------------------------------------------------------------ */

static int content_type_is(const char *ct, const char *want) {
  size_t n = strlen(want);
  if (!ct || strncasecmp(ct, want, n) != 0) return 0;
  return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* Read the whole (small) body into the pool. */
static dx_status read_small_body(dx_req *r, long long max, char **out, size_t *outn) {
  *out = NULL;
  *outn = 0;
  if (r->body_file) {
    int fd = open(r->body_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dx_fail(&r->err, DX_ERR_IO, "cannot open the request body file: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || st.st_size > max) {
      close(fd);
      return dx_fail(&r->err, DX_ERR_TOO_LARGE, "request body is larger than %lld bytes", max);
    }
    char *buf = dx_pool_alloc(r->pool, (size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
      ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      got += (size_t)k;
    }
    close(fd);
    if (!buf) return DX_ERR_NOMEM;
    buf[got] = 0;
    *out = buf;
    *outn = got;
    return DX_OK;
  }
  if (r->content_length <= 0 || !r->read_body) return DX_OK;
  char *buf = dx_pool_alloc(r->pool, (size_t)r->content_length + 1);
  if (!buf) return DX_ERR_NOMEM;
  size_t got = 0;
  while (got < (size_t)r->content_length) {
    long k = r->read_body(r->read_ctx, buf + got, (size_t)r->content_length - got);
    if (k <= 0) break;
    got += (size_t)k;
  }
  buf[got] = 0;
  *out = buf;
  *outn = got;
  return DX_OK;
}

/* Copy a body that came on stdin into a file under storage_dir/tmp. */
static dx_status spool_body(dx_req *r, long long max) {
  char *dir = dx_pool_printf(r->pool, "%s/tmp", r->cfg->storage_dir);
  if (!dir) return DX_ERR_NOMEM;
  if (dx_mkdirs(dir) != DX_OK) return dx_fail(&r->err, DX_ERR_IO, "cannot create %s", dir);
  char *path = dx_pool_printf(r->pool, "%s/body.XXXXXX", dir);
  if (!path) return DX_ERR_NOMEM;
  int fd = mkstemp(path);
  if (fd < 0) return dx_fail(&r->err, DX_ERR_IO, "cannot create a temporary file: %s", strerror(errno));
  if (dx_pool_unlink_on_cleanup(r->pool, path)) {
    close(fd);
    unlink(path);
    return DX_ERR_NOMEM;
  }
  char buf[65536];
  long long total = 0;
  dx_status st = DX_OK;
  while (st == DX_OK && total < r->content_length) {
    size_t want = sizeof buf;
    if ((long long)want > r->content_length - total) want = (size_t)(r->content_length - total);
    long k = r->read_body(r->read_ctx, buf, want);
    if (k <= 0) break;
    total += k;
    if (total > max) st = dx_fail(&r->err, DX_ERR_TOO_LARGE, "upload is larger than %lld bytes", max);
    for (long off = 0; st == DX_OK && off < k;) {
      ssize_t w = write(fd, buf + off, (size_t)(k - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) st = dx_fail(&r->err, DX_ERR_IO, "cannot write the request body: %s", strerror(errno));
      else off += w;
    }
  }
  if (close(fd) && st == DX_OK) st = dx_fail(&r->err, DX_ERR_IO, "cannot write the request body");
  if (st == DX_OK) r->body_file = path;
  return st;
}

static dx_status check_body(dx_req *r, const dx_route *rt) {
  if (rt->flags & DX_ROUTE_BODY_JSON) {
    long long max = rt->max_body > 0 ? rt->max_body : JSON_MAX_DEFAULT;
    if (!content_type_is(r->content_type, "application/json"))
      return dx_fail(&r->err, DX_ERR_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    if (r->content_length > max)
      return dx_fail(&r->err, DX_ERR_TOO_LARGE, "request body is larger than %lld bytes", max);
    char *buf;
    size_t n;
    dx_status st = read_small_body(r, max, &buf, &n);
    if (st != DX_OK) return st;
    json_object *obj = NULL;
    st = dx_json_parse_object(buf ? buf : "", n, &obj, &r->err);
    if (st == DX_ERR_VALIDATION_ERROR) dx_valid_add(r, "body", "must be a JSON object");
    if (st != DX_OK) return st;
    dx_pool_json_on_cleanup(r->pool, obj);
    r->body = obj;
  } else if (rt->flags & DX_ROUTE_BODY_UPLOAD) {
    long long max = rt->max_body > 0 ? rt->max_body : r->cfg->max_upload_bytes;
    if (r->content_length > max) return dx_fail(&r->err, DX_ERR_TOO_LARGE, "upload is larger than %lld bytes", max);
    if (r->body_file) {
      struct stat st;
      if (stat(r->body_file, &st)) return dx_fail(&r->err, DX_ERR_IO, "cannot open the request body file");
      if (st.st_size > max) return dx_fail(&r->err, DX_ERR_TOO_LARGE, "upload is larger than %lld bytes", max);
    } else if (r->content_length > 0 && r->read_body) {
      return spool_body(r, max);
    }
  }
  return DX_OK;
}

/* --- dispatch --------------------------------------------------------------- */

static dx_status dispatch(dx_req *r, const dx_route *table, size_t n) {
  char allow[128];
  int known = 0;
  const dx_route *rt =
      dx_route_match(r->pool, table, n, r->method, r->path, r->params, &r->nparams, &known, allow, sizeof allow);
  if (!rt) {
    if (known) {
      dx_resp_header(r, "Allow", allow);
      return dx_resp_error(r, 405, "METHOD_NOT_ALLOWED", "method not allowed on this path");
    }
    return dx_resp_error(r, 404, "NOT_FOUND", "no such route");
  }
  r->route = rt;
  dx_status st = dx_query_parse(r->pool, r->query_string, strlen(r->query_string), &r->query, &r->err);
  if (st != DX_OK) return st;
  if (!(rt->flags & DX_ROUTE_PUBLIC)) {
    r->db = dx_worker_db(r->w);
    if (!r->db) return dx_fail(&r->err, DX_ERR_UNAVAILABLE, "database unavailable");
    st = dx_auth(r);
    if (st != DX_OK) return st;
    if ((rt->flags & DX_ROUTE_ADMIN) && !r->user.admin)
      return dx_fail(&r->err, DX_ERR_FORBIDDEN, "this route needs an admin token");
    if (!strncmp(r->path, "/api/", 5)) {
      st = dx_rate_check(r, "auth", r->cfg->rate_auth_per_min);
      if (st == DX_OK && (rt->flags & DX_ROUTE_HEAVY)) st = dx_rate_check(r, "heavy", r->cfg->rate_heavy_per_min);
      if (st != DX_OK) return st;
    }
  } else {
    r->db = r->w ? r->w->db : NULL;
  }
  st = check_body(r, rt);
  if (st != DX_OK) return st;
  return rt->handler(r);
}

void dx_dispatch(dx_req *r, const dx_route *table, size_t n) {
  r->err.msg[0] = 0;
  dx_status st = dispatch(r, table, n);
  if (r->resp.status) return;
  switch (st) {
  case DX_OK:
    dx_resp_empty(r, 204);
    return;
  case DX_ERR_VALIDATION_ERROR:
    if (!dx_valid_any(r)) dx_valid_add(r, "body", r->err.msg[0] ? r->err.msg : "is invalid");
    dx_resp_validation(r);
    return;
  case DX_ERR_UNAUTHORIZED:
    dx_resp_header(r, "WWW-Authenticate", "Bearer");
    break;
  case DX_ERR_DB:
  case DX_ERR_UNAVAILABLE:
    if (r->err.msg[0] && strcmp(r->err.msg, "database unavailable")) DX_ERROR("%s %s: %s", r->method, r->path, r->err.msg);
    dx_resp_error(r, 503, "UNAVAILABLE", "database unavailable, try again");
    dx_resp_header(r, "Retry-After", "1");
    return;
  case DX_ERR_NOMEM:
  case DX_ERR_IO:
  case DX_ERR_INTERNAL:
  case DX_ERR_CONFIG:
    DX_ERROR("%s %s: %s: %s", r->method, r->path, dx_strerror(st), r->err.msg);
    dx_resp_status(r, st, NULL);
    return;
  default:
    break;
  }
  dx_resp_status(r, st, r->err.msg);
}
