/* test_fcgi_router.c: route matching (literals, :params, *rest), 404 and
 * 405 with Allow, and the dispatcher's checks that need no database: query
 * strings, JSON bodies (415, 413, 400, 422), pagination, and the real route
 * table's shape. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_fcgi.h"
#include "dx_test.h"

static dx_status h_ok(dx_req *r) {
  json_object *d = json_object_new_object();
  for (size_t i = 0; i < r->nparams; i++) json_object_object_add(d, r->params[i].name, json_object_new_string(r->params[i].value));
  return dx_resp_json(r, 200, d);
}
static dx_status h_page(dx_req *r) {
  dx_page pg;
  dx_status st = dx_page_parse(r, &pg);
  if (st != DX_OK) return st;
  return dx_resp_list(r, json_object_new_array(), &pg, 0);
}
static dx_status h_body(dx_req *r) { return dx_resp_json(r, 200, json_object_get(r->body)); }
static dx_status h_notfound(dx_req *r) { return dx_fail(&r->err, DX_ERR_NOT_FOUND, "thing not found"); }

static const dx_route table[] = {
    {"GET", "/health", h_ok, DX_ROUTE_PUBLIC, 0},
    {"GET", "/api/things", h_page, DX_ROUTE_PUBLIC, 0},
    {"POST", "/api/things", h_body, DX_ROUTE_PUBLIC | DX_ROUTE_BODY_JSON, 64},
    {"GET", "/api/things/special", h_ok, DX_ROUTE_PUBLIC, 0},
    {"GET", "/api/things/:id", h_ok, DX_ROUTE_PUBLIC, 0},
    {"DELETE", "/api/things/:id", h_notfound, DX_ROUTE_PUBLIC, 0},
    {"GET", "/api/things/:id/parts/:part", h_ok, DX_ROUTE_PUBLIC, 0},
    {"GET", "/files/*path", h_ok, DX_ROUTE_PUBLIC, 0},
    {"GET", "/api/secret", h_ok, DX_ROUTE_AUTH, 0},
};
#define NT (sizeof table / sizeof table[0])

typedef struct {
  const char *data;
  size_t len, pos;
} membody;

static long mem_read(void *ctx, char *buf, size_t n) {
  membody *m = ctx;
  if (n > m->len - m->pos) n = m->len - m->pos;
  memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return (long)n;
}

static dx_config cfg;
static membody mb;

static void req_init(dx_req *r, const char *method, const char *path, const char *qs) {
  memset(r, 0, sizeof *r);
  r->pool = dx_pool_create(0);
  r->cfg = &cfg;
  r->method = method;
  r->path = path;
  r->query_string = qs ? qs : "";
  r->content_length = -1;
}

static void req_body(dx_req *r, const char *ct, const char *body) {
  r->content_type = ct;
  mb.data = body;
  mb.len = strlen(body);
  mb.pos = 0;
  r->content_length = (long long)mb.len;
  r->read_body = mem_read;
  r->read_ctx = &mb;
}

static const char *header(const dx_req *r, const char *name) {
  for (size_t i = 0; i < r->resp.nheaders; i++)
    if (!strcmp(r->resp.headers[i].name, name)) return r->resp.headers[i].value;
  return NULL;
}

DX_TEST(matches_literals_params_and_rest) {
  dx_pool *p = dx_pool_create(0);
  dx_kv params[DX_MAX_PARAMS];
  size_t np;
  int known;
  char allow[128];
  const dx_route *rt = dx_route_match(p, table, NT, "GET", "/api/things/special", params, &np, &known, allow, sizeof allow);
  CHECK(rt == &table[3] && np == 0);
  rt = dx_route_match(p, table, NT, "GET", "/api/things/abc", params, &np, &known, allow, sizeof allow);
  CHECK(rt == &table[4] && np == 1 && !strcmp(params[0].name, "id") && !strcmp(params[0].value, "abc"));
  rt = dx_route_match(p, table, NT, "GET", "/api/things/7/parts/x.y", params, &np, &known, allow, sizeof allow);
  CHECK(rt == &table[6] && np == 2 && !strcmp(params[1].name, "part") && !strcmp(params[1].value, "x.y"));
  rt = dx_route_match(p, table, NT, "GET", "/files/tracks/a/b.wav", params, &np, &known, allow, sizeof allow);
  CHECK(rt == &table[7] && np == 1 && !strcmp(params[0].value, "tracks/a/b.wav"));
  rt = dx_route_match(p, table, NT, "HEAD", "/health", params, &np, &known, allow, sizeof allow);
  CHECK(rt == &table[0]);
  const char *none[] = {"/", "", "/health/", "/healthz", "/api/things/", "/api/things//parts/x", "/files/", "/files",
                        "/api/things/1/parts/", "/api/things/1/parts/2/3", "//health", "/API/things"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    rt = dx_route_match(p, table, NT, "GET", none[i], params, &np, &known, allow, sizeof allow);
    CHECK_MSG(rt == NULL && !known, "%s", none[i]);
  }
  rt = dx_route_match(p, table, NT, "PUT", "/api/things/9", params, &np, &known, allow, sizeof allow);
  CHECK(rt == NULL && known && !strcmp(allow, "GET, HEAD, DELETE"));
  rt = dx_route_match(p, table, NT, "DELETE", "/api/things", params, &np, &known, allow, sizeof allow);
  CHECK(rt == NULL && known && !strcmp(allow, "GET, HEAD, POST"));
  dx_pool_destroy(p);
}

DX_TEST(dispatch_404_405) {
  dx_req r;
  req_init(&r, "GET", "/nope", NULL);
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 404 && strstr(r.resp.body, "\"code\":\"NOT_FOUND\""));
  CHECK(!strcmp(r.resp.content_type, "application/json; charset=utf-8"));
  dx_pool_destroy(r.pool);

  req_init(&r, "PATCH", "/health", NULL);
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 405 && strstr(r.resp.body, "\"code\":\"METHOD_NOT_ALLOWED\""));
  CHECK(header(&r, "Allow") && !strcmp(header(&r, "Allow"), "GET, HEAD"));
  dx_pool_destroy(r.pool);

  req_init(&r, "DELETE", "/api/things/5", NULL);
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 404 && !strcmp(r.resp.body, "{\"error\":\"thing not found\",\"code\":\"NOT_FOUND\"}"));
  dx_pool_destroy(r.pool);

  req_init(&r, "GET", "/api/things/x%20y", NULL);
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 200 && !strcmp(r.resp.body, "{\"data\":{\"id\":\"x%20y\"}}"));
  dx_pool_destroy(r.pool);
}

DX_TEST(dispatch_without_database_is_503) {
  dx_req r;
  req_init(&r, "GET", "/api/secret", NULL);
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 503 && strstr(r.resp.body, "\"code\":\"UNAVAILABLE\""));
  dx_pool_destroy(r.pool);
}

DX_TEST(dispatch_query_and_pagination) {
  dx_req r;
  req_init(&r, "GET", "/api/things", "page=%zz");
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 400 && strstr(r.resp.body, "\"code\":\"BAD_REQUEST\""));
  dx_pool_destroy(r.pool);

  const char *bad[] = {"page=0", "page=-1", "page=abc", "page_size=101", "page_size=0", "page=1.5", "page=",
                       "page_size=99999999999999999999", "page=+1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    req_init(&r, "GET", "/api/things", bad[i]);
    dx_dispatch(&r, table, NT);
    CHECK_MSG(r.resp.status == 422 && strstr(r.resp.body, "\"code\":\"VALIDATION_ERROR\""), "%s", bad[i]);
    dx_pool_destroy(r.pool);
  }
  req_init(&r, "GET", "/api/things", "page=3&page_size=100&other=1");
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 200 && strstr(r.resp.body, "\"page\":3,\"page_size\":100,\"total_count\":0,\"total_pages\":0"));
  dx_pool_destroy(r.pool);
  req_init(&r, "GET", "/api/things", NULL);
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 200 && strstr(r.resp.body, "\"page\":1,\"page_size\":20"));
  dx_pool_destroy(r.pool);
}

DX_TEST(dispatch_json_body_checks) {
  struct {
    const char *ct, *body;
    int status;
    const char *code;
  } cases[] = {
      {"application/json", "{\"a\":1}", 200, NULL},
      {"application/json; charset=utf-8", "{\"a\":1}", 200, NULL},
      {"text/plain", "{\"a\":1}", 415, "UNSUPPORTED_MEDIA_TYPE"},
      {NULL, "{\"a\":1}", 415, "UNSUPPORTED_MEDIA_TYPE"},
      {"application/jsonx", "{}", 415, "UNSUPPORTED_MEDIA_TYPE"},
      {"application/json", "{\"a\":", 400, "BAD_JSON"},
      {"application/json", "", 400, "BAD_JSON"},
      {"application/json", "[1]", 422, "VALIDATION_ERROR"},
      {"application/json", "{\"a\":\"0123456789012345678901234567890123456789012345678901234567890123\"}", 413,
       "TOO_LARGE"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dx_req r;
    req_init(&r, "POST", "/api/things", NULL);
    req_body(&r, cases[i].ct, cases[i].body);
    dx_dispatch(&r, table, NT);
    CHECK_MSG(r.resp.status == cases[i].status, "case %zu: %d", i, r.resp.status);
    if (cases[i].code) {
      char want[64];
      snprintf(want, sizeof want, "\"code\":\"%s\"", cases[i].code);
      CHECK_MSG(strstr(r.resp.body, want) != NULL, "case %zu: %s", i, r.resp.body);
    } else {
      CHECK(!strcmp(r.resp.body, "{\"data\":{\"a\":1}}"));
    }
    dx_pool_destroy(r.pool);
  }
  /* The same body from a file (nginx's REQUEST_BODY_FILE). */
  char path[] = "/tmp/dx_router_bodyXXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0 && write(fd, "{\"b\":true}", 10) == 10);
  close(fd);
  dx_req r;
  req_init(&r, "POST", "/api/things", NULL);
  r.content_type = "application/json";
  r.body_file = path;
  dx_dispatch(&r, table, NT);
  CHECK(r.resp.status == 200 && !strcmp(r.resp.body, "{\"data\":{\"b\":true}}"));
  dx_pool_destroy(r.pool);
  unlink(path);
}

DX_TEST(real_table_shape) {
  /* Every route has a handler, a known method and a pattern starting with '/'. */
  for (size_t i = 0; i < dx_routes_count; i++) {
    const dx_route *rt = &dx_routes[i];
    CHECK(rt->handler != NULL && rt->pattern[0] == '/');
    CHECK(!strcmp(rt->method, "GET") || !strcmp(rt->method, "POST") || !strcmp(rt->method, "PATCH") ||
          !strcmp(rt->method, "DELETE") || !strcmp(rt->method, "PUT"));
    CHECK(!((rt->flags & DX_ROUTE_BODY_JSON) && (rt->flags & DX_ROUTE_BODY_UPLOAD)));
  }
  dx_pool *p = dx_pool_create(0);
  dx_kv params[DX_MAX_PARAMS];
  size_t np;
  int known;
  char allow[128];
  const dx_route *rt = dx_route_match(p, dx_routes, dx_routes_count, "POST", "/api/jobs/probe", params, &np, &known,
                                      allow, sizeof allow);
  CHECK(rt && (rt->flags & DX_ROUTE_HEAVY) && (rt->flags & DX_ROUTE_BODY_JSON));
  rt = dx_route_match(p, dx_routes, dx_routes_count, "GET", "/health", params, &np, &known, allow, sizeof allow);
  CHECK(rt && (rt->flags & DX_ROUTE_PUBLIC));
  rt = dx_route_match(p, dx_routes, dx_routes_count, "PUT", "/api/tracks", params, &np, &known, allow, sizeof allow);
  CHECK(!rt && known && strstr(allow, "POST") && strstr(allow, "GET"));
  dx_pool_destroy(p);
}

DX_TEST_MAIN(DX_T(matches_literals_params_and_rest), DX_T(dispatch_404_405), DX_T(dispatch_without_database_is_503),
             DX_T(dispatch_query_and_pagination), DX_T(dispatch_json_body_checks), DX_T(real_table_shape))
