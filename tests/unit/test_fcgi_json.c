/* test_fcgi_json.c: JSON request bodies and the response envelope. */
#include <string.h>

#include "dx_fcgi.h"
#include "dx_test.h"

static dx_status parse(const char *s, json_object **o) {
  dx_errbuf err;
  return dx_json_parse_object(s, strlen(s), o, &err);
}

DX_TEST(accepts_objects) {
  json_object *o = NULL;
  CHECK(parse("{\"title\": \"x\", \"bpm\": 120.5, \"tags\": [\"a\"]}", &o) == DX_OK);
  json_object *v;
  CHECK(json_object_object_get_ex(o, "bpm", &v) && json_object_get_double(v) == 120.5);
  json_object_put(o);
  CHECK(parse("  {}\r\n", &o) == DX_OK);
  json_object_put(o);
}

DX_TEST(rejects_malformed) {
  json_object *o = (json_object *)1;
  const char *bad[] = {"", "   ", "{", "{\"a\":}", "{\"a\":1,}", "{'a':1}", "{\"a\":1} x", "{\"a\":1}{}",
                       "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "nul", "{\"a\":tru}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_MSG(parse(bad[i], &o) == DX_ERR_BAD_JSON, "[%s]", bad[i]);
    CHECK(o == NULL);
  }
  /* Nesting deeper than 32 levels. */
  char deep[200] = "{\"a\":";
  for (int i = 0; i < 40; i++) strcat(deep, "[");
  CHECK(parse(deep, &o) == DX_ERR_BAD_JSON);
}

DX_TEST(rejects_non_objects) {
  json_object *o;
  const char *other[] = {"[]", "[1,2]", "123", "\"s\"", "true", "null", "1.5 "};
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
    CHECK_MSG(parse(other[i], &o) == DX_ERR_VALIDATION_ERROR, "[%s]", other[i]);
}

static int collect(void *ctx, const char *d, size_t n) {
  char *buf = ctx;
  size_t l = strlen(buf);
  memcpy(buf + l, d, n);
  buf[l + n] = 0;
  return 0;
}

DX_TEST(envelopes) {
  dx_req r;
  memset(&r, 0, sizeof r);
  r.pool = dx_pool_create(0);
  r.method = "GET";
  json_object *d = json_object_new_object();
  json_object_object_add(d, "id", json_object_new_string("x/y"));
  dx_resp_json(&r, 201, d);
  CHECK(r.resp.status == 201);
  CHECK(!strcmp(r.resp.body, "{\"data\":{\"id\":\"x/y\"}}"));

  memset(&r.resp, 0, sizeof r.resp);
  dx_page pg = {2, 20};
  dx_resp_list(&r, json_object_new_array(), &pg, 41);
  CHECK(!strcmp(r.resp.body, "{\"data\":[],\"meta\":{\"page\":2,\"page_size\":20,\"total_count\":41,\"total_pages\":3}}"));

  memset(&r.resp, 0, sizeof r.resp);
  dx_resp_status(&r, DX_ERR_NOT_FOUND, "track not found");
  CHECK(r.resp.status == 404);
  CHECK(!strcmp(r.resp.body, "{\"error\":\"track not found\",\"code\":\"NOT_FOUND\"}"));

  memset(&r.resp, 0, sizeof r.resp);
  dx_valid_add(&r, "bpm", "must be a number");
  dx_valid_add(&r, "bpm", "must be positive");
  dx_valid_add(&r, "key", "is too long");
  CHECK(dx_valid_any(&r));
  dx_resp_validation(&r);
  CHECK(r.resp.status == 422);
  CHECK(!strcmp(r.resp.body, "{\"error\":\"validation failed\",\"code\":\"VALIDATION_ERROR\",\"details\":"
                             "{\"bpm\":[\"must be a number\",\"must be positive\"],\"key\":[\"is too long\"]}}"));

  char out[1024] = "";
  r.rl_set = 1;
  r.rl_limit = 60;
  r.rl_remaining = 59;
  r.rl_reset = 1700000060;
  dx_resp_header(&r, "X-Test", "1");
  dx_resp_header(&r, "X-Bad", "a\r\nInjected: 1");
  CHECK(dx_resp_send(&r, collect, out) == 0);
  CHECK(!strncmp(out, "Status: 422 Unprocessable Entity\r\nContent-Type: application/json; charset=utf-8\r\n", 80));
  CHECK(strstr(out, "X-RateLimit-Limit: 60\r\nX-RateLimit-Remaining: 59\r\nX-RateLimit-Reset: 1700000060\r\n") != NULL);
  CHECK(strstr(out, "X-Test: 1\r\n") != NULL);
  CHECK(strstr(out, "Injected") == NULL);
  CHECK(strstr(out, "\r\n\r\n{\"error\"") != NULL);
  dx_pool_destroy(r.pool);
}

DX_TEST(json_helpers) {
  json_object *t = dx_json_time("2024-05-01 12:30:00.125");
  CHECK(!strcmp(json_object_get_string(t), "2024-05-01T12:30:00.125Z"));
  json_object_put(t);
  CHECK(dx_json_time(NULL) == NULL);
  json_object *d = dx_json_double(0.1);
  CHECK(!strcmp(json_object_to_json_string(d), "0.1"));
  json_object_put(d);
  CHECK(dx_json_double(1.0 / 0.0) == NULL);
  CHECK(dx_id_valid("123e4567-e89b-42d3-a456-426614174000"));
  CHECK(!dx_id_valid("123E4567-E89B-42D3-A456-426614174000"));
  CHECK(!dx_id_valid("123e4567e89b42d3a456426614174000"));
}

DX_TEST_MAIN(DX_T(accepts_objects), DX_T(rejects_malformed), DX_T(rejects_non_objects), DX_T(envelopes),
             DX_T(json_helpers))
